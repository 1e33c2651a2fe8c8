"""The HTTP boundary: one client per run, and httpx errors translated once.

Retries are not done here (the transport retries nothing): the engine's retry
policy is the only layer that repeats a request, because only it knows whether
repeating can cost money twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any
from urllib.parse import urlencode

import aiohttp
import httpx

from runner import __version__
from runner.errors import RequestRejected, TransportError
from runner.providers.transport import AiohttpTransport

# The kie.ai hosts sit behind Cloudflare, which answers a bare 403 "error code:
# 1010" to clients without a browser-like User-Agent (FACTS.md §1.5).
USER_AGENT = f"Mozilla/5.0 (compatible; runner/{__version__}; +https://runner.invalid)"


def make_client(*, max_connections: int = 100, connect_timeout_s: float = 10.0,
                read_timeout_s: float = 60.0) -> httpx.AsyncClient:
    """The run's shared client: keep-alive pool (aiohttp's, see runner/providers/transport.py),
    no transport retries, a User-Agent."""
    transport = AiohttpTransport(max_connections=max_connections)
    return LeanClient(
        transport=transport,
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s,
                              write=read_timeout_s, pool=None),
        follow_redirects=True,
    )


class LeanClient(httpx.AsyncClient):
    """`httpx.AsyncClient` with a short road for the requests the runner sends most.

    A plain request (a JSON body or none, query parameters, headers; no files,
    cookies or auth) goes straight to `AiohttpTransport.send_fast` with a URL
    string built here. httpx's own road parses the URL two or three times in pure
    Python and runs its auth, cookie and redirect machinery on every request,
    which cost more CPU than the request itself (bench/bench_http.py). Anything
    else takes httpx's own road, and so does a redirect once answered: it is
    followed by httpx's rules (a 303 turns a POST into a GET, so nothing is sent
    twice), except that no credential header (`CREDENTIAL_HEADERS`: Authorization,
    xi-api-key, ...) follows a redirect to another origin.
    """

    def __init__(self, *, transport: AiohttpTransport, **options: Any) -> None:
        super().__init__(transport=transport, **options)
        self._fast_transport = transport
        self._fast_headers = dict(self.headers)
        self._fast_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout.connect, sock_read=self.timeout.read)

    def _fast_parts(self, url: object, options: dict[str, Any]) -> tuple[str, dict[str, str],
                                                                         bytes | None] | None:
        """(URL, headers, body) when the request can take the short road, else None."""
        if not isinstance(url, str) or self._mounts or self.auth is not None:
            return None
        json_body, params, headers = (options.pop("json", None), options.pop("params", None),
                                      options.pop("headers", None))
        options.pop("follow_redirects", None)
        if any(v is not None and v is not httpx.USE_CLIENT_DEFAULT for v in options.values()):
            return None  # content, data, files, cookies, auth, timeout, extensions
        if params:
            # Only what urlencode spells as httpx does: httpx writes True as "true",
            # None as an empty value and a list as a repeated key.
            if not isinstance(params, Mapping) or "?" in url or \
                    any(type(v) not in (str, int, float) for v in params.values()):
                return None
            url = f"{url}?{urlencode(params)}"
        merged = dict(self._fast_headers)
        if headers:
            if not isinstance(headers, Mapping):
                return None
            for name, value in headers.items():  # a caller's header replaces a default
                for default in [d for d in merged if d.lower() == name.lower()]:
                    del merged[default]
                merged[name] = value
        body = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":"),
                              allow_nan=False).encode("utf-8")
            if not any(name.lower() == "content-type" for name in merged):
                merged["Content-Type"] = "application/json"
        return url, merged, body

    async def request(self, method: str, url: httpx.URL | str, **options: Any) -> httpx.Response:
        parts = self._fast_parts(url, dict(options))
        if parts is None:
            return await super().request(method, url, **options)
        response = await self._fast_transport.send_fast(method, *parts, self._fast_timeout,
                                                        stream=False)
        if response.has_redirect_location and self._follows(options):
            return await self._redirected(method, parts, response, stream=False)
        return response

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: httpx.URL | str,
                     **options: Any) -> AsyncIterator[httpx.Response]:
        parts = self._fast_parts(url, dict(options))
        if parts is None:
            async with super().stream(method, url, **options) as response:
                yield response
            return
        response = await self._fast_transport.send_fast(method, *parts, self._fast_timeout,
                                                        stream=True)
        if response.has_redirect_location and self._follows(options):
            response = await self._redirected(method, parts, response, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def _redirected(self, method: str, parts: tuple[str, dict[str, str], bytes | None],
                          response: httpx.Response, *, stream: bool) -> httpx.Response:
        """Follow a redirect the short road received, the way httpx would have."""
        await response.aclose()
        url, headers, body = parts
        sent = httpx.Request(method, url, headers=headers, content=body,
                             extensions={"timeout": self.timeout.as_dict()})
        return await self.send(self._build_redirect_request(sent, response), stream=stream,
                               follow_redirects=True)

    def _redirect_headers(self, request: httpx.Request, url: httpx.URL,
                          method: str) -> httpx.Headers:
        """httpx's headers for a redirect, without any credential when it leaves the
        origin: httpx drops `Authorization` only, and ElevenLabs' `xi-api-key` (or any
        other key header) would go to whatever host the Location names."""
        headers = super()._redirect_headers(request, url, method)
        if not keeps_credentials(request.url, url):
            for name in CREDENTIAL_HEADERS:
                headers.pop(name, None)
        return headers

    def _follows(self, options: dict[str, Any]) -> bool:
        follow = options.get("follow_redirects", httpx.USE_CLIENT_DEFAULT)
        return self.follow_redirects if follow is httpx.USE_CLIENT_DEFAULT else bool(follow)


# Headers that carry a credential: they never follow a redirect to another origin.
CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "xi-api-key",
                      "x-api-key", "api-key")


def keeps_credentials(origin: httpx.URL, target: httpx.URL) -> bool:
    """A redirect from `origin` to `target` may keep the request's credentials: the
    same scheme, host and port, or an upgrade from http to https of the same host."""
    def port(url: httpx.URL) -> int | None:
        return url.port or {"http": 80, "https": 443}.get(url.scheme)

    if origin.host != target.host:
        return False
    if origin.scheme == target.scheme:
        return port(origin) == port(target)
    return (origin.scheme, port(origin), target.scheme, port(target)) == \
        ("http", 80, "https", 443)


@contextlib.contextmanager
def translate_errors(provider: str, job_id: str | None = None,
                     task_id: str | None = None) -> Iterator[None]:
    """Turn httpx exceptions into `TransportError`, telling whether the request may
    have reached the provider (`request_sent`): a refused connection certainly did
    not; a timeout or a dropped connection after sending may have."""
    context = {"provider": provider, "job_id": job_id, "task_id": task_id}
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise TransportError(f"could not connect: {_describe(exc)}", request_sent=False,
                             **context) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
        # Refused on our side before anything was sent (a bad URL, an illegal header).
        raise RequestRejected(f"unusable URL: {_describe(exc)}", **context) from exc  # type: ignore[arg-type]
    except httpx.TimeoutException as exc:
        raise TransportError(f"timed out after sending: {_describe(exc)}", request_sent=True,
                             **context) from exc
    except httpx.TransportError as exc:
        raise TransportError(f"connection lost: {_describe(exc)}", request_sent=True,
                             **context) from exc


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    try:
        url = exc.request.url
    except RuntimeError:  # no request attached
        return text
    # The query string may carry a callback secret; the path is enough to say where.
    return f"{text} ({exc.request.method} {url.scheme}://{url.host}{url.path})"
