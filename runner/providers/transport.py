"""HTTP over aiohttp's connection pool, behind httpx's public transport API.

The adapters speak httpx (`httpx.AsyncClient`, its `Response`, its exceptions).
Underneath, httpcore's pool re-scans every connection on each request and
response, which made the HTTP layer most of the runner's CPU per job
(bench/bench_http.py: plain httpx costs several times what httpx over this
transport does); aiohttp's pool does the same work in a fraction of that.

`AiohttpTransport` is an ordinary `httpx.AsyncBaseTransport`: httpx builds every
request (URL, query, headers, JSON, forms, multipart uploads) and decodes every
answer (Content-Encoding); this module only carries bytes.

Why not the `httpx-aiohttp` package (0.2.0): its error map turns an
`aiohttp.ServerDisconnectedError` (the server read the request, then hung up)
into `httpx.ConnectTimeout`, which says "could not connect, nothing was sent",
and a createTask that may have been billed would be sent again. Here aiohttp's
errors become the httpx errors that `runner.providers.http.translate_errors`
reads, keeping "was the request sent?" right: only a failure to connect says no
(tests/providers/test_http.py holds a server that hangs up).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx

# Headers aiohttp writes itself from the URL and the body; httpx's copies would be doubled.
_HOP_BY_HOP = {b"host", b"transfer-encoding", b"connection", b"keep-alive"}
_CHUNK_BYTES = 256 * 1024


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncBaseTransport` sending through one `aiohttp.ClientSession`.

    No retries and no redirects: each call is one request on the wire."""

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Made lazily: a ClientSession belongs to the running event loop.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                # The client keeps no cookies (runner.providers.http), nor does anything under it.
                cookie_jar=aiohttp.DummyCookieJar(),
                # httpx has set every header it means to send; aiohttp adds none of its own.
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in _HOP_BY_HOP]
        data: Any = None
        if request.method not in ("GET", "HEAD"):
            # Ready bytes (JSON, a form) go as they are; anything else is streamed, so an
            # upload of hundreds of MB never sits in memory. (A request httpx rebuilt for a
            # 307/308 redirect carries the first one's stream, not read yet.)
            data = await request.aread() if isinstance(request.stream, httpx.ByteStream) \
                else _request_body(request)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.get("connect"),
                                        sock_read=timeouts.get("read"))
        with _sending(request):
            response = await self._open().request(
                request.method, str(request.url), headers=headers, data=data,
                allow_redirects=False,  # redirects are the client's (runner.providers.http)
                timeout=timeout)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)  # let the connector close its sockets


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _reading_body(self._request):
            async for chunk in self._response.content.iter_chunked(_CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        # Back to the pool when the body was read to its end; closed otherwise.
        self._response.release()


async def _request_body(request: httpx.Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream:  # type: ignore[union-attr]
        yield chunk


@contextlib.contextmanager
def _sending(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors up to the answer's status line, as the httpx errors they mean.
    The order matters: several of aiohttp's classes are subclasses of others."""
    try:
        yield
    except aiohttp.ClientConnectorError as exc:  # refused, unreachable, name not found
        raise httpx.ConnectError(str(exc), request=request) from exc
    except aiohttp.ConnectionTimeoutError as exc:  # before TimeoutError: nothing was sent
        raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request) from exc
    except aiohttp.NonHttpUrlClientError as exc:  # file:, ftp:, ...
        raise httpx.UnsupportedProtocol(f"not an http(s) URL: {exc}", request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(str(exc)) from exc
    except TimeoutError as exc:  # sent, and no answer within the read timeout
        raise httpx.ReadTimeout("timed out waiting for the answer", request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
            aiohttp.ClientPayloadError) as exc:  # the connection dropped after sending
        raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__,
                                        request=request) from exc
    except aiohttp.ClientResponseError as exc:  # a malformed answer
        raise httpx.RemoteProtocolError(str(exc), request=request) from exc


@contextlib.contextmanager
def _reading_body(request: httpx.Request) -> Iterator[None]:
    """aiohttp's errors while a body is read, as the httpx errors they mean."""
    try:
        yield
    except TimeoutError as exc:  # first: aiohttp's read timeout is a ClientError too
        raise httpx.ReadTimeout("timed out reading the body", request=request) from exc
    except aiohttp.ClientPayloadError as exc:  # cut short: Content-Length not reached
        raise httpx.RemoteProtocolError(f"incomplete body: {exc}", request=request) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
