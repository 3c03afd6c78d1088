"""`servelab serve`: run the model server (also `python -m servelab.server`)."""

from __future__ import annotations

import argparse
import os

from servelab.models import MODEL_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny", choices=MODEL_NAMES, help="which model to serve (default tiny)")
    parser.add_argument("--name", default="my-model", help="the name clients use in URLs (default my-model)")
    parser.add_argument(
        "--host",
        default=os.environ.get("SERVELAB_HOST", "127.0.0.1"),
        help="address to listen on (default $SERVELAB_HOST, else 127.0.0.1; the container image sets 0.0.0.0)",
    )
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501, TF Serving's REST port)")
    parser.add_argument("--fd", type=int, help="serve on this inherited, already listening socket instead of --host/--port")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads per worker (default 1)")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="model instances computing at once, one thread each (default 1: inline on the event loop); "
             "give a pod of N CPUs --workers N",
    )
    parser.add_argument(
        "--max-concurrency", type=int, default=100, help="predictions in flight before new ones get 503 (default 100)"
    )
    parser.add_argument(
        "--max-connections", type=int, default=None,
        help="open connections before new ones get 503 and are closed (default: --max-concurrency, so each "
             "connection may have a prediction in flight)",
    )
    parser.add_argument("--batch-max-size", type=int, default=0, help="turn on dynamic batching: most rows per model call")
    parser.add_argument(
        "--batch-max-delay-ms", type=float, default=2.0, help="with batching: longest wait for a batch to fill (default 2)"
    )
    parser.add_argument(
        "--grace-period", type=float, default=30.0,
        help="seconds from SIGTERM to exit, at the latest (default 30; keep it under terminationGracePeriodSeconds)",
    )
    parser.add_argument(
        "--drain-delay", type=float, default=3.0,
        help="seconds after SIGTERM that the server, already unready, still accepts and serves while "
             "load balancers catch up (default 3; part of --grace-period)",
    )
    parser.add_argument(
        "--header-timeout", type=float, default=5.0, help="seconds a request's headers may take to arrive (default 5)"
    )
    parser.add_argument(
        "--body-timeout", type=float, default=10.0, help="seconds a request's body may take after its headers (default 10)"
    )
    parser.add_argument("--stall-every", type=float, default=0.0, help="fault injection: stall predictions every S seconds")
    parser.add_argument("--stall-for", type=float, default=0.0, help="fault injection: each stall lasts S seconds")


def main(args: argparse.Namespace) -> int:
    from servelab.server.app import Options
    from servelab.server.run import listening_socket, serve

    max_connections = args.max_concurrency if args.max_connections is None else args.max_connections
    problems = [
        "--threads must be at least 1" if args.threads < 1 else "",
        "--workers must be at least 1" if args.workers < 1 else "",
        "--max-concurrency must be at least 1" if args.max_concurrency < 1 else "",
        "--max-connections must be at least 1" if max_connections < 1 else "",
        "--header-timeout and --body-timeout must be > 0" if min(args.header_timeout, args.body_timeout) <= 0 else "",
        "--batch-max-size must be 0 (no batching) or at least 2" if args.batch_max_size == 1 or args.batch_max_size < 0 else "",
        "--batch-max-delay-ms must be >= 0" if args.batch_max_delay_ms < 0 else "",
        "--grace-period must be > 0" if args.grace_period <= 0 else "",
        "--drain-delay must be >= 0 and shorter than --grace-period"
        if not 0 <= args.drain_delay < args.grace_period else "",
        "give both --stall-every and --stall-for, or neither" if (args.stall_every > 0) != (args.stall_for > 0) else "",
        "--stall-for must be shorter than --stall-every" if 0 < args.stall_every <= args.stall_for else "",
    ]
    if any(problems):
        raise SystemExit("servelab serve: " + "; ".join(p for p in problems if p))
    options = Options(
        model=args.model,
        name=args.name,
        threads=args.threads,
        workers=args.workers,
        max_concurrency=args.max_concurrency,
        max_connections=max_connections,
        batch_max_size=args.batch_max_size,
        batch_max_delay_ms=args.batch_max_delay_ms,
        grace_period=args.grace_period,
        drain_delay=args.drain_delay,
        header_timeout=args.header_timeout,
        body_timeout=args.body_timeout,
        stall_every=args.stall_every,
        stall_for=args.stall_for,
    )
    try:
        sock = listening_socket(args.host, args.port, args.fd)
    except OSError as error:
        raise SystemExit(
            f"servelab serve: cannot listen on {args.host}:{args.port} ({error.strerror}); "
            "is another server running there? Stop it or pick another --port"
        ) from None
    try:
        serve(options, sock)
    except KeyboardInterrupt:
        return 130
    return 0
