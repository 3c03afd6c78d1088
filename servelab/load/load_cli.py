"""`servelab load`: offer traffic to a model server from the terminal and print what it measured.

    servelab load --url http://127.0.0.1:8501/v1/models/my-model:predict --rate 200 --duration 10s
    servelab load --url ... --schedule ramp --rate 50 --end-rate 400 --duration 1m --save runs/ramp
    servelab load --url ... --users 8 --duration 10s          # closed loop, for comparison
"""

from __future__ import annotations

import argparse
import re
import sys

from servelab.core import schedules
from servelab.core.result import format_summary
from servelab.load import runner
from servelab.load.progress import describe

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds from '10s', '500ms', '2m', '1h' or a bare number of seconds."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 10s, 500ms, 2m, 1h, 30)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def steps(text: str) -> list[tuple[float, float]]:
    """'10s:50,10s:200' -> [(10.0, 50.0), (10.0, 200.0)]: (duration, rate) pairs."""
    try:
        return [(duration(d), float(r)) for d, r in (part.split(":") for part in text.split(","))]
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(f"not a list of duration:rate steps: {text!r} (example: 10s:50,10s:200)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True,
                        help="predict/infer URL, or a server's base URL (the protocol's path is added)")
    parser.add_argument("--rate", type=float,
                        help="requests/s (open loop); for ramp the start rate; for diurnal the mean")
    parser.add_argument("--duration", type=duration, help="how long to offer load, e.g. 10s, 2m (default 10s)")
    parser.add_argument("--schedule", default="constant",
                        choices=["constant", "poisson", "step", "ramp", "diurnal", "trace"],
                        help="shape of the offered load over time (default: constant)")
    parser.add_argument("--end-rate", type=float, help="ramp: the rate at the end")
    parser.add_argument("--steps", type=steps, help="step: duration:rate pairs, e.g. 10s:50,10s:200")
    parser.add_argument("--peak-to-trough", type=float, default=4.0,
                        help="diurnal: peak rate / trough rate (default 4)")
    parser.add_argument("--period", type=duration, help="diurnal: length of one 'day' (default: the duration)")
    parser.add_argument("--trace", help="trace: CSV file with columns time_s,rate")
    parser.add_argument("--users", type=int, help="closed loop instead: this many users, each waiting for its answer")
    parser.add_argument("--think-time", type=duration, default=0.0, help="closed loop: pause between a user's requests")
    parser.add_argument("--protocol", default="tfserving", choices=["tfserving", "oip"],
                        help="request body and path: TF Serving v1 REST or Open Inference Protocol v2")
    parser.add_argument("--model", default="my-model", help="model name, when --url is a base URL")
    parser.add_argument("--body", help="JSON request body to send instead of the protocol's default")
    parser.add_argument("--timeout", type=duration, default=10.0, help="per-request timeout (default 10s)")
    parser.add_argument("--workers", type=int, help="generator processes (default: as many as the rate needs)")
    parser.add_argument("--seed", type=int, default=0, help="seed for Poisson arrivals")
    parser.add_argument("--save", metavar="DIR", help="write requests.csv and meta.json to DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def schedule_from_args(args: argparse.Namespace) -> schedules.Schedule:
    """The schedule the flags describe; argparse-style errors name the missing flag."""
    if args.schedule == "trace":
        if not args.trace:
            raise SystemExit("servelab load: --schedule trace needs --trace FILE.csv (columns time_s,rate)")
        return schedules.Trace.from_csv(args.trace)
    if args.schedule == "step":
        if not args.steps:
            raise SystemExit("servelab load: --schedule step needs --steps, e.g. --steps 10s:50,10s:200")
        return schedules.Step(args.steps)
    if args.rate is None:
        raise SystemExit(f"servelab load: --schedule {args.schedule} needs --rate (requests/s)")
    length = args.duration or 10.0
    if args.schedule == "ramp":
        if args.end_rate is None:
            raise SystemExit("servelab load: --schedule ramp needs --end-rate")
        return schedules.Ramp(args.rate, args.end_rate, length)
    if args.schedule == "diurnal":
        return schedules.Diurnal(args.rate, args.peak_to_trough, length, period=args.period or length)
    if args.schedule == "poisson":
        return schedules.Poisson(args.rate, length, seed=args.seed)
    return schedules.Constant(args.rate, length)


def main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("servelab load: interrupted; nothing printed or saved", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    common = dict(protocol=args.protocol, model=args.model, body=args.body, timeout=args.timeout,
                  progress=False if args.quiet else None)
    if args.users:
        length = args.duration or 10.0
        result = runner.run_closed(args.url, args.users, length, think_time=args.think_time,
                                   workers=args.workers or 1, **common)
        title = f"closed loop: {args.users} users for {length:g} s -> {result.meta['url']}"
    else:
        schedule = schedule_from_args(args)
        result = runner.run(args.url, schedule, workers=args.workers, seed=args.seed, **common)
        title = f"open loop: {describe(schedule)} for {schedule.duration:g} s -> {result.meta['url']}"
    print(format_summary(result.summary(), title))
    if args.save:
        print(f"saved: {result.save(args.save)}/requests.csv, meta.json")
    return 0
