"""The HTTP boundary: one client per run, and httpx errors translated once.

Retries are not done here (the transport retries nothing): the engine's retry
policy is the only layer that repeats a request, because only it knows whether
repeating can cost money twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from runner import __version__
from runner.errors import RequestRejected, TransportError
from runner.providers.transport import AiohttpTransport

# The kie.ai hosts sit behind Cloudflare, which answers a bare 403 "error code:
# 1010" to clients without a browser-like User-Agent (docs/providers.md,
# "Market API: hosts and auth").
USER_AGENT = f"Mozilla/5.0 (compatible; runner/{__version__}; +https://runner.invalid)"


def make_client(*, max_connections: int = 100, connect_timeout_s: float = 10.0,
                read_timeout_s: float = 60.0) -> httpx.AsyncClient:
    """The run's shared client: keep-alive pool (aiohttp's, see runner/providers/transport.py),
    no transport retries, a User-Agent, redirects followed without leaking a credential."""
    return RedirectSafeClient(
        AiohttpTransport(max_connections=max_connections),
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s,
                              write=read_timeout_s, pool=None),
        follow_redirects=True,
    )


class RedirectSafeClient(httpx.AsyncClient):
    """`httpx.AsyncClient` that sends each request straight to its transport and
    follows redirects itself, so that no credential header (`CREDENTIAL_HEADERS`:
    Authorization, xi-api-key, ...) goes to another origin.

    httpx drops only `Authorization` when a redirect leaves the origin; ElevenLabs'
    `xi-api-key` would go to whatever host the Location names. So each hop is one
    `AsyncBaseTransport.handle_async_request` (the documented way to send one
    request), and the next hop is `redirect_request`'s, stripped of the credentials
    when it leaves the origin. What `httpx.AsyncClient.send` would add is its own
    redirect loop, auth flows (the adapters put their credential in a header; a
    client-wide `auth=` is refused) and a cookie jar: an API client has no use for
    cookies, and parsing each answer's headers into the jar cost an eighth of the
    runner's CPU per job (bench/bench_scale.py). `send` is the one method `request`,
    `get`, `post` and `stream` all go through; only public httpx API is used.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport, **options: Any) -> None:
        if options.get("auth") is not None:
            raise TypeError("RedirectSafeClient runs no auth flows: send the credential "
                            "as a header")
        super().__init__(transport=transport, **options)
        self.wire = transport

    async def send(self, request: httpx.Request, *, stream: bool = False,
                   auth: Any = httpx.USE_CLIENT_DEFAULT,
                   follow_redirects: object = httpx.USE_CLIENT_DEFAULT) -> httpx.Response:
        if auth not in (httpx.USE_CLIENT_DEFAULT, None):
            raise TypeError("RedirectSafeClient runs no auth flows: send the credential "
                            "as a header")
        follow = self.follow_redirects if follow_redirects is httpx.USE_CLIENT_DEFAULT \
            else bool(follow_redirects)
        history: list[httpx.Response] = []
        while True:
            response = await self.wire.handle_async_request(request)
            response.history = list(history)
            hop = response.next_request = redirect_request(request, response)
            if not follow or hop is None:
                if not stream:
                    await _read_or_close(response)
                return response
            await response.aclose()  # a redirect's body is not read: nothing in it is used
            history.append(response)
            if len(history) > self.max_redirects:
                raise httpx.TooManyRedirects(
                    f"more than {self.max_redirects} redirects", request=hop)
            if hop.url.scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(
                    f"a redirect to a '{hop.url.scheme}:' URL; only http and https are "
                    "followed", request=hop)
            if not keeps_credentials(request.url, hop.url):
                for name in CREDENTIAL_HEADERS:
                    hop.headers.pop(name, None)
            request = hop


def redirect_request(request: httpx.Request, response: httpx.Response) -> httpx.Request | None:
    """The request a redirect answer asks for (None when it is not one), by RFC 9110
    as browsers and httpx follow it: a 303, or a 301/302 answering a POST, turns into
    a GET without the body, so nothing is sent twice; a 307/308 sends the same request,
    body and all, to the new URL."""
    if not response.has_redirect_location:
        return None
    url = request.url.join(response.headers["Location"])
    method = request.method
    if (response.status_code == 303 and method != "HEAD") or \
            (response.status_code in (301, 302) and method == "POST"):
        method = "GET"
    headers = httpx.Headers(request.headers)
    headers.pop("Host", None)  # the new URL's own, set by httpx.Request
    if method != request.method:
        for name in ("Content-Length", "Content-Type", "Transfer-Encoding"):
            headers.pop(name, None)
        return httpx.Request(method, url, headers=headers, extensions=request.extensions)
    return httpx.Request(method, url, headers=headers, stream=request.stream,
                         extensions=request.extensions)


async def _read_or_close(response: httpx.Response) -> None:
    try:
        await response.aread()
    except BaseException:
        await response.aclose()
        raise


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
    except httpx.TooManyRedirects as exc:
        # The first request was answered (with a redirect): it may have been acted on.
        raise TransportError(f"redirect loop: {_describe(exc)}", request_sent=True,
                             **context) from exc


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    try:
        url = exc.request.url
    except RuntimeError:  # no request attached
        return text
    # The query string may carry a callback secret; the path is enough to say where.
    return f"{text} ({exc.request.method} {url.scheme}://{url.host}{url.path})"
