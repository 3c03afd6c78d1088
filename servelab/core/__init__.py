"""The core: what every other layer builds on, importing nothing of servelab's above it.

Models and their files, the HPA's arithmetic, cost, manifests and Kubernetes quantities, the
load schedules and a run's `Result`, and locating the repository's files and tools. Nothing here
starts a process or opens a socket, but for one module: processes.py starts every child servelab
runs and checks ports, because limits, runtime and analysis all start processes, and tying a
child to its owner's life (its own group, killed with the parent, stopped as a tree) must be done
one way below all of them.
"""
