"""Market callbacks: kie's optional HMAC signature, checked by `callback_task_id`.

A callback is only a hint (the engine polls the task it names), so the adapter
returns the task id alone, its signature checked against exactly that task.

One test receives a real callback from the sandbox on a loopback socket; the
others sign bodies themselves with the documented recipe and a fixed clock.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from runner.catalog.models import MODELS
from runner.errors import RequestRejected
from runner.providers.base import Request
from runner.providers.market import MarketAdapter

from .conftest import API_KEY, Sandbox
from .mock import account

pytestmark = pytest.mark.anyio

SECRET = "whk-0123456789abcdef"
NOW = 1_795_000_000.0


def sign(task_id: str, timestamp: str, key: str = SECRET) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def body(**data: Any) -> bytes:
    record = {"taskId": "t1", "state": "success", "param": "{}",
              "resultJson": json.dumps({"resultUrls": ["https://f/a.mp3"]}),
              "consumeCredits": 100, "createTime": 1000, "completeTime": 9000, **data}
    return json.dumps({"code": 200, "msg": "Playground task completed successfully.",
                       "data": {k: v for k, v in record.items() if v is not None}}).encode()


def market(key: str | None = SECRET, now: float = NOW) -> MarketAdapter:
    return MarketAdapter(account("kie"), API_KEY, httpx.AsyncClient(), webhook_hmac_key=key,
                         clock=lambda: now)


def headers(task_id: str = "t1", at: float = NOW, signature: str | None = None
            ) -> dict[str, str]:
    stamp = str(int(at))
    return {"X-Webhook-Timestamp": stamp,
            "X-Webhook-Signature": signature if signature is not None else sign(task_id, stamp)}


def test_valid_signature() -> None:
    assert market().callback_task_id(body(), headers()) == "t1"


def test_header_names_are_case_insensitive() -> None:
    lowered = {k.lower(): v for k, v in headers().items()}
    assert market().callback_task_id(body(), lowered) == "t1"


@pytest.mark.parametrize(("given", "words"), [
    (headers(signature=sign("t1", str(int(NOW)), "another-key")), "does not match"),
    (headers(task_id="t2"), "does not match"),
    (headers(at=NOW - 301), "301 s old"),
    (headers(at=NOW + 3600), "3600 s in the future"),
    ({}, "not signed"),
    ({"X-Webhook-Timestamp": "yesterday", "X-Webhook-Signature": "x"}, "not a number"),
])
def test_refused_callbacks(given: dict[str, str], words: str) -> None:
    with pytest.raises(RequestRejected, match=words):
        market().callback_task_id(body(), given)


def test_a_timestamp_within_the_window_is_fine() -> None:
    assert market().callback_task_id(body(), headers(at=NOW - 299)) == "t1"


def test_snake_case_task_id() -> None:
    """The doc's sample reads data.task_id while its text says taskId: either is signed."""
    raw = body(taskId=None, task_id="t7")
    assert market().callback_task_id(raw, headers(task_id="t7")) == "t7"


def test_a_signature_for_one_task_is_not_accepted_for_another() -> None:
    """Signed for t7 (the attacker's own task), claiming t1 under the other spelling:
    the body names two tasks, and is refused whichever one the signature covers."""
    raw = body(taskId="t1", task_id="t7")
    for signed in ("t7", "t1"):
        with pytest.raises(RequestRejected, match="two different tasks"):
            market().callback_task_id(raw, headers(task_id=signed))


def test_unsigned_accepted_without_a_key() -> None:
    assert market(key=None).callback_task_id(body(), {}) == "t1"


def test_a_failure_callback_names_its_task_only() -> None:
    raw = json.dumps({"code": 501, "msg": "Playground task failed.", "data": {
        "taskId": "t1", "state": "fail", "failCode": "500", "failMsg": "Internal server error",
        "resultJson": None}}).encode()
    assert market().callback_task_id(raw, headers()) == "t1"


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'{"code": 200}', b'{"data": {"state": 1}}'])
def test_malformed_bodies(raw: bytes) -> None:
    with pytest.raises(RequestRejected):
        market(key=None).callback_task_id(raw, {})


async def test_a_real_signed_callback_from_the_sandbox(sandbox: Sandbox,
                                                       client: httpx.AsyncClient) -> None:
    sandbox.knobs(webhook_hmac_key=SECRET)
    received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        pairs = (line.split(": ", 1) for line in head[1:] if ": " in line)
        fields = {name.lower(): value for name, value in pairs}
        content = await reader.readexactly(int(fields.get("content-length", "0")))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        await received.put((fields, content))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        adapter = MarketAdapter(sandbox.account("kie"), API_KEY, client,
                                webhook_hmac_key=SECRET)
        task = await adapter.submit(Request("sfx", MODELS["elevenlabs/sound-effect-v2"],
                                            {"text": "a gong"},
                                            callback_url=f"http://127.0.0.1:{port}/hook"))
        fields, content = await asyncio.wait_for(received.get(), timeout=5)
    assert adapter.callback_task_id(content, fields) == task.task_id
    with pytest.raises(RequestRejected):
        MarketAdapter(sandbox.account("kie"), API_KEY, client,
                      webhook_hmac_key="not-the-key").callback_task_id(content, fields)
