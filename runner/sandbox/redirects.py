"""The `redirects` knob: answer requests under a path prefix with a redirect.

Real result URLs sit behind CDNs and storage front ends that redirect; a client
must follow the good redirects and refuse the bad ones (another scheme, private
address space, its credentials sent on to another host). The knob maps a path
prefix to a Location, in which `{path}` is the request's path and query:

    {"/files/": "file:///etc/passwd"}                     every result download
    {"/files/": "http://localhost:PORT{path}"}            the same file, another host
    {"/v1/sound-generation": "http://127.0.0.1:PORT{path}"}  an API call, elsewhere

A request that already came to the Location's host and port is served as usual,
so a redirect to this sandbox under another name ends there. POST is answered
307 (the method and body go along), everything else 302.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from runner.sandbox.web import Sandbox


class Redirecting:
    """ASGI middleware applying `SandboxConfig.redirects` before routing."""

    def __init__(self, app: ASGIApp, sandbox: Sandbox) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        location = self._location(scope) if scope["type"] == "http" else None
        if location is None:
            await self.app(scope, receive, send)
            return
        status = 307 if scope["method"] == "POST" else 302
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"location", location.encode("latin-1")),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    def _location(self, scope: Scope) -> str | None:
        path: str = scope["path"]
        for prefix, target in self.sandbox.config.redirects.items():
            if not path.startswith(prefix):
                continue
            query = scope.get("query_string", b"").decode("latin-1")
            location = target.replace("{path}", path + (f"?{query}" if query else ""))
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            there = urlsplit(location)
            if there.netloc and there.netloc.lower() == host:
                return None  # already at the Location's host: serve it
            return location
        return None
