"""HTTP over aiohttp's connection pool, behind httpx's interface.

The adapters speak httpx (`httpx.AsyncClient`, its `Response`, its exceptions,
`ASGITransport` and `MockTransport` in tests). Underneath, httpcore's pool
re-scans every connection on each request and response, which made the HTTP
layer most of the runner's CPU per job (bench/bench_scale.py: ~16 ms per job at
200 connections); aiohttp's pool does the same work in a fraction of that.

Two ways in, sharing one session and one error mapping:
- `AiohttpTransport.handle_async_request`: an ordinary httpx transport, for
  whatever httpx itself sends (uploads, redirects, auth flows).
- `AiohttpTransport.send_fast`: used by `runner.providers.http.LeanClient` for plain JSON
  requests and downloads; it skips building an `httpx.Request` (whose pure-Python
  URL parsing cost more than the request itself) unless an error needs one.

aiohttp's errors become the httpx errors that `runner.providers.http.translate_errors`
understands, keeping "was the request sent?" right: a refused connection is
`ConnectError`; a timeout or a dropped connection after sending is a read error.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx

_HOP_BY_HOP = {b"host", b"transfer-encoding", b"connection", b"keep-alive"}
_CHUNK_BYTES = 256 * 1024
RequestFactory = Callable[[], httpx.Request]


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: RequestFactory) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _reading_body(self._request):
            async for chunk in self._response.content.iter_chunked(_CHUNK_BYTES):
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


@contextlib.contextmanager
def _reading_body(request: RequestFactory) -> Iterator[None]:
    """aiohttp's errors while a body is read, as the httpx errors they mean."""
    try:
        yield
    except TimeoutError as exc:  # first: aiohttp's read timeout is a ClientError too
        raise httpx.ReadTimeout("timed out reading the body", request=request()) from exc
    except aiohttp.ClientPayloadError as exc:  # cut short: Content-Length not reached
        raise httpx.RemoteProtocolError(f"incomplete body: {exc}", request=request()) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(str(exc) or type(exc).__name__, request=request()) from exc


async def _request_body(request: httpx.Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream:  # type: ignore[union-attr]
        yield chunk


class AiohttpTransport(httpx.AsyncBaseTransport):
    """`httpx.AsyncBaseTransport` sending through one `aiohttp.ClientSession`."""

    def __init__(self, *, max_connections: int = 100) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Made lazily: a ClientSession belongs to the running event loop.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                auto_decompress=False,  # httpx decodes Content-Encoding itself
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def _start(self, method: str, url: str, headers: Any, data: Any,
                     timeout: aiohttp.ClientTimeout,
                     request: RequestFactory) -> aiohttp.ClientResponse:
        """Send, and wait for the status line and headers; httpx errors on failure."""
        try:
            return await self._open().request(
                method, url, headers=headers, data=data,
                allow_redirects=False,  # redirects are httpx's, with its header rules
                timeout=timeout)
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request()) from exc
        except aiohttp.ConnectionTimeoutError as exc:  # before TimeoutError: nothing was sent
            raise httpx.ConnectTimeout(str(exc) or "connect timed out", request=request()) from exc
        except aiohttp.NonHttpUrlClientError as exc:  # a redirect to file:, ftp:, ...
            raise httpx.UnsupportedProtocol(f"not an http(s) URL: {exc}",
                                            request=request()) from exc
        except aiohttp.InvalidURL as exc:
            raise httpx.InvalidURL(str(exc)) from exc
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError,
                aiohttp.ClientPayloadError) as exc:
            raise httpx.RemoteProtocolError(str(exc) or type(exc).__name__,
                                            request=request()) from exc
        except aiohttp.ClientResponseError as exc:  # a malformed answer
            raise httpx.RemoteProtocolError(str(exc), request=request()) from exc
        except TimeoutError as exc:
            raise httpx.ReadTimeout("timed out waiting for the answer",
                                    request=request()) from exc

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in _HOP_BY_HOP]
        data: Any = None
        if request.method not in ("GET", "HEAD"):
            # Stream the body (uploads can be hundreds of MB); small bodies are ready bytes.
            # (A request httpx rebuilt for a 307/308 redirect has not read its body yet.)
            data = await request.aread() if isinstance(request.stream, httpx.ByteStream) \
                else _request_body(request)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=timeouts.get("connect"),
                                        sock_read=timeouts.get("read"))
        response = await self._start(request.method, str(request.url), headers, data, timeout,
                                     lambda: request)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, lambda: request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def send_fast(self, method: str, url: str, headers: dict[str, str],
                        body: bytes | None, timeout: aiohttp.ClientTimeout, *,
                        stream: bool) -> httpx.Response:
        """One request from ready parts (`url` already encoded). The answer is an
        `httpx.Response` without a `request` (nothing here reads it); its body is read
        unless `stream`. An `httpx.Request` is built only to go with an error."""
        def request() -> httpx.Request:
            return httpx.Request(method, url)

        response = await self._start(method, url, headers, body, timeout, request)
        if stream:
            return httpx.Response(response.status, headers=response.raw_headers,
                                  stream=_ResponseStream(response, request))
        try:
            with _reading_body(request):
                content = await response.read()
        finally:
            response.release()
        return httpx.Response(response.status, headers=response.raw_headers, content=content)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
            await asyncio.sleep(0)  # let the connector close its sockets
