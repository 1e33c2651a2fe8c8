"""The HTTP boundary: one client per run, and httpx errors translated once.

Retries are not done here (the transport retries nothing): the engine's retry
policy is the only layer that repeats a request, because only it knows whether
repeating can cost money twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx

from runner import __version__
from runner.errors import RequestRejected, TransportError

# The kie.ai hosts sit behind Cloudflare, which answers a bare 403 "error code:
# 1010" to clients without a browser-like User-Agent (FACTS.md §1.5).
USER_AGENT = f"Mozilla/5.0 (compatible; runner/{__version__}; +https://runner.invalid)"


def make_client(*, max_connections: int = 100, connect_timeout_s: float = 10.0,
                read_timeout_s: float = 60.0) -> httpx.AsyncClient:
    """The run's shared client: keep-alive pool (aiohttp's, see runner/transport.py),
    no transport retries, a User-Agent."""
    from runner.transport import AiohttpTransport

    transport = AiohttpTransport(max_connections=max_connections)
    return httpx.AsyncClient(
        transport=transport,
        headers={"User-Agent": USER_AGENT},
        timeout=httpx.Timeout(connect=connect_timeout_s, read=read_timeout_s,
                              write=read_timeout_s, pool=None),
        follow_redirects=True,
    )


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
