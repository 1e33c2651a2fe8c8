"""`runner.providers.http.LeanClient` against real HTTP servers on 127.0.0.1.

Every test asserts what the server received (method, path, query, headers, body)
as well as what the client got back. Where the short road must agree with httpx,
the same request is also sent by a plain `httpx.AsyncClient` and the two are
compared byte for byte. Two servers (two ports, so two origins) serve the
cross-host redirect cases; the misbehaving endpoints (one that never answers,
one whose body stalls, one that cuts its body short) are ordinary handlers.
"""

from __future__ import annotations

import email.policy
import gzip
import json
import socket
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from runner.errors import TransportError
from runner.providers.http import USER_AGENT, make_client, translate_errors

pytestmark = pytest.mark.anyio

BIG_BYTES = 4 * 1024 * 1024
# Not ASCII, and with characters json.dumps escapes only when asked (U+2028, emoji).
JSON_BODY: dict[str, Any] = {
    "model": "elevenlabs/sound-effect-v2",
    "input": {"text": "Čeština — 日本語 🎧 \u2028 \"quoted\"", "duration_seconds": 1.5,
              "loop": False, "tags": [1, None, True]},
}


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query_string: str  # raw, as sent on the wire
    query: dict[str, str]
    headers: dict[str, list[str]]  # lower-cased names, every value
    body: bytes
    form: dict[str, Any] | None
    cookies: dict[str, str]

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower(), [])
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None


