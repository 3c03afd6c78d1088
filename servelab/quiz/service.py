"""The class grader: a small FastAPI service that holds the keys and the gradebook.

Students send answers with their own token; the service marks them against the instructor's
bank, stores the attempt and answers with the marks. Students can fetch the student copy of a
bank and their own attempts, nothing else. The instructor token reads everyone's attempts and
the CSV export. Every error is JSON `{"error": "..."}` saying what was wrong; an unknown or
missing token always gets the same 401, whether or not the student exists.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from servelab.quiz.bank import Bank, BankError, load_all, resolve_name
from servelab.quiz.gradebook import (
    STUDENT_ID,
    AttemptLimitError,
    Gradebook,
    read_roster,
)
from servelab.quiz.grading import AnswerError, grade

MAX_BODY_BYTES = 64 * 1024
# A submission nests three levels (body, answers, a list of letters); deeper bodies are refused
# before anything walks them recursively (Python's own limit is about 1000 levels).
MAX_DEPTH = 16
_SUBMISSION_FIELDS = {"quiz", "student", "answers", "computed", "submission_id"}


@dataclass(frozen=True)
class Caller:
    id: str
    role: str


def _error(status: int, message: str) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=message, headers=headers)


def create_app(db: str | Path, bank_dir: str | Path, roster: str | Path | None = None,
               attempts: int | None = None, due: dict[str, datetime] | None = None,
               max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """The grader app. Banks are loaded and checked once, at start: a broken bank stops it here."""
    bank_dir = Path(bank_dir)
    banks = load_all(bank_dir)
    gradebook = Gradebook(db)
    if roster:
        gradebook.add_roster(read_roster(roster))
    due = due or {}
    unknown = sorted(set(due) - set(banks))
    if unknown:
        raise BankError(f"--due names quiz {unknown[0]!r}, which is not in {bank_dir} ({', '.join(banks)})")
    grader = _Grader(bank_dir, banks, gradebook, attempts, due, max_body)

    app = FastAPI(title="servelab grader", docs_url=None, redoc_url=None)
    _answer_errors_in_json(app)
    caller, instructor = _callers(gradebook)

    @app.get("/v1/health")
    def health() -> dict:
        return {"status": "ok", "quizzes": list(banks)}

    @app.get("/v1/quizzes/{name}")
    def student_bank(name: str, _: Caller = Depends(caller)) -> dict:
        bank = grader.quiz_named(name)
        return {"name": bank.name, "bank": bank.for_students()}

    @app.post("/v1/submissions", status_code=201)
    async def submission(request: Request, who: Caller = Depends(caller)) -> Any:
        return await grader.submit(request, who)

    @app.get("/v1/students/{student}/attempts")
    def student_attempts(student: str, who: Caller = Depends(caller)) -> list[dict]:
        if who.role != "instructor" and who.id != student:
            raise _error(403, "students can read only their own attempts")
        return gradebook.attempts(student=student)

    @app.get("/v1/attempts")
    def all_attempts(_: Caller = Depends(instructor)) -> list[dict]:
        return gradebook.attempts()

    @app.get("/v1/export.csv", response_class=PlainTextResponse)
    def export(_: Caller = Depends(instructor)) -> str:
        return gradebook.export_csv(banks)

    return app


def _answer_errors_in_json(app: FastAPI) -> None:
    """Every error as `{"error": "..."}`: HTTP errors, unknown paths, invalid requests and bugs alike."""

    @app.exception_handler(StarletteHTTPException)  # also unknown paths (404) and wrong methods (405)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        return JSONResponse({"error": f"{'.'.join(map(str, first['loc']))}: {first['msg']}"}, status_code=422)

    @app.exception_handler(Exception)  # a bug: still the JSON shape, and the service keeps serving
    async def _internal_error(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}; the grader logged it"}, status_code=500)


def _callers(gradebook: Gradebook) -> tuple[Callable[..., Awaitable[Caller]], Callable[..., Caller]]:
    """The dependencies that name the caller from its token: anyone known, and the instructor only."""

    async def caller(request: Request) -> Caller:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        found = await run_in_threadpool(gradebook.who, token.strip()) if scheme.lower() == "bearer" and token else None
        if found is None:
            raise _error(401, "missing or invalid token: send 'Authorization: Bearer <your token>'")
        return Caller(*found)

    def instructor(who: Caller = Depends(caller)) -> Caller:
        if who.role != "instructor":
            raise _error(403, "this needs the instructor token")
        return who

    return caller, instructor


@dataclass(frozen=True)
class _Grader:
    """What the routes share: the banks, the gradebook and the class's rules (attempts, due dates)."""

    bank_dir: Path
    banks: dict[str, Bank]
    gradebook: Gradebook
    attempts: int | None
    due: dict[str, datetime]
    max_body: int

    def quiz_named(self, name: str) -> Bank:
        try:
            return self.banks[resolve_name(name, self.bank_dir)]
        except (BankError, KeyError):
            raise _error(404, f"no quiz {name!r}; quizzes: {', '.join(self.banks)}") from None

    async def submit(self, request: Request, who: Caller) -> JSONResponse:
        """Mark a submission, record it as the student's next attempt and answer with the marks."""
        body = await _read_json(request, self.max_body)
        student, bank, answers, computed, submission_id = _check_submission(body, who, self.quiz_named)
        late = bank.name in self.due and datetime.now(timezone.utc) > self.due[bank.name]
        attempts = self.attempts
        try:
            marked = grade(bank, answers, computed)
            recorded = await run_in_threadpool(
                self.gradebook.record, marked, student, late=late, limit=attempts, submission_id=submission_id
            )
        except AnswerError as exc:
            raise _error(422, str(exc)) from None
        except AttemptLimitError as exc:
            raise _error(409, str(exc)) from None
        except sqlite3.IntegrityError:
            raise _error(409, f"submission_id {submission_id!r} was already used for another submission") from None
        reply = {
            "quiz": bank.name, "student": student, "attempt": recorded.number, "late": late,
            "attempts_left": None if attempts is None else max(attempts - recorded.number, 0),
            "score": marked.score, "total": marked.total, "duplicate": recorded.duplicate,
            "marks": [m.__dict__ for m in marked.marks],
        }
        return JSONResponse(reply, status_code=200 if recorded.duplicate else 201)


