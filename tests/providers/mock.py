"""A scripted provider for shapes the sandbox never produces (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from runner.catalog.accounts import BUILTIN, ProviderAccount
from runner.providers.http import USER_AGENT

BASE = "https://provider.test"
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def account(name: str) -> ProviderAccount:
    import dataclasses

    return dataclasses.replace(BUILTIN[name], base_url=BASE, upload_base_url=f"{BASE}/upload")


def reply(body: Any = None, status: int = 200, headers: dict[str, str] | None = None,
          text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, content=json.dumps(body).encode(),
                          headers={"content-type": "application/json", **(headers or {})})


class Script:
    """Answers requests in order and keeps what was sent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.sent: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        request.read()
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def client(self, *, user_agent: bool = True) -> httpx.AsyncClient:
        headers = {"User-Agent": USER_AGENT} if user_agent else None
        return httpx.AsyncClient(transport=httpx.MockTransport(self), headers=headers)

    @property
    def last(self) -> httpx.Request:
        return self.sent[-1]
