"""The runner's HTTP client (`runner.providers.http.make_client`: httpx over
`runner.providers.transport.AiohttpTransport`) against real servers on 127.0.0.1.

Every test asserts what the server received (method, path, query, headers, body)
as well as what the client got back. Two servers (two ports, so two origins)
serve the cross-origin redirect cases; the misbehaving endpoints (one that never
answers, one whose body stalls, one that cuts its body short) are ordinary
handlers, and a bare socket server hangs up on every request it reads.
"""

from __future__ import annotations

import asyncio
import email.policy
import gzip
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from runner.errors import RequestRejected, TransportError
from runner.providers.http import (
    CREDENTIAL_HEADERS,
    USER_AGENT,
    RedirectSafeClient,
    keeps_credentials,
    make_client,
    translate_errors,
)
from runner.providers.transport import AiohttpTransport

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
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/echo", self._echo)
        app.router.add_route("*", "/redirect/{status}", self._redirect)
        app.router.add_get("/loop", self._loop)
        app.router.add_get("/set-cookie", self._set_cookie)
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

    async def _loop(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response(status=302, headers={"Location": "/loop"})

    async def _set_cookie(self, request: web.Request) -> web.Response:
        await self._record(request)
        response = web.Response(text="ok")
        response.set_cookie("sid", "s-1")
        return response

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
    async with make_client(read_timeout_s=5.0) as shared:
        yield shared


def closed_port_url(path: str) -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"



class HangUp:
    """A bare socket server on 127.0.0.1 that reads each request whole (headers and
    Content-Length body), keeps it, and closes the connection without answering."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        self.requests.append(head + await reader.readexactly(length))
        writer.close()

    def url(self, path: str) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"


@pytest.fixture
async def hangup() -> AsyncIterator[HangUp]:
    server = HangUp()
    server.server = await asyncio.start_server(server._handle, "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.server.close()
        await server.server.wait_closed()


# --- plain requests --------------------------------------------------------------------

async def test_get_sends_query_and_the_default_user_agent(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/echo"), params={"taskId": "a b&c/é~=?#"})
    assert response.status_code == 200
    assert response.json()["query"] == {"taskId": "a b&c/é~=?#"}
    [seen] = srv.seen
    assert (seen.method, seen.path, seen.query) == ("GET", "/echo", {"taskId": "a b&c/é~=?#"})
    assert seen.header("User-Agent") == USER_AGENT
    assert seen.header("Host") == srv.url("").removeprefix("http://")
    assert seen.body == b""
    assert response.url == httpx.URL(srv.url("/echo"), params={"taskId": "a b&c/é~=?#"})


@pytest.mark.parametrize(("params", "wire"), [
    ({"n": 3, "x": 1.5}, "n=3&x=1.5"),
    # The ElevenLabs adapter sends `enable_logging=false`: lower case, as its API reads it.
    ({"enable_logging": False, "on": True}, "enable_logging=false&on=true"),
    ({"empty": None}, "empty="),
    ({"ids": ["a", "b"]}, "ids=a&ids=b"),
], ids=["numbers", "bools", "none", "list"])
async def test_query_values_are_spelled_as_the_providers_read_them(
        srv: Server, client: httpx.AsyncClient, params: dict[str, Any], wire: str) -> None:
    await client.get(srv.url("/echo"), params=params)
    assert srv.seen[0].query_string == wire


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


async def test_json_body(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.post(srv.url("/echo"), json=JSON_BODY)
    assert response.status_code == 200
    [seen] = srv.seen
    assert seen.method == "POST"
    assert json.loads(seen.body.decode("utf-8")) == JSON_BODY
    assert "日本語".encode() in seen.body  # UTF-8 on the wire
    assert seen.header("Content-Type") == "application/json"
    assert seen.header("Content-Length") == str(len(seen.body))
    assert seen.header("Transfer-Encoding") is None


async def test_json_body_keeps_a_content_type_the_caller_gave(
        srv: Server, client: httpx.AsyncClient) -> None:
    await client.post(srv.url("/echo"), json={"a": 1},
                      headers={"Content-Type": "application/json; charset=utf-8"})
    assert srv.seen[0].header("Content-Type") == "application/json; charset=utf-8"


async def test_response_status_headers_and_body(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.put(srv.url("/echo"), params={"q": "1"}, json=[1, 2])
    assert response.status_code == 200
    assert response.headers["x-served"] == "echo"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"method": "PUT", "path": "/echo", "query": {"q": "1"}}
    assert response.is_closed
    assert response.history == []
    assert json.loads(srv.seen[0].body) == [1, 2]


async def test_a_404_is_an_answer_not_an_error(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/nowhere"))
    assert response.status_code == 404
    assert b"Not Found" in response.content


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_a_gzip_body_is_decoded(
        srv: Server, client: httpx.AsyncClient, streamed: bool) -> None:
    if streamed:
        async with client.stream("GET", srv.url("/gzip")) as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
    else:
        response = await client.get(srv.url("/gzip"))
        body = response.content
    assert response.headers["Content-Encoding"] == "gzip"
    assert json.loads(body) == {"zipped": "é" * 1000}
    assert "gzip" in str(srv.seen[0].header("Accept-Encoding"))


async def test_no_cookie_is_kept_or_sent_back(srv: Server, client: httpx.AsyncClient) -> None:
    """An API client keeps no cookie jar: a cookie a server sets never goes out again,
    to it or to anyone (httpx would keep it; aiohttp's jar under it is a dummy). By
    name, since cookie jars may refuse cookies from an address literal."""
    base = srv.url("").replace("127.0.0.1", "localhost")
    response = await client.get(f"{base}/set-cookie")
    assert "sid=s-1" in response.headers["Set-Cookie"]
    await client.get(f"{base}/echo")
    assert srv.seen[1].header("Cookie") is None
    assert not client.cookies


# --- uploads ---------------------------------------------------------------------------

async def test_multipart_upload_streams_an_open_file(
        srv: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    """As the market adapter uploads: form fields and an open file, with a query."""
    audio = bytes(range(256)) * 4096  # 1 MiB
    path = tmp_path / "clip.mp3"
    path.write_bytes(audio)
    with path.open("rb") as handle:
        response = await client.post(srv.url("/echo"), params={"enable_logging": "true"},
                                     data={"model_id": "scribe_v1"},
                                     files={"file": ("clip.mp3", handle, "audio/mpeg")})
    assert response.status_code == 200
    [seen] = srv.seen
    assert str(seen.header("Content-Type")).startswith("multipart/form-data; boundary=")
    assert seen.form == {"model_id": "scribe_v1", "file": ("clip.mp3", audio)}
    assert seen.query == {"enable_logging": "true"}
    assert seen.header("User-Agent") == USER_AGENT
    assert seen.header("Content-Length") == str(len(seen.body))


async def test_form_data(srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.post(srv.url("/echo"), data={"a": "1 2", "b": "é"})
    assert response.status_code == 200
    [seen] = srv.seen
    assert seen.header("Content-Type") == "application/x-www-form-urlencoded"
    assert seen.form == {"a": "1 2", "b": "é"}


# --- streams, timeouts and the pool ----------------------------------------------------

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
        with anyio.fail_after(30):  # a hang guard only
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


async def test_a_timeout_given_per_call_is_the_one_used(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/echo"), params={"q": "x"}, timeout=5.0)
    assert response.status_code == 200
    # The client's own read timeout is 5 s; this call's is 0.2 s.
    with pytest.raises(httpx.ReadTimeout):
        await client.get(srv.url("/hang"), timeout=0.2)


# --- redirects -------------------------------------------------------------------------

async def test_get_302_on_the_same_origin_keeps_every_header(
        srv: Server, client: httpx.AsyncClient) -> None:
    credentials = {name: f"secret-{i}" for i, name in enumerate(CREDENTIAL_HEADERS)
                   if name != "Cookie"}  # httpx takes cookies from its jar, never a header
    response = await client.get(srv.url("/redirect/302"), params={"to": "/echo?x=1"},
                                headers=credentials)
    assert response.status_code == 200
    assert response.json() == {"method": "GET", "path": "/echo", "query": {"x": "1"}}
    assert srv.paths() == [("GET", "/redirect/302"), ("GET", "/echo")]
    for name, value in credentials.items():
        assert srv.seen[1].header(name) == value
    assert srv.seen[1].header("User-Agent") == USER_AGENT
    assert [r.status_code for r in response.history] == [302]
    assert response.url == httpx.URL(srv.url("/echo?x=1"))


async def test_a_redirect_is_not_followed_when_the_call_says_so(
        srv: Server, client: httpx.AsyncClient) -> None:
    response = await client.get(srv.url("/redirect/302"), params={"to": "/echo"},
                                follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/echo"
    assert response.next_request is not None
    assert response.next_request.url == httpx.URL(srv.url("/echo"))
    assert srv.paths() == [("GET", "/redirect/302")]


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
@pytest.mark.parametrize("status", [302, 307])
async def test_no_credential_follows_a_redirect_to_another_origin(
        srv: Server, other: Server, client: httpx.AsyncClient, streamed: bool,
        status: int) -> None:
    url, params = srv.url(f"/redirect/{status}"), {"to": other.url("/echo")}
    credentials = {name: f"secret-{i}" for i, name in enumerate(CREDENTIAL_HEADERS)}
    headers = {**credentials, "X-Trace": "t-1"}
    if streamed:
        async with client.stream("POST", url, params=params, headers=headers,
                                 json=JSON_BODY) as response:
            await response.aread()
    else:
        response = await client.post(url, params=params, headers=headers, json=JSON_BODY)
    assert response.status_code == 200
    assert srv.seen[0].header("xi-api-key") == credentials["xi-api-key"]
    [there] = other.seen
    assert there.path == "/echo"
    for name in CREDENTIAL_HEADERS:
        assert there.header(name) is None, name
    assert "secret-" not in repr(there)
    assert there.header("X-Trace") == "t-1"  # other headers do follow
    assert there.header("Host") == other.url("").removeprefix("http://")
    if status == 307:  # the same request again, body and all
        assert there.method == "POST"
        assert json.loads(there.body) == JSON_BODY
    else:  # a POST answered 302 is followed by a GET without the body: nothing sent twice
        assert there.method == "GET"
        assert there.body == b""


async def test_credentials_dropped_on_the_way_out_do_not_come_back(
        srv: Server, other: Server, client: httpx.AsyncClient) -> None:
    """Out to another origin and back: the hop home carries what the hop out had."""
    back = srv.url("/echo")
    response = await client.get(srv.url("/redirect/302"),
                                params={"to": other.url(f"/redirect/302?to={back}")},
                                headers={"xi-api-key": "secret"})
    assert response.status_code == 200
    assert srv.paths() == [("GET", "/redirect/302"), ("GET", "/echo")]
    assert srv.seen[1].header("xi-api-key") is None
    assert len(response.history) == 2


async def test_auth_flows_are_refused_not_silently_dropped(srv: Server) -> None:
    """The client sends no auth flow (a credential goes as a header): one given to it
    is an error at once, not a request sent without it."""
    with pytest.raises(TypeError, match="no auth flows"):
        RedirectSafeClient(AiohttpTransport(), auth=("user", "pass"))
    async with RedirectSafeClient(AiohttpTransport()) as client:
        with pytest.raises(TypeError, match="no auth flows"):
            await client.get(srv.url("/echo"), auth=("user", "pass"))
    assert srv.seen == []


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


async def test_an_upload_answered_307_is_resent_whole(
        srv: Server, client: httpx.AsyncClient, tmp_path: Path) -> None:
    path = tmp_path / "take.wav"
    path.write_bytes(b"RIFF" + bytes(range(256)) * 1024)
    with path.open("rb") as handle:
        response = await client.post(srv.url("/redirect/307"), params={"to": "/echo"},
                                     data={"fileName": "take.wav"},
                                     files={"file": ("take.wav", handle, "audio/wav")})
    assert response.status_code == 200
    first, second = srv.seen
    assert second.form == first.form == {"fileName": "take.wav",
                                         "file": ("take.wav", path.read_bytes())}


async def test_a_redirect_loop_is_a_transport_error_after_sending(
        srv: Server, client: httpx.AsyncClient) -> None:
    with pytest.raises(TransportError) as info, translate_errors("kie", job_id="j-1"):
        await client.get(srv.url("/loop"))
    assert isinstance(info.value.__cause__, httpx.TooManyRedirects)
    assert info.value.request_sent is True
    assert "redirect" in str(info.value)
    assert len(srv.seen) == client.max_redirects + 1  # then it stopped


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x.mp3"])
async def test_an_api_redirect_to_another_scheme_is_refused(
        srv: Server, client: httpx.AsyncClient, target: str) -> None:
    with pytest.raises(RequestRejected) as info, translate_errors("elevenlabs", job_id="j-1"):
        await client.post(srv.url("/redirect/307"), params={"to": target}, json=JSON_BODY)
    assert isinstance(info.value.__cause__, httpx.UnsupportedProtocol)
    assert f"'{target.split(':')[0]}:'" in str(info.value)
    assert srv.paths() == [("POST", "/redirect/307")]


def test_which_redirects_keep_credentials() -> None:
    def keeps(origin: str, target: str) -> bool:
        return keeps_credentials(httpx.URL(origin), httpx.URL(target))

    assert keeps("https://api.kie.ai/a", "https://api.kie.ai/b")
    assert keeps("https://api.kie.ai/a", "https://api.kie.ai:443/b")
    assert keeps("http://api.kie.ai/a", "https://api.kie.ai/b")  # an upgrade
    assert not keeps("https://api.kie.ai/a", "http://api.kie.ai/b")  # a downgrade
    assert not keeps("https://api.kie.ai/a", "https://evil.example/b")
    assert not keeps("https://api.kie.ai/a", "https://files.kie.ai/b")
    assert not keeps("https://api.kie.ai/a", "https://api.kie.ai:8443/b")
    assert not keeps("http://api.kie.ai:8080/a", "https://api.kie.ai/b")


# --- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_a_refused_connection_is_a_connect_error_that_sent_nothing(
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
    with pytest.raises(TransportError) as translated, translate_errors("kie", job_id="j-1"):
        await client.post(url, json=JSON_BODY)
    assert translated.value.request_sent is False
    assert isinstance(translated.value.__cause__, httpx.ConnectError)
    assert "/api/v1/jobs/recordInfo" in str(translated.value)


async def test_a_connection_dropped_after_sending_may_have_reached_the_provider(
        hangup: HangUp, client: httpx.AsyncClient) -> None:
    """The case that decides money: the server read the createTask and hung up. The
    task may exist and be billed, so the error must say the request was sent."""
    with pytest.raises(TransportError) as info, translate_errors("kie", job_id="j-1"):
        await client.post(hangup.url("/api/v1/jobs/createTask"), json=JSON_BODY)
    assert info.value.request_sent is True
    assert isinstance(info.value.__cause__, httpx.RemoteProtocolError)
    [received] = hangup.requests
    assert received.startswith(b"POST /api/v1/jobs/createTask HTTP/1.1\r\n")
    assert json.loads(received.split(b"\r\n\r\n", 1)[1]) == JSON_BODY


async def test_a_server_that_never_answers_is_a_read_timeout_after_sending(
        srv: Server) -> None:
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
async def test_a_body_that_stalls_is_a_read_timeout(srv: Server, streamed: bool) -> None:
    async with make_client(read_timeout_s=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            if streamed:
                async with client.stream("GET", srv.url("/stall")) as response:
                    async for _chunk in response.aiter_bytes():
                        pass
            else:
                await client.get(srv.url("/stall"))


@pytest.mark.parametrize("streamed", [False, True], ids=["request", "stream"])
async def test_a_body_cut_short_is_a_transport_error(
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
