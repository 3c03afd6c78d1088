"""The class grader: tokens, who may read what, malformed input, and 200 concurrent submissions."""

from __future__ import annotations

import asyncio
import csv
import io
import sqlite3
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from fastapi.testclient import TestClient
from quiz_fixtures import BANKS, GraderProcess, read_tokens, servelab, write_roster

from servelab.quiz import bank as banks
from servelab.quiz.gradebook import Gradebook, read_roster
from servelab.quiz.service import create_app

RIGHT = {"p10": 3, "p9": 0.2111, "p1": "C"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def grader(tmp_path):
    """An in-process grader with students ann and bob, 2 attempts, 01-server already past due."""
    db, roster = tmp_path / "g.sqlite", write_roster(tmp_path / "roster.csv", ["ann", "bob"])
    book = Gradebook(db)
    book.add_roster(read_roster(roster))
    tokens = book.issue_tokens()
    past = datetime.now(timezone.utc) - timedelta(days=1)
    app = create_app(db, BANKS, roster, attempts=2, due={"01-server": past}, max_body=4096)
    with TestClient(app) as client:
        yield client, tokens


def submit(client, token, body):
    return client.post("/v1/submissions", json=body, headers=bearer(token))


def test_submission_is_graded_on_the_service(grader):
    client, tokens = grader
    reply = submit(client, tokens["ann"], {"quiz": "pattern", "answers": RIGHT})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert (body["student"], body["score"], body["total"], body["attempt"], body["attempts_left"]) == ("ann", 3, 10, 1, 1)
    served = client.get("/v1/quizzes/pattern", headers=bearer(tokens["ann"])).json()["bank"]
    assert not any({"answer", "steps", "mistakes"} & set(q) for q in served["questions"])


@pytest.mark.parametrize("headers", [{}, bearer("wrong-token"), {"Authorization": "Basic abc"}])
def test_wrong_or_missing_token_gets_the_same_401(grader, headers):
    client, _ = grader
    for path in ("/v1/quizzes/pattern", "/v1/students/ann/attempts", "/v1/students/nobody/attempts"):
        reply = client.get(path, headers=headers)
        assert reply.status_code == 401
        assert reply.json() == {"error": "missing or invalid token: send 'Authorization: Bearer <your token>'"}


def test_another_students_token_cannot_submit_or_read_for_them(grader):
    client, tokens = grader
    reply = submit(client, tokens["bob"], {"quiz": "pattern", "student": "ann", "answers": RIGHT})
    assert reply.status_code == 403 and "different student" in reply.json()["error"]
    assert client.get("/v1/students/ann/attempts", headers=bearer(tokens["bob"])).status_code == 403
    assert client.get("/v1/students/bob/attempts", headers=bearer(tokens["bob"])).json() == []


def test_instructor_endpoints_need_the_instructor_token(grader):
    client, tokens = grader
    for path in ("/v1/export.csv", "/v1/attempts"):
        assert client.get(path).status_code == 401
        reply = client.get(path, headers=bearer(tokens["ann"]))
        assert reply.status_code == 403 and "instructor token" in reply.json()["error"]
        assert client.get(path, headers=bearer(tokens["instructor"])).status_code == 200
    assert client.get("/v1/students/ann/attempts", headers=bearer(tokens["instructor"])).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"answers": {}}', 422, "field 'quiz'"),
        (b'{"quiz": "pattern"}', 422, "field 'answers'"),
        (b'{"quiz": "nope", "answers": {}}', 404, "no quiz 'nope'"),
        (b'{"quiz": "pattern", "answers": {}, "extra": 1}', 422, "unknown field 'extra'"),
        (b'{"quiz": "pattern", "answers": {"p1": "Z"}}', 422, "one letter of A, B, C, D"),
        (b'{"quiz": "pattern", "answers": {"no-such-q": "A"}}', 422, "has no question 'no-such-q'"),
        (b'{"quiz": "pattern", "answers": {}, "computed": {"x": "1"}}', 422, "field 'computed'"),
        (b'{"quiz": "pattern", "answers": {}, "submission_id": "a b"}', 422, "field 'submission_id'"),
        (b'{"quiz": "pattern", "answers": {"p10": "' + b"9" * 5000 + b'"}}', 413, "larger than 4096"),
    ],
)
def test_malformed_submissions_are_refused_naming_the_problem(grader, body, status, says):
    client, tokens = grader
    headers = {**bearer(tokens["ann"]), "Content-Type": "application/json"}
    reply = client.post("/v1/submissions", content=body, headers=headers)
    assert reply.status_code == status, reply.text
    assert says in reply.json()["error"]
    assert client.get("/v1/attempts", headers=bearer(tokens["instructor"])).json() == []


def test_injection_shaped_input_is_stored_as_plain_data(grader):
    client, tokens = grader
    evil = "1'); DROP TABLE attempts; --"
    reply = submit(client, tokens["ann"], {"quiz": "pattern", "answers": {}, "submission_id": "x"})
    assert reply.status_code == 201
    reply = client.get(f"/v1/students/{evil}/attempts", headers=bearer(tokens["instructor"]))
    assert reply.status_code == 200 and reply.json() == []
    assert len(client.get("/v1/attempts", headers=bearer(tokens["instructor"])).json()) == 1


def test_late_submission_is_kept_and_flagged(grader):
    client, tokens = grader
    reply = submit(client, tokens["bob"], {"quiz": "01", "answers": {"q1": "C"}})
    assert reply.status_code == 201 and reply.json()["late"] is True
    [attempt] = client.get("/v1/students/bob/attempts", headers=bearer(tokens["bob"])).json()
    assert attempt["late"] is True and attempt["quiz"] == "01-server"


