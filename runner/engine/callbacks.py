"""The local receiver for provider callbacks (`--callback-url`, `--callback-listen`).

A small Starlette app served by uvicorn inside the run's own event loop, at the
path of the public URL (`--callback-url https://host/kie` → `/kie/<secret>`; a
proxy forwards the path as it is). The URL handed to providers carries a
per-run secret; a request without it is refused.

A callback is only a hint. Anyone who learns the URL can POST to it, so nothing
in the body is recorded: the receiver takes the task id from it (checking the
HMAC signature against exactly that task, where the account has a key) and
wakes the job waiting for that task, which then asks the provider
(`recordInfo`) and records only the provider's answer. A forged callback can at
most cause one extra poll. Bodies are capped before they are read; refused ones
(wrong path or secret, too large, malformed, badly signed) are counted and named
in the run's summary. Polling continues at a slow pace as a safety net, a
callback that comes before anyone waits is kept, and duplicates are harmless.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections import Counter, OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from runner.errors import RequestRejected, UsageError
from runner.providers.base import Adapter

# A market callback is a task record (the create request's text included, up to
# 5,000 characters): far below this. Bigger bodies are refused before being read.
MAX_BODY_BYTES = 256 * 1024
# Hints for tasks nobody waits for yet, kept for a waiter that comes later; bounded,
# because anyone can send them.
MAX_EARLY_HINTS = 10_000


class Waiter:
    """One waiting task's doorbell: `wait` returns early when a callback names it."""

    def __init__(self, hub: CallbackHub, task_id: str) -> None:
        self.hub = hub
        self.task_id = task_id
        self.event = asyncio.Event()

    def ring(self) -> None:
        self.event.set()

    async def wait(self, timeout_s: float) -> bool:
        """True if a callback named the task within `timeout_s` (poll now), False when
        the time ran out (poll anyway: the safety net). Rings while the poller was
        busy are coalesced into one."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout_s)
        except TimeoutError:
            return False
        self.event.clear()
        return True

    def close(self) -> None:
        self.hub.waiters.pop(self.task_id, None)
        self.hub.owners.pop(self.task_id, None)


class CallbackHub:
    """Receives callbacks for every market account of the run."""

    def __init__(self, public_url: str, listen: str, adapters: Sequence[Adapter]) -> None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--callback-listen must be HOST:PORT, not {listen!r}")
        self.host, self.port = host, int(port)
        self.public_url, self.path = _public_url(public_url)
        self.secret = secrets.token_urlsafe(18)
        self.adapters = list(adapters)
        self.waiters: dict[str, Waiter] = {}
        self.owners: dict[str, Adapter] = {}  # task id -> the adapter that made the task
        self.early: OrderedDict[str, None] = OrderedDict()  # hints that beat their waiter
        self.received = 0  # callbacks accepted as hints
        self.refused: Counter[str] = Counter()  # by reason
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{self.public_url}/{self.secret}"

    @property
    def rejected(self) -> int:
        return sum(self.refused.values())

    def waiter(self, task_id: str, adapter: Adapter | None = None) -> Waiter:
        """Wait for callbacks naming `task_id`, made through `adapter` (whose webhook key,
        if any, must have signed them)."""
        waiter = Waiter(self, task_id)
        self.waiters[task_id] = waiter
        if adapter is not None:
            self.owners[task_id] = adapter
        if task_id in self.early:  # its callback came before its waiter
            del self.early[task_id]
            waiter.ring()
        return waiter

    def hint(self, task_id: str) -> None:
        """A callback named this task: its waiter polls now."""
        self.received += 1
        waiter = self.waiters.get(task_id)
        if waiter is not None:
            waiter.ring()
            return
        self.early[task_id] = None
        self.early.move_to_end(task_id)
        while len(self.early) > MAX_EARLY_HINTS:
            self.early.popitem(last=False)

    def task_id(self, body: bytes, headers: dict[str, str]) -> str:
        """The task a callback names, accepted by the adapter that made that task (an
        account without a webhook key must not vouch for a task of one with a key)."""
        errors = []
        for adapter in self.adapters:
            try:
                task_id = adapter.callback_task_id(body, headers)
            except RequestRejected as exc:
                errors.append(str(exc))
                continue
            owner = self.owners.get(task_id)
            if owner is None or owner is adapter:
                return task_id
        raise RequestRejected("; ".join(dict.fromkeys(errors)) or
                              "not signed with the webhook key of the task's account")

    def describe_refused(self) -> str | None:
        """One line for the summary, when callbacks were refused."""
        if not self.refused:
            return None
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.refused.most_common())
        return (f"{self.rejected} callback(s) refused ({reasons}); the tasks were polled "
                f"instead. Callbacks are received at {self.path or ''}/<secret> on "
                f"{self.host}:{self.port}")

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        def refuse(reason: str, status: int, text: str) -> JSONResponse:
            self.refused[reason] += 1
            return JSONResponse({"code": status, "msg": text}, status_code=status)

        async def receive(request: Request) -> JSONResponse:
            given = request.path_params["secret"]
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                return refuse("wrong secret", 403, "forbidden")
            body = await _capped_body(request)
            if body is None:
                return refuse("too large", 413, f"body over {MAX_BODY_BYTES} bytes")
            try:
                task_id = self.task_id(body, dict(request.headers))
            except RequestRejected as exc:
                return refuse("malformed or badly signed", 400, str(exc))
            self.hint(task_id)
            # The providers ask for a 200 with this body, for duplicates too.
            return JSONResponse({"code": 200, "msg": "success"})

        async def elsewhere(request: Request) -> JSONResponse:
            return refuse("wrong path", 404, "not found")

        return Starlette(routes=[
            Route(f"{unquote(self.path)}/{{secret}}", receive, methods=["POST"]),
            Route("/{rest:path}", elsewhere, methods=["GET", "POST", "PUT", "HEAD"]),
        ])

    async def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the bind error
                raise UsageError(f"cannot listen on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        if self.port == 0:
            self.port = self._server.servers[0].sockets[0].getsockname()[1]
            parts = urlsplit(self.public_url)
            if parts.port == 0:  # the default public URL names the listening port
                self.public_url = parts._replace(
                    netloc=f"{parts.hostname}:{self.port}").geturl()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task


def _public_url(url: str) -> tuple[str, str]:
    """(the URL without a trailing slash, its path): refused unless it is an http(s)
    URL with a host, and no query or fragment (the secret goes after its path)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 (parsing the port raises on a bad one)
    except ValueError as exc:
        raise UsageError(f"--callback-url {url!r}: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or \
            parts.fragment or url.strip().endswith(("?", "#")):
        raise UsageError(f"--callback-url must be http(s)://HOST[:PORT][/PATH] with no "
                         f"query or fragment, not {url!r}")
    path = parts.path.rstrip("/")
    return parts._replace(path=path).geturl(), path


async def _capped_body(request: Any) -> bytes | None:
    """The request body, or None when it is over MAX_BODY_BYTES (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
