"""The market jobs API of kie.ai and apikley (same paths, same shapes; docs/providers.md).

    submit        POST {base}/api/v1/jobs/createTask {model, input, callBackUrl?}
    status        GET  {base}/api/v1/jobs/recordInfo?taskId=
    upload        POST {upload_base}/api/file-stream-upload (multipart file, uploadPath, fileName)
    refresh_url   POST {base}/api/v1/common/download-url {url}
    callback_task_id  the task a callback (POSTed to callBackUrl) names, its HMAC signature checked

Every answer is read the same way: the body `code` wins over the HTTP status
(the API says HTTP 200 and puts 402 in the body), the message is `msg` or
`message`, and `_error` is the one table that turns a code into an exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import mimetypes
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from runner.catalog.accounts import ProviderAccount
from runner.errors import (
    AccountRefused,
    ConcurrencyLimited,
    GenerationFailed,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    TaskUnknown,
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
    Clock,
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

# Words of the body codes, for messages (the market's ApiResponse enum and the other
# codes seen: docs/providers.md, "Market API: answers and error codes").
_MEANING = {
    400: "request rejected", 401: "API key refused", 402: "out of credits",
    403: "access refused", 404: "not found", 405: "method not allowed", 408: "upstream timeout",
    422: "request rejected", 429: "rate limited", 455: "service unavailable (maintenance)",
    500: "server error", 501: "generation failed", 505: "feature disabled",
}
# A body code 500 is usually transient, but the market also answers 500 to a request
# that can never work ("This voice is not within the range of allowed options",
# docs/providers.md, "Market API: answers and error codes"). Transient wording wins over
# invalid-request wording.
_TRANSIENT_WORDS = ("try again", "server exception", "timeout", "timed out", "busy", "maintenance")
_INVALID_WORDS = ("not within the range", "allowed options", "not supported", "is required",
                  "must be", "invalid", "validation", "too long", "exceeds")
_FINAL_FAIL = frozenset({"fail", "failed", "error"})  # "failed": nodetool PR #3500
_CONCURRENCY_WORDS = ("concurren", "running task")


def _meaning(code: int) -> str:
    return _MEANING.get(code, f"error code {code}")


class MarketAdapter:
    """kie.ai or apikley (the account says which), over the run's shared client.

    `webhook_hmac_key`: when set, callbacks must carry a valid signature no older
    than `callback_max_age_s` by `clock` (kie signs with seconds since the epoch).
    """

    synchronous: bool = False
    UPLOAD_PATH = "runner-uploads"  # a folder name: no leading or trailing slash

    def __init__(self, account: ProviderAccount, api_key: str, client: httpx.AsyncClient, *,
                 webhook_hmac_key: str | None = None, clock: Clock = time.time,
                 callback_max_age_s: float = 300.0) -> None:
        self.account = account
        self._client = client
        self._key = api_key
        self._headers = {**bearer(api_key), **ua_headers(client)}
        # Parsed once: httpx parses a URL given as text on every request, in Python.
        self._create_url = httpx.URL(f"{account.base_url}/api/v1/jobs/createTask")
        self._record_url = httpx.URL(f"{account.base_url}/api/v1/jobs/recordInfo")
        self._hmac_key = webhook_hmac_key.encode() if webhook_hmac_key else None
        self._clock = clock
        self._max_age_s = callback_max_age_s

    def __repr__(self) -> str:  # never the key
        return f"MarketAdapter(account={self.account.name!r})"

    # --- the protocol ---------------------------------------------------------
    async def submit(self, request: Request) -> Submitted:
        body: dict[str, Any] = {"model": request.model.id, "input": request.input}
        if request.callback_url:
            body["callBackUrl"] = request.callback_url
        with translate_errors(self.account.name, request.job_id):
            response = await self._client.post(self._create_url, json=body,
                                               headers=self._headers)
        answer = self._answer(response, job_id=request.job_id, creating=True)
        data = answer.get("data")
        task_id = _task_id(data) if isinstance(data, dict) else None
        if task_id is None:
            # Accepted, but we cannot name the task: it may exist and be billed, which is
            # exactly what request_sent=True tells the engine.
            raise TransportError("createTask was accepted but its answer holds no taskId",
                                 request_sent=True, provider=self.account.name,
                                 job_id=request.job_id, status=response.status_code)
        return Submitted(task_id)

    async def status(self, task_id: str) -> TaskStatus:
        with translate_errors(self.account.name, task_id=task_id):
            response = await self._client.get(self._record_url, params={"taskId": task_id},
                                              headers=self._headers)
        code, body = self._envelope(response, task_id=task_id)
        data = body.get("data")
        if isinstance(data, dict) and "state" in data:
            # A finished-and-failed record may come with body code 501: the record says more.
            return self._status_of(data, task_id, message_of(body))
        message = message_of(body)
        # "recordInfo is null" (documented: the task exists, its record is not visible
        # yet), a success with `data: null` (the same, as some answers carry it), 404.
        if code == 404 or (code == 422 and "recordinfo is null" in message.lower()) or (
                200 <= code < 300 and "data" in body and data is None):
            raise TaskUnknown(redact(f"no record of the task: {message or _meaning(code)}",
                                     self._key), provider=self.account.name, task_id=task_id,
                              status=response.status_code, code=code)
        self._check(code, body, response, task_id=task_id)
        raise ProviderUnavailable("recordInfo answered without a task record",
                                  provider=self.account.name, task_id=task_id,
                                  status=response.status_code, code=code)

    async def generate(self, request: Request, sink: Sink) -> SyncResult:
        raise RequestRejected("the market API is asynchronous: use submit and status",
                              provider=self.account.name, job_id=request.job_id)

    async def upload(self, path: Path, file_name: str) -> str:
        """Stream `path` to the file-upload API under a name of its own.

        Reusing a name overwrites the stored file, and a cache may serve the old copy
        for a while (docs/providers.md, "Market API: file upload"): two jobs uploading
        `take.mp3` from different folders would hear the same audio. So the stored name
        is `file_name` behind a random prefix, unique per upload; the provider's answer
        says where it is."""
        mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
        file_name = f"{secrets.token_hex(8)}-{file_name}"
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise RequestRejected(f"cannot read {path} for upload: {exc.strerror}",
                                  provider=self.account.name) from exc
        with handle, translate_errors(self.account.name):
            # httpx streams an open file in chunks: the upload never sits in memory whole.
            response = await self._client.post(
                f"{self.account.upload_base_url}/api/file-stream-upload", headers=self._headers,
                data={"uploadPath": self.UPLOAD_PATH, "fileName": file_name},
                files={"file": (file_name, handle, mime)})
        data = self._answer(response).get("data")
        found = data if isinstance(data, dict) else {}
        url = found.get("downloadUrl") or found.get("fileUrl")  # both are documented
        if not isinstance(url, str) or not url:
            raise ProviderUnavailable("the upload answer holds neither downloadUrl nor fileUrl",
                                      provider=self.account.name, status=response.status_code)
        return url

    async def refresh_url(self, url: str) -> str | None:
        """A 20-minute link for a file the provider made; None when it cannot make one
        (404/422: an external URL, or an API without the endpoint)."""
        with translate_errors(self.account.name):
            response = await self._client.post(
                f"{self.account.base_url}/api/v1/common/download-url", json={"url": url},
                headers=self._headers)
        body = read_json(response)
        status_code = response.status_code
        code = number(body.get("code")) if isinstance(body, dict) else None
        if (code if code is not None else status_code) in (404, 405, 422):
            return None
        data = self._answer(response).get("data")
        if isinstance(data, dict):
            data = data.get("url") or data.get("downloadUrl")
        return data if isinstance(data, str) and data else None

    def callback_task_id(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The task a callback (the recordInfo-shaped body POSTed to callBackUrl) is
        about. Anyone who learns the callback URL can POST to it, so the record in the
        body is never used: the engine polls the task instead. With a webhook key, the
        signature must be for exactly this task."""
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestRejected("callback body is not JSON",
                                  provider=self.account.name) from exc
        data = doc.get("data") if isinstance(doc, dict) else None
        ids = _ids(data) if isinstance(data, dict) else []
        if not ids:
            raise RequestRejected("callback body holds no task record with a taskId",
                                  provider=self.account.name)
        if len(ids) > 1:
            # The doc's text says data.taskId, its sample data.task_id; a body naming two
            # different tasks could carry one task's signature and claim the other.
            raise RequestRejected("callback body names two different tasks (taskId and "
                                  "task_id)", provider=self.account.name)
        if self._hmac_key is not None:
            self._verify(ids[0], headers)
        return ids[0]

    # --- reading answers -----------------------------------------------------------
    def _envelope(self, response: httpx.Response, *, job_id: str | None = None,
                  task_id: str | None = None, creating: bool = False
                  ) -> tuple[int, dict[str, Any]]:
        """(code, body): the body `code`, else the HTTP status. Raises for answers that are
        not a JSON object, classified by HTTP status."""
        body = read_json(response)
        if isinstance(body, dict):
            code = number(body.get("code"))
            return (int(code) if code is not None else response.status_code), body
        blocked = cloudflare_block(response, provider=self.account.name, job_id=job_id,
                                   task_id=task_id)
        if blocked is not None:
            raise blocked
        status_code = response.status_code
        if 200 <= status_code < 300:
            text = f"unreadable answer (HTTP {status_code}, not JSON): {excerpt(response)}"
            if creating:  # the task may have been created all the same
                raise TransportError(text, request_sent=True, provider=self.account.name,
                                     job_id=job_id, status=status_code)
            raise ProviderUnavailable(text, provider=self.account.name, job_id=job_id,
                                      task_id=task_id, status=status_code)
        raise self._error(status_code, excerpt(response), response, job_id=job_id,
                          task_id=task_id)

    def _answer(self, response: httpx.Response, *, job_id: str | None = None,
                task_id: str | None = None, creating: bool = False) -> dict[str, Any]:
        """The body of a successful answer; raises the classified error otherwise."""
        code, body = self._envelope(response, job_id=job_id, task_id=task_id, creating=creating)
        self._check(code, body, response, job_id=job_id, task_id=task_id)
        return body

    def _check(self, code: int, body: Mapping[str, Any], response: httpx.Response, *,
               job_id: str | None = None, task_id: str | None = None) -> None:
        if not 200 <= code < 300:
            raise self._error(code, message_of(body), response, job_id=job_id, task_id=task_id)

    def _error(self, code: int, message: str, response: httpx.Response, *,
               job_id: str | None = None, task_id: str | None = None) -> ProviderError:
        """The one table from a market code to an exception (see the module docstring)."""
        text = redact(f"{_meaning(code)}: {message}" if message else _meaning(code), self._key)
        context: dict[str, Any] = {"provider": self.account.name, "job_id": job_id,
                                   "task_id": task_id, "status": response.status_code,
                                   "code": code}
        lowered = message.lower()
        if code in (401, 402, 403):  # bad key, no credits, key caps or IP whitelist
            return AccountRefused(text, **context)
        if code == 429:
            wait_s = retry_after_s(response, self._clock)
            if any(w in lowered for w in _CONCURRENCY_WORDS):
                # "concurrent" in the text too: the limiter may key on the words.
                return ConcurrencyLimited(redact(f"too many concurrent tasks: {message}",
                                                 self._key), retry_after_s=wait_s, **context)
            return RateLimited(text, retry_after_s=wait_s, **context)
        if code == 501:
            return GenerationFailed(text, **context)
        if code == 500 and not any(w in lowered for w in _TRANSIENT_WORDS) and any(
                w in lowered for w in _INVALID_WORDS):
            return RequestRejected(text, **context)
        if code in (408, 455) or (code >= 500 and code != 505):
            return ProviderUnavailable(text, **context)
        if 400 <= code < 600:  # 400, 404, 405, 422, 505 and other client errors
            return RequestRejected(text, **context)
        return ProviderUnavailable(f"unexpected answer: {text}", **context)

    def _status_of(self, data: Mapping[str, Any], task_id: str, message: str) -> TaskStatus:
        """The record as a TaskStatus under `task_id` (the id polled, or the callback's)."""
        word = str(data.get("state") or "").strip().lower()
        run_time_s = _run_time_s(data)
        if word == "success":
            result = self._result_of(data, task_id)
            return TaskStatus(task_id, TaskState.SUCCEEDED, word, result=result,
                              run_time_s=run_time_s)
        if word in _FINAL_FAIL:
            fail_code = data.get("failCode")
            fail_msg = data.get("failMsg")
            return TaskStatus(
                task_id, TaskState.FAILED, word, run_time_s=run_time_s,
                fail_code=None if fail_code in (None, "") else str(fail_code),
                fail_message=redact(str(fail_msg) if fail_msg else message or "generation failed",
                                    self._key))
        # waiting, queuing, generating, and any word not known to be final
        return TaskStatus(task_id, TaskState.PENDING, word or "unknown")

    def _result_of(self, data: Mapping[str, Any], task_id: str) -> TaskResult:
        result = _decode(data.get("resultJson"))
        if result is None:
            raise ProviderUnavailable("the task succeeded but its resultJson is not JSON",
                                      provider=self.account.name, task_id=task_id)
        urls = _urls(result.get("resultUrls"))
        payload = _decode(result.get("resultObject"))
        if not payload and ("text" in result or "transcripts" in result):
            # A public client falls back to top-level `text` and `transcripts[]`
            # (docs/providers.md, "Market API: speech-to-text").
            payload = {k: v for k, v in result.items() if k not in ("resultUrls", "resultObject")}
        if not urls and not payload:
            raise ProviderUnavailable("the task succeeded but reported no result yet",
                                      provider=self.account.name, task_id=task_id)
        # `param` repeats the create request, callBackUrl included (it may hold a secret).
        raw = {k: v for k, v in data.items() if k != "param"}
        return TaskResult(task_id, urls=urls, payload=payload or None, credits=_credits(data),
                          raw=raw)

    def _verify(self, task_id: str, headers: Mapping[str, str]) -> None:
        """kie's webhook signature: base64(HMAC-SHA256(taskId + "." + timestamp, key)),
        for the one task the body names."""
        assert self._hmac_key is not None
        lowered = {k.lower(): v for k, v in headers.items()}
        stamp = lowered.get("x-webhook-timestamp", "").strip()
        given = lowered.get("x-webhook-signature", "").strip()
        if not stamp or not given:
            raise self._refused("callback is not signed, but a webhook HMAC key is configured")
        try:
            age_s = self._clock() - int(stamp)
        except ValueError:
            raise self._refused("callback timestamp is not a number of seconds") from None
        if abs(age_s) > self._max_age_s:  # a replay, or a clock far off
            when = "old" if age_s > 0 else "in the future"
            raise self._refused(f"callback timestamp is {abs(age_s):.0f} s {when} "
                                f"(at most {self._max_age_s:.0f} s accepted)")
        expected = base64.b64encode(hmac.new(
            self._hmac_key, f"{task_id}.{stamp}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(given.encode(), expected):
            raise self._refused("callback signature does not match")

    def _refused(self, text: str) -> RequestRejected:
        return RequestRejected(text, provider=self.account.name)


def _task_id(data: Mapping[str, Any]) -> str | None:
    ids = _ids(data)
    return ids[0] if ids else None


def _ids(data: Mapping[str, Any]) -> list[str]:
    found = [data.get("taskId"), data.get("task_id")]
    return list(dict.fromkeys(v for v in found if isinstance(v, str) and v))


def _decode(value: Any) -> dict[str, Any] | None:
    """`resultJson` (and `resultObject`) as an object: a JSON string (the documented shape),
    an object (newer docs), or empty. None when a string is not JSON."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if isinstance(value, list):  # a bare list can only be the URLs
        return {"resultUrls": value}
    return value if isinstance(value, dict) else {}


def _urls(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    urls = [item.get("url") if isinstance(item, dict) else item for item in items]
    return tuple(u for u in urls if isinstance(u, str) and u)


def _credits(data: Mapping[str, Any]) -> float | None:
    for key in ("creditsConsumed", "consumeCredits"):  # newer docs, callback examples
        value = number(data.get(key))
        if value is not None:
            return value
    return None


def _run_time_s(data: Mapping[str, Any]) -> float | None:
    created, completed = number(data.get("createTime")), number(data.get("completeTime"))
    if created is not None and completed is not None and completed >= created:
        return (completed - created) / 1000
    # costTime is documented in ms; the callback example's 8 for a 10 s task looks like
    # seconds, which is why the timestamps above are preferred.
    cost_ms = number(data.get("costTime"))
    return None if cost_ms is None else cost_ms / 1000
