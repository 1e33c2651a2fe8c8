"""Each fault knob produces the documented response (probability 1, so it always strikes)."""

from __future__ import annotations

import ast
import json
import re
import socket
from pathlib import Path

import httpx
import pytest

from runner.sandbox import SandboxServer
from tests.conftest import FakeClock
from tests.sandbox.helpers import KEY, XI, CallbackReceiver

SFX = {"model": "elevenlabs/sound-effect-v2", "input": {"text": "x", "duration_seconds": 1}}


def _create(url: str) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/jobs/createTask", headers=KEY, json=SFX)


def _tasks(url: str) -> int:
    return int(httpx.get(f"{url}/_sandbox/stats").json()["tasks"]["total"])


@pytest.mark.parametrize("http_status", [True, False])  # quirk market_error_status
@pytest.mark.parametrize("fault", ["429", "455", "500"])
def test_market_refusals_create_nothing(sandbox: SandboxServer, fault: str,
                                        http_status: bool) -> None:
    sandbox.config.update({"quirks": f"market_error_status={int(http_status)}"})
    sandbox.config.faults = {fault: 1.0}
    response = _create(sandbox.url)
    code = int(fault)
    assert response.status_code == (code if http_status else 200)
    assert response.json()["code"] == code
    assert _tasks(sandbox.url) == 0
    assert httpx.get(f"{sandbox.url}/_sandbox/stats").json()["faults"] == {fault: 1}


@pytest.mark.parametrize(("fault", "status"), [("429", 429), ("455", 503), ("500", 500)])
def test_aimlapi_and_elevenlabs_refusals(sandbox: SandboxServer, fault: str, status: int) -> None:
    sandbox.config.faults = {fault: 1.0}
    aiml = httpx.post(f"{sandbox.url}/v2/generate/audio", headers=KEY,
                      json={"model": "stable-audio", "prompt": "x", "seconds_total": 2})
    assert aiml.status_code == status and aiml.json()["statusCode"] == status
    eleven = httpx.post(f"{sandbox.url}/v1/sound-generation", headers=XI, json={"text": "x"})
    assert eleven.status_code == status and "status" in eleven.json()["detail"]
    assert _tasks(sandbox.url) == 0


def test_dropped_connection_after_the_task_was_created(sandbox: SandboxServer) -> None:
    sandbox.config.faults = {"drop": 1.0}
    with pytest.raises(httpx.RemoteProtocolError):
        _create(sandbox.url)
    assert _tasks(sandbox.url) == 1  # the uncertain case: created, answer lost
    sandbox.config.faults = {}
    assert _create(sandbox.url).json()["code"] == 200  # the server still answers


def test_truncated_download(sandbox: SandboxServer) -> None:
    task_id = _create(sandbox.url).json()["data"]["taskId"]
    info = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                     headers=KEY).json()["data"]
    url = json.loads(info["resultJson"])["resultUrls"][0]
    sandbox.config.faults = {"truncate": 1.0}
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    sandbox.config.faults = {}
    assert len(httpx.get(url).content) > 1000


def test_slow_response_beyond_the_client_timeout(sandbox: SandboxServer) -> None:
    sandbox.config.faults = {"slow": 1.0}
    sandbox.config.slow_response_s = 1.0
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY, json=SFX, timeout=0.2)


def test_result_urls_expire(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.result_ttl_s = 60
    task_id = _create(sandbox.url).json()["data"]["taskId"]
    info = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                     headers=KEY).json()["data"]
    url = json.loads(info["resultJson"])["resultUrls"][0]
    assert httpx.get(url).status_code == 200
    fake_clock.advance(61)
    expired = httpx.get(url)
    assert expired.status_code == 403 and b"expired" in expired.content
    sandbox.config.faults = {"expire": 1.0}
    task_id = _create(sandbox.url).json()["data"]["taskId"]
    info = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                     headers=KEY).json()["data"]
    assert httpx.get(json.loads(info["resultJson"])["resultUrls"][0]).status_code == 403
    assert httpx.get(f"{sandbox.url}/files/nope/nope.mp3").status_code == 404


@pytest.mark.parametrize(("fault", "expected"), [("callback_dup", 2), ("callback_lost", 0)])
def test_duplicated_and_lost_callbacks(sandbox: SandboxServer, fault: str, expected: int) -> None:
    sandbox.config.faults = {fault: 1.0}
    receiver = CallbackReceiver()
    try:
        httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                   json={**SFX, "callBackUrl": receiver.url})
        # A second, unfaulted task's callback marks the end of what the first could send.
        sandbox.config.faults = {}
        httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                   json={**SFX, "callBackUrl": receiver.url})
        received = receiver.wait(expected + 1)
    finally:
        receiver.close()
    task_ids = [body["data"]["taskId"] for body, _ in received]
    assert len(task_ids) == expected + 1
    assert len(set(task_ids)) == 2 if expected else len(set(task_ids)) == 1


def test_callback_retried_after_a_failure(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    receiver = CallbackReceiver(status=500)
    try:
        httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                   json={**SFX, "callBackUrl": receiver.url})
        received = receiver.wait(1)
        # The sandbox schedules each retry when the previous attempt's 500 comes back,
        # which can be just after this thread looks: advance in small steps until the
        # next attempt shows up (time only moves when the test says so).
        for attempts in (2, 3):
            for _ in range(40):
                fake_clock.advance(0.5)
                received = receiver.wait(attempts, timeout_s=0.25)
                if len(received) >= attempts:
                    break
        fake_clock.advance(60)
        received = receiver.wait(4, timeout_s=0.5)  # no fourth attempt comes
    finally:
        receiver.close()
    assert len(received) == 3  # callback_attempts = 3, then it gives up
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()["callbacks"]
    assert stats["failed"] == 3 and "delivered" not in stats


def test_uvicorn_only_through_its_public_api() -> None:
    """The faults cut sockets the sandbox owns (runner/sandbox/connections.py), not
    through a subclass of uvicorn's protocol classes: nothing imports uvicorn's modules."""
    package = Path(__file__).resolve().parents[2] / "runner"
    internal = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            internal += [f"{path.relative_to(package.parent)}:{node.lineno} {name}"
                         for name in names if name.startswith("uvicorn.")]
    assert internal == []


def _ask(conn: socket.socket, host: str, path: str, body: bytes = b"") -> bytes:
    """One HTTP/1.1 request on a kept-alive socket; the answer's head and body, or b""
    when the server closed the connection without one."""
    conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {KEY['Authorization']}"
                 f"\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                 .encode() + body)
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(65536)
        if not chunk:
            return answer
        answer += chunk
    head, _, rest = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
    while len(rest) < length:
        rest += conn.recv(65536)
    return head + b"\r\n\r\n" + rest


def test_a_dropped_connection_leaves_the_others_alone(sandbox: SandboxServer) -> None:
    """Two kept-alive connections: the fault cuts the one that asked, the other goes on."""
    host = sandbox.url.removeprefix("http://")
    address = host.rsplit(":", 1)
    create = json.dumps(SFX).encode()
    with socket.create_connection((address[0], int(address[1])), timeout=30) as one, \
            socket.create_connection((address[0], int(address[1])), timeout=30) as other:
        assert _ask(other, host, "/api/v1/jobs/createTask", create).startswith(b"HTTP/1.1 200")
        sandbox.config.faults = {"drop": 1.0}
        assert _ask(one, host, "/api/v1/jobs/createTask", create) == b""  # closed, no answer
        sandbox.config.faults = {}
        assert _ask(other, host, "/api/v1/jobs/createTask", create).startswith(b"HTTP/1.1 200")
    assert _tasks(sandbox.url) == 3
