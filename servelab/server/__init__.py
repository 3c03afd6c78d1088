"""The model server: TF Serving REST and Open Inference Protocol v2 for one ONNX model.

- `app`: the ASGI app (fast path for predictions, FastAPI for everything else)
- `protocols`: request parsing and reply formatting, pure functions
- `inference`: where predictions run (inline, or N model workers); `batching`, `faults`, `metrics`:
  dynamic batching, stall injection, Prometheus
- `admission`, `listener`, `connection`: the in-flight and connection limits and their 503s, read
  deadlines, and closing connections gently while draining
- `run`: uvicorn with all of that and the SIGTERM drain; `serve_cli`: `servelab serve`
- `process`: `ServerProcess`, a server in a child process (tests, labs, local backend)
- `client`: `post_json`, one request to a running server, as the lesson's curl sends it
"""

from servelab.server.client import post_json
from servelab.server.process import ServerProcess

__all__ = ["ServerProcess", "post_json"]
