"""The core: what every other layer builds on, importing nothing of servelab's above it.

Models and their files, the HPA's arithmetic, cost, manifests and Kubernetes quantities, the
load schedules and a run's `Result`, and locating the repository's files and tools. Nothing here
starts a process or opens a socket.
"""
