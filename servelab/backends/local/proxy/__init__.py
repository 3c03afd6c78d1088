"""The Service: one stable address that spreads requests over the Ready pods behind it.

It runs as its own process (`python -m servelab.backends.local.proxy`) on uvloop when available,
so its event loop never competes with a Jupyter kernel's GIL. The owner (../service_proxy.py) sends the
list of Ready endpoints over the control channel (control.py) and waits for the proxy's
confirmation before it terminates a removed pod; when the channel closes the proxy exits.

Two ways to balance, chosen per cluster (`service_mode`):
- "per-connection" (forwarder.py): plain TCP; each client connection is pinned to one pod for
  its whole life. This is what a real Service does (kube-proxy's iptables or IPVS rules pick a
  pod per connection): a client that keeps one connection open talks to one pod only.
- "per-request" (the default; balancer.py and upstream.py): HTTP-aware; every request goes to
  the next Ready pod in round-robin order, over kept-alive connections to the pods, as a service
  mesh or an L7 ingress (Envoy, NGINX) would. It is the default because a learner's client keeps
  a few connections alive (hey -c 2, one aiohttp session): pinned per connection, "scale to 5"
  would leave three pods idle and the labs would measure the client's pool, not the replicas.

A Service may also add a network round trip to every request (round_trip.py, delay.py), so the
same Deployment can be measured as seen from a nearby region and from another continent.

MODES is here because the owner checks `service_mode` without importing the proxy's modules.
"""

MODES = ("per-request", "per-connection")
