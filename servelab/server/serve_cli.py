"""`servelab serve`: run the model server (also `python -m servelab.server`)."""

from __future__ import annotations

import argparse
import dataclasses
import os

from servelab.core.models import MODEL_NAMES

# The numeric settings, one line each: flag, type, default, help. Each becomes the Options field
# of the same name (--max-connections's default of None means: as many as --max-concurrency).
TUNABLES = [
    ("--threads", int, 1, "onnxruntime intra-op threads per worker (default 1)"),
    ("--workers", int, 1, "model instances computing at once, one thread each (default 1: inline on the event "
                          "loop); give a pod of N CPUs --workers N"),
    ("--max-concurrency", int, 100, "predictions in flight before new ones get 503 (default 100)"),
    ("--max-connections", int, None, "open connections before new ones get 503 and are closed (default: "
                                     "--max-concurrency, so each connection may have a prediction in flight)"),
    ("--batch-max-size", int, 0, "turn on dynamic batching: most rows per model call"),
    ("--batch-max-delay-ms", float, 2.0, "with batching: longest wait for a batch to fill (default 2)"),
    ("--grace-period", float, 30.0, "seconds from SIGTERM to exit, at the latest (default 30; keep it under "
                                    "terminationGracePeriodSeconds)"),
    ("--drain-delay", float, 3.0, "seconds after SIGTERM that the server, already unready, still accepts and "
                                  "serves while load balancers catch up (default 3; part of --grace-period)"),
    ("--header-timeout", float, 5.0, "seconds a request's headers may take to arrive (default 5)"),
    ("--body-timeout", float, 10.0, "seconds a request's body may take after its headers (default 10)"),
    ("--stall-every", float, 0.0, "fault injection: stall predictions every S seconds"),
    ("--stall-for", float, 0.0, "fault injection: each stall lasts S seconds"),
]


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
    for flag, kind, default, text in TUNABLES:
        parser.add_argument(flag, type=kind, default=default, help=text)


def _problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with the settings, each as the rule it breaks."""
    return [problem for problem in (
        "--threads must be at least 1" if args.threads < 1 else "",
        "--workers must be at least 1" if args.workers < 1 else "",
        "--max-concurrency must be at least 1" if args.max_concurrency < 1 else "",
        "--max-connections must be at least 1" if args.max_connections < 1 else "",
        "--header-timeout and --body-timeout must be > 0" if min(args.header_timeout, args.body_timeout) <= 0 else "",
        "--batch-max-size must be 0 (no batching) or at least 2" if args.batch_max_size == 1 or args.batch_max_size < 0 else "",
        "--batch-max-delay-ms must be >= 0" if args.batch_max_delay_ms < 0 else "",
        "--grace-period must be > 0" if args.grace_period <= 0 else "",
        "--drain-delay must be >= 0 and shorter than --grace-period" if not 0 <= args.drain_delay < args.grace_period else "",
        "give both --stall-every and --stall-for, or neither" if (args.stall_every > 0) != (args.stall_for > 0) else "",
        "--stall-for must be shorter than --stall-every" if 0 < args.stall_every <= args.stall_for else "",
    ) if problem]


def main(args: argparse.Namespace) -> int:
    from servelab.server.app import Options
    from servelab.server.run import listening_socket, serve

    if args.max_connections is None:
        args.max_connections = args.max_concurrency
    problems = _problems(args)
    if problems:
        raise SystemExit("servelab serve: " + "; ".join(problems))
    options = Options(**{field.name: getattr(args, field.name) for field in dataclasses.fields(Options)})
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