async def _read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, refusing bodies over `limit` bytes before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise _error(413, f"request body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _error(413, f"request body larger than {limit} bytes")
    too_deep = _error(400, f"body nests arrays or objects more than {MAX_DEPTH} levels deep; "
                           "send answers as plain strings, numbers or lists of letters")
    try:
        value = json.loads(body)
    except RecursionError:
        raise too_deep from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _error(400, f"body is not valid JSON: {exc}") from None
    if _too_deep(value, MAX_DEPTH):
        raise too_deep
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """True when `value` nests lists or dicts more than `limit` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _check_submission(body: Any, who: Caller, quiz_named: Any) -> tuple[str, Bank, dict, dict, str | None]:
    """Validate the shape of a submission; each refusal names the field at fault."""
    if not isinstance(body, dict):
        raise _error(422, "body must be a JSON object with 'quiz' and 'answers'")
    extra = sorted(set(body) - _SUBMISSION_FIELDS)
    if extra:
        raise _error(422, f"unknown field {extra[0]!r}; allowed: {', '.join(sorted(_SUBMISSION_FIELDS))}")
    if who.role != "student":
        raise _error(403, "submissions need a student token")
    student = body.get("student", who.id)
    if student != who.id:
        raise _error(403, "this token belongs to a different student")
    if not isinstance(body.get("quiz"), str):
        raise _error(422, "field 'quiz': required, a quiz name such as '03-load'")
    bank = quiz_named(body["quiz"])
    answers = body.get("answers")
    if not isinstance(answers, dict):
        raise _error(422, "field 'answers': required, an object mapping question id to answer")
    computed = body.get("computed", {})
    if not isinstance(computed, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in computed.values()
    ):
        raise _error(422, "field 'computed': an object mapping question id to the number your run gave")
    kinds = {q.id: q.kind for q in bank.questions}
    stray = sorted(qid for qid in computed if kinds.get(qid) != "computed")
    if stray:
        raise _error(422, f"field 'computed': {stray[0]!r} is not a computed question of quiz {bank.name!r}")
    submission_id = body.get("submission_id")
    if submission_id is not None and (not isinstance(submission_id, str) or not STUDENT_ID.match(submission_id)):
        raise _error(422, "field 'submission_id': 1-64 letters, digits, '.', '_', '@' or '-'")
    return student, bank, answers, {k: float(v) for k, v in computed.items()}, submission_id


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run `app` until interrupted; prints the URL once the socket is bound (port 0 = any free port)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)  # connections queue from now on, so the printed URL is usable at once
    bound_port = sock.getsockname()[1]
    print(f"servelab grader listening on http://{host}:{bound_port}", flush=True)
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])

