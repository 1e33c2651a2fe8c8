"""AI/ML API Stable Audio: an asynchronous generation over plain HTTP statuses.

    submit   POST {base}/v2/generate/audio {model: "stable-audio", ...input} → {id, status}
    status   GET  {base}/v2/generate/audio?generation_id= → queued | generating | completed | error

Unlike the market API, the HTTP status is the truth here, and running out of
credits is 403, not 402. There is no file upload, no download-link service and
no callback: those methods say so. What the provider documents: docs/providers.md,
"AI/ML API: Stable Audio" and "AI/ML API: errors, limits and billing".
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from runner.catalog.accounts import ProviderAccount
from runner.errors import (
    AccountRefused,
    ConcurrencyLimited,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    TransportError,
)
from runner.providers.base import (
    Request,
    Sink,
    Submitted,
    SyncResult,
    TaskResult,
    TaskState,
    TaskStatus,
)
from runner.providers.common import (
    bearer,
    cloudflare_block,
    excerpt,
    message_of,
    number,
    read_json,
    redact,
    retry_after_s,
    ua_headers,
)
from runner.providers.http import translate_errors

_PATH = "/v2/generate/audio"
_PENDING = frozenset({"queued", "generating"})
_FAILED = frozenset({"error", "failed", "fail"})


class AimlapiAdapter:
    """AI/ML API over the run's shared client; Bearer auth."""

    synchronous: bool = False

    def __init__(self, account: ProviderAccount, api_key: str, client: httpx.AsyncClient) -> None:
        self.account = account
        self._client = client
        self._key = api_key
        self._headers = {**bearer(api_key), **ua_headers(client)}

    def __repr__(self) -> str:  # never the key
        return f"AimlapiAdapter(account={self.account.name!r})"

    async def submit(self, request: Request) -> Submitted:
        # The runner owns `model`; the job's input is the rest of the body.
        body = {"model": request.model.id,
                **{k: v for k, v in request.input.items() if k != "model"}}
        with translate_errors(self.account.name, request.job_id):
            response = await self._client.post(f"{self.account.base_url}{_PATH}", json=body,
                                               headers=self._headers)
        answer = self._answer(response, job_id=request.job_id, creating=True)
        # The example output says `id`, the rendered page's sample `generation_id`.
        task_id = answer.get("id") or answer.get("generation_id")
        if not isinstance(task_id, str) or not task_id:
            raise TransportError("the generation was accepted but its answer holds no id",
                                 request_sent=True, provider=self.account.name,
                                 job_id=request.job_id, status=response.status_code)
        return Submitted(task_id)  # passed back verbatim, `:stable-audio` suffix and all

    async def status(self, task_id: str) -> TaskStatus:
        with translate_errors(self.account.name, task_id=task_id):
            response = await self._client.get(
                f"{self.account.base_url}{_PATH}", params={"generation_id": task_id},
                headers=self._headers)
        answer = self._answer(response, task_id=task_id)
        word = str(answer.get("status") or "").strip().lower()
        if word == "completed":
            return TaskStatus(task_id, TaskState.SUCCEEDED, word,
                              result=self._result_of(answer, task_id))
        if word in _FAILED:
            error = answer.get("error")
            error = error if isinstance(error, dict) else {}
            name, text = error.get("name"), error.get("message")
            return TaskStatus(task_id, TaskState.FAILED, word,
                              fail_code=str(name) if name else None,
                              fail_message=redact(str(text or "generation failed"), self._key))
        # queued, generating, and anything the four-value enum may grow into
        return TaskStatus(task_id, TaskState.PENDING, word or "unknown")

    async def generate(self, request: Request, sink: Sink) -> SyncResult:
        raise RequestRejected("AI/ML API is asynchronous: use submit and status",
                              provider=self.account.name, job_id=request.job_id)

    async def upload(self, path: Path, file_name: str) -> str:
        raise RequestRejected("AI/ML API offers no file upload (stable-audio takes no audio "
                              "input)", provider=self.account.name)

    async def refresh_url(self, url: str) -> str | None:
        return None  # no download-link service: the result must be fetched at once

    def callback_task_id(self, body: bytes, headers: Mapping[str, str]) -> str:
        raise RequestRejected("AI/ML API sends no callbacks: poll with status",
                              provider=self.account.name)

    # --- reading answers -----------------------------------------------------------
    def _result_of(self, answer: Mapping[str, Any], task_id: str) -> TaskResult:
        files = answer.get("audio_file")
        files = files if isinstance(files, list) else [files]
        urls = tuple(f["url"] for f in files if isinstance(f, dict)
                     and isinstance(f.get("url"), str) and f["url"])
        if not urls:
            raise ProviderUnavailable("the generation is completed but has no audio_file.url "
                                      "yet", provider=self.account.name, task_id=task_id)
        meta = answer.get("meta")
        usage = meta.get("usage") if isinstance(meta, dict) else None
        credits = number(usage.get("credits_used")) if isinstance(usage, dict) else None
        return TaskResult(task_id, urls=urls, credits=credits, raw=dict(answer))

    def _answer(self, response: httpx.Response, *, job_id: str | None = None,
                task_id: str | None = None, creating: bool = False) -> dict[str, Any]:
        body = read_json(response)
        status_code = response.status_code
        if 200 <= status_code < 300:  # the docs show 200 and 201: any 2xx
            if isinstance(body, dict):
                return body
            text = f"unreadable answer (HTTP {status_code}, not a JSON object)"
            if creating:  # the generation may exist all the same
                raise TransportError(text, request_sent=True, provider=self.account.name,
                                     job_id=job_id, status=status_code)
            raise ProviderUnavailable(text, provider=self.account.name, task_id=task_id,
                                      status=status_code)
        blocked = cloudflare_block(response, provider=self.account.name, job_id=job_id,
                                   task_id=task_id)
        if blocked is not None:
            raise blocked
        message = _message(body) if isinstance(body, dict) else excerpt(response)
        raise self._error(status_code, message, response, job_id=job_id, task_id=task_id)

    def _error(self, status_code: int, message: str, response: httpx.Response, *,
               job_id: str | None, task_id: str | None) -> ProviderError:
        """The one table from an AI/ML API status to an exception."""
        text = redact(message or f"HTTP {status_code}", self._key)
        context: dict[str, Any] = {"provider": self.account.name, "job_id": job_id,
                                   "task_id": task_id, "status": status_code}
        if status_code in (401, 402, 403):  # bad key; out of credits is 403 here
            meaning = "API key refused" if status_code == 401 else "out of credits"
            return AccountRefused(f"{meaning}: {text}", **context)
        if status_code == 429:  # "a rate limit or a concurrency limit"
            if "concurren" in text.lower():
                return ConcurrencyLimited(f"too many concurrent requests: {text}",
                                          retry_after_s=retry_after_s(response), **context)
            return RateLimited(f"rate limited: {text}", retry_after_s=retry_after_s(response),
                               **context)
        if status_code >= 500 or status_code == 408:
            return ProviderUnavailable(f"server error: {text}", **context)
        if 400 <= status_code < 500:
            return RequestRejected(f"request rejected: {text}", **context)
        return ProviderUnavailable(f"unexpected answer: {text}", **context)


def _message(body: Mapping[str, Any]) -> str:
    """`message`, plus the validation hints AI/ML API adds ("Expected ..., received ...")."""
    message = message_of(body)
    hints = []
    for item in body.get("errors") or []:
        if not isinstance(item, dict):
            continue
        path = item.get("path")
        where = ".".join(str(p) for p in path) if isinstance(path, list) else str(path or "")
        hint = str(item.get("message") or "")
        if item.get("expected") is not None and item.get("received") is not None:
            hint += f" (expected {item['expected']}, received {item['received']})"
        hints.append(f"{where}: {hint}" if where else hint)
    return "; ".join(filter(None, [message, *hints]))
