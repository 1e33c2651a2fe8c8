"""The local receiver for provider callbacks (`--callback-url`, `--callback-listen`).

A small Starlette app served by uvicorn inside the run's own event loop. The
URL handed to providers carries a per-run secret; a request without it is
refused. Bodies are parsed (and their HMAC signature checked, where the account
has a key) by the market adapter. A callback wakes the job waiting for that
task; polling continues at a slow pace as a safety net, a callback that comes
before anyone waits is kept, and duplicates are harmless.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Sequence
from typing import Any

from runner.errors import RequestRejected, UsageError
from runner.providers.base import Adapter, TaskState, TaskStatus


class Waiter:
    def __init__(self, hub: CallbackHub, task_id: str) -> None:
        self.hub = hub
        self.task_id = task_id
        self.event = asyncio.Event()
        self.status: TaskStatus | None = None

    def deliver(self, status: TaskStatus) -> None:
        if self.status is None or self.status.state is TaskState.PENDING:
            self.status = status
            self.event.set()

    async def wait(self, timeout_s: float) -> TaskStatus | None:
        """The callback's status if one arrives within `timeout_s`, else None (poll then)."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout_s)
        except TimeoutError:
            return None
        return self.status

    def close(self) -> None:
        self.hub.waiters.pop(self.task_id, None)


class CallbackHub:
    """Receives callbacks for every market account of the run."""

    def __init__(self, public_url: str, listen: str, adapters: Sequence[Adapter]) -> None:
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--callback-listen must be HOST:PORT, not {listen!r}")
        self.host, self.port = host, int(port)
        self.secret = secrets.token_urlsafe(18)
        self.public_url = public_url.rstrip("/")
        self.adapters = list(adapters)
        self.waiters: dict[str, Waiter] = {}
        self.early: dict[str, TaskStatus] = {}  # callbacks that beat the waiter
        self.received = 0
        self.rejected = 0
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{self.public_url}/{self.secret}"

    def waiter(self, task_id: str) -> Waiter:
        waiter = Waiter(self, task_id)
        self.waiters[task_id] = waiter
        early = self.early.pop(task_id, None)
        if early is not None:
            waiter.deliver(early)
        return waiter

    def deliver(self, status: TaskStatus) -> None:
        self.received += 1
        waiter = self.waiters.get(status.task_id)
        if waiter is not None:
            waiter.deliver(status)
        elif status.state is not TaskState.PENDING:
            self.early[status.task_id] = status

    def parse(self, body: bytes, headers: dict[str, str]) -> TaskStatus:
        errors = []
        for adapter in self.adapters:
            try:
                return adapter.parse_callback(body, headers)
            except RequestRejected as exc:
                errors.append(str(exc))
        raise RequestRejected("; ".join(errors) or "no account accepts callbacks")

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def receive(request: Request) -> JSONResponse:
            given = request.path_params["secret"]
            if not hmac.compare_digest(given.encode(), self.secret.encode()):
                self.rejected += 1
                return JSONResponse({"code": 403, "msg": "forbidden"}, status_code=403)
            try:
                status = self.parse(await request.body(), dict(request.headers))
            except RequestRejected as exc:
                self.rejected += 1
                return JSONResponse({"code": 400, "msg": str(exc)}, status_code=400)
            self.deliver(status)
            # The providers ask for a 200 with this body, for duplicates too.
            return JSONResponse({"code": 200, "msg": "success"})

        return Starlette(routes=[Route("/{secret}", receive, methods=["POST"])])

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
            if self.public_url.endswith(":0"):
                self.public_url = self.public_url[:-2] + f":{self.port}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task
