"""Shared HTTP plumbing of the emulated APIs: the per-app context, keys, JSON, faults.

Faults that break the connection need the socket itself: the sandbox's listening
sockets note the connections they accept (connections.py), so a response can
close its own mid-flight exactly as a failing load balancer would. Under
`httpx.ASGITransport` there is no socket, and the same responses raise instead.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from runner.sandbox.config import SandboxConfig
from runner.sandbox.connections import Connections
from runner.sandbox.media import MediaStore
from runner.sandbox.state import SandboxState, Task


class Dispatcher(Protocol):
    """Sends market callbacks (runner.sandbox.callbacks); the app chooses the one to use."""

    def schedule(self, task: Task) -> None: ...

    def reset(self) -> None: ...

    async def aclose(self) -> None: ...


class Sandbox:
    """Everything the handlers share; one per app, reached as `request.app.state.sandbox`."""

    def __init__(self, config: SandboxConfig,
                 dispatcher: Callable[[Sandbox], Dispatcher]) -> None:
        self.config = config
        self.state = SandboxState(config)
        self.media = MediaStore()
        self.callbacks = dispatcher(self)
        # Filled by the listening sockets a server binds for this app (server.bind).
        self.connections = Connections()
        # kie's upload host: the listener(s) a server bound for it (server.py), by port.
        # Empty (no second listener, e.g. under httpx.ASGITransport): one host serves all.
        self.upload_ports: set[int] = set()
        self.upload_url: str | None = None

    def on_upload_host(self, scope: Scope) -> bool:
        server: tuple[str, int | None] | None = scope.get("server")
        return server is not None and server[1] in self.upload_ports

    def reset(self) -> None:
        self.state.reset()
        self.media.reset()
        self.callbacks.reset()


def sandbox_of(request: Request) -> Sandbox:
    found: Sandbox = request.app.state.sandbox
    return found


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def bearer_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def base_url(request: Request) -> str:
    """The root URL the client used to reach this sandbox (result URLs are built on it)."""
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def is_loopback_url(url: str) -> bool:
    """The sandbox only ever contacts 127.0.0.0/8, ::1 and localhost."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def maybe_slow(sandbox: Sandbox) -> None:
    """The `slow` fault: hold the answer past any reasonable client timeout."""
    if sandbox.state.draw_fault("slow"):
        await sandbox.config.sleep(sandbox.config.slow_response_s)


async def _close_socket(scope: Scope, receive: Receive) -> bool:
    sandbox: Sandbox = scope["app"].state.sandbox
    return await sandbox.connections.cut(scope, receive)


class DroppedConnection(Exception):
    """Raised where no socket can be closed (in-process transports)."""


class Dropped(Response):
    """Close the connection without an answer."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await _close_socket(scope, receive):
            raise DroppedConnection("sandbox fault: connection dropped")


class Truncated(Response):
    """Announce the whole body, send half of it, then close the connection."""

    def __init__(self, content: bytes, media_type: str) -> None:
        super().__init__(content, media_type=media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body[: len(self.body) // 2],
                    "more_body": True})
        if not await _close_socket(scope, receive):
            raise DroppedConnection("sandbox fault: download truncated")


async def json_body(request: Request) -> Any:
    """The request's JSON, or raises ValueError."""
    raw = await request.body()
    return json.loads(raw)
