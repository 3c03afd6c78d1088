"""`servelab grader`: run the class grading service, issue tokens, export grades.

    servelab grader tokens roster.csv --out tokens.csv          # --db grades.sqlite is the default
    servelab grader serve --bank-dir quizzes --roster roster.csv --attempts 3 \\
        --due 03-load=2026-12-01T17:00:00+00:00
    servelab grader export --bank-dir quizzes --csv grades.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import datetime, timezone
from pathlib import Path

from servelab.quiz.bank import BankError, bank_dir, load_all
from servelab.quiz.gradebook import Gradebook, RosterError, read_roster

DEFAULT_DB = Path("grades.sqlite")


def _due(text: str) -> tuple[str, datetime]:
    quiz, sep, when = text.partition("=")
    try:
        moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if not sep or moment is None:
        raise argparse.ArgumentTypeError(f"{text!r}: write QUIZ=ISO-TIME, e.g. 03-load=2026-12-01T17:00:00+00:00")
    return quiz, moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    serve = sub.add_parser("serve", help="run the grading service (keys and gradebook stay on this machine)")
    serve.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"gradebook SQLite file, created if missing (default: {DEFAULT_DB})")
    serve.add_argument("--bank-dir", type=Path, default=None, help="instructor banks, with keys (default: quizzes/)")
    serve.add_argument("--roster", type=Path, help="CSV with a 'student' column (and optional 'name')")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for a class network)")
    serve.add_argument("--port", type=int, default=8765, help="port (0 picks a free one; the URL is printed)")
    serve.add_argument("--attempts", type=int, default=None, help="attempts allowed per student and quiz (default: no limit)")
    serve.add_argument("--due", type=_due, action="append", default=[], metavar="QUIZ=TIME",
                       help="due time of a quiz, ISO 8601 (UTC if no offset); later attempts are kept and flagged late")
    tokens = sub.add_parser("tokens", help="issue a token to every roster student (and the instructor) without one")
    tokens.add_argument("roster", type=Path, help="CSV with a 'student' column (and optional 'name')")
    tokens.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"gradebook SQLite file; only token hashes are kept (default: {DEFAULT_DB})")
    tokens.add_argument("--out", type=Path, help="also write student,token to this CSV for distribution")
    export = sub.add_parser("export", help="one row per student, one column per question, plus totals")
    export.add_argument("--db", type=Path, default=DEFAULT_DB, help=f"the gradebook `serve` used (default: {DEFAULT_DB})")
    export.add_argument("--bank-dir", type=Path, default=None, help="banks whose questions become columns")
    export.add_argument("--csv", required=True, help="output CSV file, or - for standard output")


def main(args: argparse.Namespace) -> int:
    try:
        return {"serve": _serve, "tokens": _tokens, "export": _export}[args.action](args)
    except (BankError, RosterError) as exc:
        print(f"servelab grader: {exc}", file=sys.stderr)
        return 2


def _serve(args: argparse.Namespace) -> int:
    from servelab.quiz.service import create_app, serve

    app = create_app(args.db, args.bank_dir or bank_dir(), args.roster, args.attempts, dict(args.due))
    serve(app, args.host, args.port)
    return 0


def _tokens(args: argparse.Namespace) -> int:
    gradebook = Gradebook(args.db)
    gradebook.add_roster(read_roster(args.roster))
    issued = gradebook.issue_tokens()
    if args.out:
        with open(args.out, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")  # plain lines, so `cut`/`grep` give clean tokens
            writer.writerow(["student", "token"])
            writer.writerows(sorted(issued.items()))
        args.out.chmod(0o600)
    for who, token in sorted(issued.items()):
        print(f"{who},{token}")
    print(f"{len(issued)} new token(s); only their hashes are stored in {args.db}. "
          "Hand each student their own token; nobody can read it back later.", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    if not args.db.is_file():
        print(f"servelab grader: no gradebook at {args.db}; give the --db that `grader serve` used", file=sys.stderr)
        return 2
    text = Gradebook(args.db).export_csv(load_all(args.bank_dir or bank_dir()))
    if args.csv == "-":
        sys.stdout.write(text)
    else:
        Path(args.csv).write_text(text, encoding="utf-8")
        print(f"wrote {args.csv} ({text.count(chr(10)) - 1} students)", file=sys.stderr)
    return 0
