"""The sandbox ASGI app: every emulated API on one Starlette router, plus counters.

Routes: the kie.ai market at the root, apikley under `/apikley` (its uploads
under `/apikley/file-upload`, as the real upload base is `.../file-upload`), AI/ML
API and ElevenLabs at their real paths, result files under `/files/`, and the
introspection endpoints under `/_sandbox/`. kie's uploads also answer on the
upload listener, a second socket of the same server (`_Hosts`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runner.sandbox import aimlapi, control, elevenlabs, market, uploads
from runner.sandbox.callbacks import CallbackDispatcher
from runner.sandbox.config import SandboxConfig
from runner.sandbox.redirects import Redirecting
from runner.sandbox.web import JSON, Sandbox

# kie's File Upload API: on its own host (docs/providers.md,
# "Market API: hosts and auth"), the sandbox's upload listener.
_KIE_UPLOAD_PATHS = frozenset({"/api/file-stream-upload", "/api/file-base64-upload",
                               "/api/file-url-upload"})


class _Hosts:
    """Two hosts, one app: the upload listener serves kie's File Upload API (and files);
    with quirk `market_upload_host` the API host refuses those paths, as api.kie.ai is
    not where the docs send uploads. Nothing changes when there is one listener only."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.sandbox.upload_ports:
            path: str = scope["path"]
            separate = path in _KIE_UPLOAD_PATHS and self.sandbox.state.quirk(
                "market_upload_host")  # counted for every upload it governs
            if self.sandbox.on_upload_host(scope):
                allowed = path in _KIE_UPLOAD_PATHS or path.startswith(("/files/", "/_sandbox/"))
            else:
                allowed = not separate
            if not allowed:
                await JSON({"code": 404, "msg": "Not Found"}, status_code=404)(scope, receive,
                                                                             send)
                return
        await self.app(scope, receive, send)


class _Counting:
    """Counts every answer per endpoint template and status (and the market's body code)."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 599  # stays so when the connection is dropped without an answer
        peeked = False

        async def counting_send(message: Message) -> None:
            nonlocal status, peeked
            if message["type"] == "http.response.start":
                status = message["status"]
            elif not peeked:
                peeked = True
                body: bytes = message.get("body", b"")
                if body.startswith(b'{"code":') and body[11:12] in (b",", b"}"):
                    endpoint = _endpoint(scope)
                    self.sandbox.state.stats.codes[(endpoint, int(body[8:11]))] += 1
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            host = "uploads: " if self.sandbox.on_upload_host(scope) else ""
            self.sandbox.state.stats.requests[(host + _endpoint(scope), status)] += 1


def _endpoint(scope: Scope) -> str:
    route = scope.get("route")
    path = route.path if isinstance(route, Route) else "(no route)"
    return f"{scope['method']} {path}"


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh sandbox with its own state; `app.state.sandbox` reaches it from tests."""
    sandbox = Sandbox(config or SandboxConfig(),
                      lambda sb: CallbackDispatcher(sb, market.callback_body))
    routes: list[BaseRoute] = [
        *market.routes(""), *market.routes("/apikley"),
        *uploads.routes(""), *uploads.routes("/apikley/file-upload"), *uploads.file_routes(),
        *aimlapi.routes(), *elevenlabs.routes(), *control.routes(),
    ]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await sandbox.callbacks.aclose()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    app.add_middleware(_Hosts, sandbox=sandbox)
    app.add_middleware(Redirecting, sandbox=sandbox)  # the `redirects` knob
    app.add_middleware(_Counting, sandbox=sandbox)  # added last: outermost, counts the 404s
    return app
