"""The `servelab` command line.

Each subcommand lives beside the code it drives and is imported only when it is used, so that
`servelab serve` starts without loading pandas, matplotlib or the kubernetes client.
A subcommand module defines `add_arguments(parser)` and `main(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Add a line here when a subcommand arrives.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("servelab.server.serve_cli", "run the model server (TF Serving REST + Open Inference Protocol)"),
    "load": ("servelab.load.load_cli", "offer open-loop (or closed-loop) load to a model server and print latency percentiles"),
    "quiz": ("servelab.quiz.quiz_cli", "take a quiz in the terminal, grade an answers file, check or strip banks"),
    "grader": ("servelab.quiz.grader_cli", "class grading service: serve, issue tokens, export grades as CSV"),
    "doctor": ("servelab.doctor", "check Docker, kind, kubectl, memory and port 8501 for the real-cluster path"),
    "score": ("servelab.batch", "batch scoring: score N rows in batches in-process and print rows/s"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servelab",
        description="Measure how the way an ML model is served changes its latency and its cost.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        parser = _top_parser()
        if argv and not argv[0].startswith("-"):
            parser.error(f"unknown command {argv[0]!r}; choose one of: {', '.join(COMMANDS)}")
        parser.parse_args(argv or ["--help"])
        return 0
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"servelab {name}", description=help_text)
    module.add_arguments(parser)
    return int(module.main(parser.parse_args(argv[1:])) or 0)


if __name__ == "__main__":
    sys.exit(main())
