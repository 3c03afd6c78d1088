"""Class mode from the student's side: talk to the grader service with a personal token.

Class mode is on when both $SERVELAB_GRADER_URL and $SERVELAB_TOKEN are set. The service holds
the keys; the student only ever sees the student copy of a bank it hands out.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from typing import Any

from servelab.quiz.bank import Bank, Question, validate


class GraderError(RuntimeError):
    """The grader service refused or could not be reached; carries its message."""


class Client:
    def __init__(self, url: str, token: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", exc.reason)
            except ValueError:
                message = exc.reason
            raise GraderError(f"grader at {self.url} answered {exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise GraderError(f"cannot reach the grader at {self.url} ({exc.reason}); check SERVELAB_GRADER_URL") from None

    def bank(self, name: str) -> Bank:
        """The student copy of quiz `name`, as the service hands it out."""
        reply = self._call("GET", f"/v1/quizzes/{name}")
        document = reply["bank"]
        validate(document, f"{self.url}/v1/quizzes/{name}")
        return Bank(
            name=reply["name"],
            title=document["title"],
            questions=tuple(Question.from_dict(q) for q in document["questions"]),
            raw=document,
            student_copy=True,
        )

    def submit(self, quiz: str, answers: dict, computed: dict[str, float], student: str | None = None) -> dict:
        """Send one attempt; the service grades and stores it and answers with the marks."""
        body = {"quiz": quiz, "answers": answers, "computed": computed, "submission_id": uuid.uuid4().hex}
        if student:
            body["student"] = student
        return self._call("POST", "/v1/submissions", body)


def class_mode() -> Client | None:
    """A client when $SERVELAB_GRADER_URL and $SERVELAB_TOKEN are both set, else None (self-study)."""
    url, token = os.environ.get("SERVELAB_GRADER_URL"), os.environ.get("SERVELAB_TOKEN")
    return Client(url, token) if url and token else None