class Server:
    """An aiohttp app that records every request; `url(path)` is an absolute URL."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.big = bytes(range(256)) * (BIG_BYTES // 256)
        app = web.Application()
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/redirect/{status}", self._redirect)
        app.router.add_get("/gzip", self._gzip)
        app.router.add_get("/big", self._big)
        app.router.add_get("/hang", self._hang)
        app.router.add_get("/stall", self._stall)
        app.router.add_get("/short", self._short)
        self.server = TestServer(app, host="127.0.0.1")

    def url(self, path: str) -> str:
        return str(self.server.make_url("/")).rstrip("/") + path

    def paths(self) -> list[tuple[str, str]]:
        return [(s.method, s.path) for s in self.seen]

    async def _record(self, request: web.Request) -> Seen:
        body = await request.read()
        form: dict[str, Any] | None = None
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(body.decode()))
        elif request.content_type == "multipart/form-data":
            # Parsed from the recorded bytes: request.post() would read the body again.
            message = BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {request.headers['Content-Type']}\r\n\r\n".encode() + body)
            assert isinstance(message, EmailMessage)
            form = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_content()  # str for text parts, bytes for a file
                filename = part.get_filename()
                form[str(name)] = payload if filename is None else (filename, payload)
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        seen = Seen(request.method, request.path, request.query_string, dict(request.query),
                    headers, body, form, dict(request.cookies))
        self.seen.append(seen)
        return seen

    async def _echo(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        return web.json_response({"method": seen.method, "path": seen.path,
                                  "query": seen.query}, headers={"X-Served": "echo"})

    async def _redirect(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=int(request.match_info["status"]),
                            headers={"Location": request.query["to"]})

    async def _gzip(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=gzip.compress(json.dumps({"zipped": "é" * 1000}).encode()),
                            headers={"Content-Encoding": "gzip",
                                     "Content-Type": "application/json"})

    async def _big(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(body=self.big, content_type="application/octet-stream")

    async def _hang(self, request: web.Request) -> web.Response:
        await self._record(request)
        # Cancelled when the client gives up (TestServer cancels handlers on disconnect).
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def _stall(self, request: web.Request) -> web.StreamResponse:
        """Headers and a first byte, then nothing: the body read must time out."""
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"x")
        await anyio.sleep_forever()
        return response

    async def _short(self, request: web.Request) -> web.StreamResponse:
        """Promise 1,000,000 bytes, send 10, hang up."""
        await self._record(request)
        response = web.StreamResponse(headers={"Content-Length": "1000000"})
        await response.prepare(request)
        await response.write(b"0123456789")
        assert request.transport is not None
        request.transport.close()
        return response


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # aiohttp runs on asyncio only


async def _serve() -> AsyncIterator[Server]:
    server = Server()
    await server.server.start_server(shutdown_timeout=1.0)
    try:
        yield server
    finally:
        await server.server.close()


@pytest.fixture
async def srv() -> AsyncIterator[Server]:
    async for server in _serve():
        yield server


@pytest.fixture
async def other() -> AsyncIterator[Server]:
    """A second server: another port, so another origin."""
    async for server in _serve():
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(read_timeout_s=5.0) as lean:
        yield lean


def closed_port_url(path: str) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


# --- plain requests --------------------------------------------------------------------

async def test_get_encodes_params_and_sends_the_default_user_agent(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/echo"), params={"taskId": "a b&c"})
    assert response.status_code == 200
    assert response.json()["query"] == {"taskId": "a b&c"}
    [seen] = srv.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/echo", {"taskId": "a b&c"})
    assert seen.header("User-Agent") == USER_AGENT
    assert seen.body == b""


@pytest.mark.parametrize("params", [
    {"taskId": "a b&c/é~=?#"},
    {"n": 3, "x": 1.5},
    # Failing: the short road uses urlencode(), httpx writes booleans lower-case
    # ("enable_logging=false", as the ElevenLabs adapter sends), None as empty and
    # a list as a repeated key.
    {"enable_logging": False},
    {"empty": None},
    {"ids": ["a", "b"]},
], ids=["text", "numbers", "bool", "none", "list"])
async def test_query_string_is_the_one_httpx_sends(
        srv: Server, client: httpx.AsyncClient, params: dict[str, Any]) -> None:
    await client.get(srv.url("/echo"), params=params)
    async with httpx.AsyncClient() as plain:
        await plain.get(srv.url("/echo"), params=params)
    lean, reference = srv.seen
    assert lean.query_string == reference.query_string


@pytest.mark.parametrize("name", ["User-Agent", "user-agent"])
async def test_per_call_headers_are_added_and_override_the_defaults(
        srv: Server, client: httpx.AsyncClient, name: str) -> None:
    await client.get(srv.url("/echo"), headers={name: "custom/1", "X-Trace": "t-1",
                                                "Authorization": "Bearer k"})
    [seen] = srv.seen
    assert seen.header("User-Agent") == "custom/1"  # once: replaced, not doubled
    assert seen.header("X-Trace") == "t-1"
    assert seen.header("Authorization") == "Bearer k"
    # And the next call is back to the default.
    await client.get(srv.url("/echo"))
    assert srv.seen[1].header("User-Agent") == USER_AGENT
    assert srv.seen[1].header("X-Trace") is None


async def test_json_body_is_byte_identical_to_httpx(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.post(srv.url("/echo"), json=JSON_BODY)
    assert response.status_code == 200
    async with httpx.AsyncClient() as plain:
        await plain.post(srv.url("/echo"), json=JSON_BODY)
    lean, reference = srv.seen
    assert lean.method == "POST"
    assert lean.body == reference.body
    assert json.loads(lean.body) == JSON_BODY
    assert lean.header("Content-Type") == reference.header("Content-Type") == "application/json"
    assert lean.header("Content-Length") == str(len(reference.body))


async def test_json_body_keeps_a_content_type_the_caller_gave(
        srv: Server, client: httpx.AsyncClient) -> None:
    # Failing: httpx keeps the caller's Content-Type (json= only sets a default);
    # the short road overwrites it with "application/json".
    headers = {"Content-Type": "application/json; charset=utf-8"}
    await client.post(srv.url("/echo"), json={"a": 1}, headers=headers)
    async with httpx.AsyncClient() as plain:
        await plain.post(srv.url("/echo"), json={"a": 1}, headers=headers)
    lean, reference = srv.seen
    assert reference.header("Content-Type") == "application/json; charset=utf-8"
    assert lean.header("Content-Type") == reference.header("Content-Type")


async def test_response_status_headers_and_body(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.put(srv.url("/echo"), params={"q": "1"}, json=[1, 2])
    assert response.status_code == 200
    assert response.headers["x-served"] == "echo"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"method": "PUT", "path": "/echo", "query": {"q": "1"}}
    assert json.loads(response.content) == response.json()
    assert response.is_closed
    assert srv.seen[0].body == b"[1,2]"


async def test_a_404_is_an_answer_not_an_error(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/nowhere"))
    assert response.status_code == 404
    assert b"Not Found" in response.content


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_gzip_body_is_decoded_like_httpx(
        srv: Server, client: httpx.AsyncClient, streamed: bool) -> None:
    if streamed:
        async with client.stream("GET", srv.url("/gzip")) as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
    else:
        response = await client.get(srv.url("/gzip"))
        body = response.content
    async with httpx.AsyncClient() as plain:
        reference = await plain.get(srv.url("/gzip"))
    assert response.headers["Content-Encoding"] == "gzip"
    assert body == reference.content
    assert json.loads(body) == {"zipped": "é" * 1000}
    assert srv.seen[0].header("Accept-Encoding") == reference.request.headers["Accept-Encoding"]


# --- streams and the pool --------------------------------------------------------------

async def test_stream_yields_a_multi_megabyte_body_in_chunks(
        srv: Server, client: httpx.AsyncClient) -> None:
    chunks: list[bytes] = []
    async with client.stream("GET", srv.url("/big")) as response:
        assert response.status_code == 200
        assert response.headers["Content-Length"] == str(BIG_BYTES)
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
    assert len(chunks) > 1
    assert b"".join(chunks) == srv.big


async def test_streams_release_their_connection(srv: Server) -> None:
    """With one connection, a stream that did not give it back would hang the next one:
    read to the end, left half read, or redirected first."""
    base = srv.url("")
    async with make_client(max_connections=1) as client:
        with anyio.fail_after(10):
            for _ in range(20):
                async with client.stream("GET", f"{base}/big") as response:
                    size = sum([len(c) async for c in response.aiter_raw()])
                assert size == BIG_BYTES
            for _ in range(5):
                async with client.stream("GET", f"{base}/big") as response:
                    async for _chunk in response.aiter_raw():
                        break  # leave the rest unread
            for _ in range(5):
                async with client.stream("GET", f"{base}/redirect/302",
                                         params={"to": "/echo"}) as response:
                    assert response.status_code == 200
                    await response.aread()
            for _ in range(5):
                assert (await client.get(f"{base}/echo")).status_code == 200


# --- redirects -------------------------------------------------------------------------

async def test_get_302_on_the_same_server_is_followed(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/redirect/302"), params={"to": "/echo?x=1"},
                                headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "path": "/echo", "query": {"x": "1"}}
    assert srv.paths() == [("GET", "/redirect/302"), ("GET", "/echo")]
    # Same origin: the credentials go along, as with httpx.
    assert srv.seen[1].header("Authorization") == "Bearer k"
    assert srv.seen[1].header("User-Agent") == USER_AGENT


async def test_redirect_is_not_followed_when_the_call_says_so(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/redirect/302"), params={"to": "/echo"},
                                follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/echo"
    assert srv.paths() == [("GET", "/redirect/302")]


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_redirect_to_another_origin_drops_authorization(
        srv: Server, other: Server, client: httpx.AsyncClient, streamed: bool) -> None:
    url, params = srv.url("/redirect/302"), {"to": other.url("/echo")}
    headers = {"Authorization": "Bearer secret", "X-Trace": "t-1"}
    if streamed:
        async with client.stream("GET", url, params=params, headers=headers) as response:
            await response.aread()
    else:
        response = await client.get(url, params=params, headers=headers)
    assert response.status_code == 200
    assert srv.seen[0].header("Authorization") == "Bearer secret"
    [there] = other.seen
    assert (there.method, there.path) == ("GET", "/echo")
    assert there.header("Authorization") is None
    assert there.header("X-Trace") == "t-1"  # other headers do follow
    assert there.header("Host") == other.url("").removeprefix("http://")


async def test_post_answered_303_is_followed_by_a_get(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.post(srv.url("/redirect/303"), params={"to": "/echo"},
                                 json=JSON_BODY)
    assert response.status_code == 200
    assert response.json()["method"] == "GET"
    assert srv.paths() == [("POST", "/redirect/303"), ("GET", "/echo")]
    assert json.loads(srv.seen[0].body) == JSON_BODY
    assert srv.seen[1].body == b""
    assert srv.seen[1].header("Content-Length") in (None, "0")


@pytest.mark.parametrize("status", [307, 308])
async def test_post_answered_307_or_308_is_resent_with_the_same_body(
        srv: Server, client: httpx.AsyncClient, status: int) -> None:
    response = await client.post(srv.url(f"/redirect/{status}"), params={"to": "/echo"},
                                 json=JSON_BODY, headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    assert response.json()["method"] == "POST"
    assert srv.paths() == [("POST", f"/redirect/{status}"), ("POST", "/echo")]
    first, second = srv.seen
    assert second.body == first.body
    assert json.loads(second.body) == JSON_BODY
    assert second.header("Content-Type") == "application/json"
    assert second.header("Authorization") == "Bearer k"


async def test_form_post_answered_307_is_resent_on_httpx_road(
        srv: Server, client: httpx.AsyncClient) -> None:
    # Failing, and not the short road's doing: httpx builds the re-sent request with
    # `stream=` (the first request's ByteStream), so `request.content` was never read;
    # `AiohttpTransport.handle_async_request` reads `.content` and gets RequestNotRead.
    response = await client.post(srv.url("/redirect/307"), params={"to": "/echo"},
                                 data={"a": "1"})
    assert response.status_code == 200
    assert srv.paths() == [("POST", "/redirect/307"), ("POST", "/echo")]
    assert srv.seen[1].form == {"a": "1"}


# --- what takes httpx's own road -------------------------------------------------------

async def test_files_upload(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.post(srv.url("/echo"), params={"enable_logging": "true"},
                                 data={"model_id": "scribe_v1"},
                                 files={"file": ("clip.mp3", b"ID3\x00audio", "audio/mpeg")})
    assert response.status_code == 200
    [seen] = srv.seen
    assert str(seen.header("Content-Type")).startswith("multipart/form-data; boundary=")
    assert seen.form == {"model_id": "scribe_v1", "file": ("clip.mp3", b"ID3\x00audio")}
    assert seen.query == {"enable_logging": "true"}
    assert seen.header("User-Agent") == USER_AGENT


async def test_form_data(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.post(srv.url("/echo"), data={"a": "1 2", "b": "é"})
    assert response.status_code == 200
    [seen] = srv.seen
    assert seen.header("Content-Type") == "application/x-www-form-urlencoded"
    assert seen.form == {"a": "1 2", "b": "é"}


async def test_cookies_argument(srv: Server, client: httpx.AsyncClient) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # httpx deprecates per-call cookies
        response = await client.get(srv.url("/echo"), cookies={"sid": "abc"})
    assert response.status_code == 200
    assert srv.seen[0].cookies == {"sid": "abc"}


async def test_explicit_timeout_argument(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/echo"), params={"q": "x"}, timeout=5.0)
    assert response.status_code == 200
    assert srv.seen[0].query == {"q": "x"}
    # And it is the one used: the client's own read timeout is 5 s.
    with pytest.raises(httpx.ReadTimeout):
        await client.get(srv.url("/hang"), timeout=0.2)


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_connection_refused_is_a_connect_error_with_the_request(
        client: httpx.AsyncClient, streamed: bool) -> None:
    url = closed_port_url("/api/v1/jobs/recordInfo")
    with pytest.raises(httpx.ConnectError) as info:
        if streamed:
            async with client.stream("GET", url, params={"taskId": "t-1"}):
                pass
        else:
            await client.get(url, params={"taskId": "t-1"})
    assert info.value.request.method == "GET"
    assert info.value.request.url == httpx.URL(url, params={"taskId": "t-1"})


async def test_translate_errors_says_a_refused_connection_sent_nothing(
        client: httpx.AsyncClient) -> None:
    url = closed_port_url("/api/v1/jobs/createTask")
    with pytest.raises(TransportError) as info, translate_errors("kie", job_id="j-1"):
        await client.post(url, json=JSON_BODY)
    assert info.value.request_sent is False
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "/api/v1/jobs/createTask" in str(info.value)


async def test_server_that_never_answers_is_a_read_timeout(srv: Server) -> None:
    async with make_client(read_timeout_s=0.2) as client:
        with pytest.raises(httpx.ReadTimeout) as info:
            await client.get(srv.url("/hang"), params={"taskId": "t-1"})
        assert info.value.request.url == httpx.URL(srv.url("/hang"), params={"taskId": "t-1"})
        with pytest.raises(TransportError) as translated, translate_errors("kie"):
            await client.get(srv.url("/hang"))
    assert translated.value.request_sent is True
    assert isinstance(translated.value.__cause__, httpx.ReadTimeout)
    assert [s.path for s in srv.seen] == ["/hang", "/hang"]


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_body_that_stalls_is_a_read_timeout(srv: Server, streamed: bool) -> None:
    # Failing: a sock_read timeout while reading the body is aiohttp's
    # SocketTimeoutError, which is both a ClientError and a TimeoutError; the
    # transport tests ClientError first and raises ReadError. httpx (and the
    # transport's own header-wait path) raise ReadTimeout.
    async with make_client(read_timeout_s=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            if streamed:
                async with client.stream("GET", srv.url("/stall")) as response:
                    async for _chunk in response.aiter_bytes():
                        pass
            else:
                await client.get(srv.url("/stall"))


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_body_cut_short_is_a_transport_error(
        srv: Server, client: httpx.AsyncClient, streamed: bool) -> None:
    with pytest.raises(httpx.TransportError) as info:
        if streamed:
            async with client.stream("GET", srv.url("/short")) as response:
                assert response.status_code == 200
                async for _chunk in response.aiter_bytes():
                    pass
        else:
            await client.get(srv.url("/short"))
    assert isinstance(info.value, (httpx.RemoteProtocolError, httpx.ReadError))
    assert info.value.request.url == httpx.URL(srv.url("/short"))
    with pytest.raises(TransportError) as translated, translate_errors("kie"):
        raise info.value
    assert translated.value.request_sent is True
    # The client is still usable afterwards.
    assert (await client.get(srv.url("/echo"))).status_code == 200