def test_attempt_limit_and_retry_of_the_same_submission(grader):
    client, tokens = grader
    body = {"quiz": "pattern", "answers": RIGHT, "submission_id": "retry-1"}
    assert submit(client, tokens["ann"], body).status_code == 201
    again = submit(client, tokens["ann"], body)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert submit(client, tokens["ann"], {"quiz": "pattern", "answers": RIGHT}).status_code == 201
    refused = submit(client, tokens["ann"], {"quiz": "pattern", "answers": RIGHT})
    assert refused.status_code == 409
    assert refused.json()["error"].startswith("attempt limit reached: 2 of 2 attempts at quiz 'pattern'")


STUDENTS, PER_STUDENT, LIMIT = 50, 4, 3


@pytest.fixture
def live_grader(tmp_path):
    """A real `servelab grader serve` process with 50 students, 3 attempts each; stopped afterwards."""
    db, roster = tmp_path / "class.sqlite", write_roster(tmp_path / "roster.csv", [f"s{i:02d}" for i in range(STUDENTS)])
    issued = servelab("grader", "tokens", str(roster), "--db", str(db), "--out", str(tmp_path / "tokens.csv"))
    assert issued.returncode == 0, issued.stderr
    process = GraderProcess("--db", str(db), "--bank-dir", str(BANKS), "--roster", str(roster), "--attempts", str(LIMIT))
    yield process, read_tokens(tmp_path / "tokens.csv"), db
    process.stop()


async def _fire(url: str, tokens: dict[str, str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        jobs = []
        for i in range(STUDENTS):
            student = f"s{i:02d}"
            for k in range(PER_STUDENT):
                # Student i gets the first (i + k) % 4 of three questions right on attempt k.
                answers = dict(list(RIGHT.items())[: (i + k) % 4])
                jobs.append(client.post("/v1/submissions", headers=bearer(tokens[student]),
                                        json={"quiz": "pattern", "answers": answers, "submission_id": f"{student}-{k}"}))
        return await asyncio.gather(*jobs)


def test_200_concurrent_submissions_from_50_students(live_grader):
    process, tokens, db = live_grader
    replies = asyncio.run(_fire(process.url, tokens))
    assert len(replies) == STUDENTS * PER_STUDENT == 200
    codes = [r.status_code for r in replies]
    assert codes.count(201) == STUDENTS * LIMIT and codes.count(409) == STUDENTS, sorted(set(codes))
    for r in replies:
        if r.status_code == 409:
            assert r.json()["error"].startswith(f"attempt limit reached: {LIMIT} of {LIMIT} attempts")

    # Stored exactly once: one row per accepted reply, numbered 1..LIMIT per student, none for refusals.
    rows = sqlite3.connect(db).execute("SELECT student, number, submission_id, score FROM attempts").fetchall()
    accepted = {(r.json()["student"], r.json()["attempt"]) for r in replies if r.status_code == 201}
    assert len(rows) == len(accepted) == STUDENTS * LIMIT
    assert {(s, n) for s, n, _, _ in rows} == accepted
    assert len({sid for _, _, sid, _ in rows}) == len(rows)

    # The export (over HTTP and from the CLI) has the best stored score per student, and totals add up.
    export = httpx.get(f"{process.url}/v1/export.csv", headers=bearer(tokens["instructor"]), timeout=30)
    assert export.status_code == 200
    cli = servelab("grader", "export", "--db", str(db), "--bank-dir", str(BANKS), "--csv", "-")
    assert cli.stdout == export.text
    table = list(csv.DictReader(io.StringIO(export.text)))
    assert len(table) == STUDENTS
    pattern_ids = banks.load("pattern", BANKS).ids
    best = {}
    for student, _, _, score in rows:
        best[student] = max(best.get(student, 0), score)
    for row in table:
        assert int(row["pattern:attempts"]) == LIMIT
        assert int(row["pattern:score"]) == best[row["student"]] == sum(int(row[f"pattern:{q}"]) for q in pattern_ids)
        assert int(row["total"]) == best[row["student"]]
    assert process.stop() == ""  # no errors logged


def test_unknown_paths_and_methods_answer_in_the_same_error_shape(grader):
    client, _ = grader
    assert client.get("/v1/nothing").json() == {"error": "Not Found"}
    assert client.post("/v1/health").json() == {"error": "Method Not Allowed"}


@pytest.mark.parametrize("levels", [40, 5000])
def test_deeply_nested_answers_get_the_json_400_not_a_plain_500(tmp_path, levels):
    db = tmp_path / "g.sqlite"
    book = Gradebook(db)
    book.add_roster([("ann", "")])
    token = book.issue_tokens()["ann"]
    body = '{"quiz": "pattern", "answers": {"fastest-architecture": %s}}' % ("[" * levels + "]" * levels)
    with TestClient(create_app(db, BANKS)) as client:
        reply = client.post("/v1/submissions", content=body, headers={**bearer(token), "Content-Type": "application/json"})
        assert reply.status_code == 400, reply.text
        assert "more than 16 levels deep" in reply.json()["error"]
        assert client.get("/v1/health").status_code == 200


def test_export_csv_over_http_escapes_formulas_like_the_cli(grader):
    client, tokens = grader
    reply = client.get("/v1/export.csv", headers=bearer(tokens["instructor"]))
    assert reply.status_code == 200
    assert list(csv.DictReader(io.StringIO(reply.text)))[0]["name"] == "Student ann"  # plain text is untouched
