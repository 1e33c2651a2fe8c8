"""The market jobs API (kie.ai and apikley) over a real socket."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest

from runner.sandbox import SandboxServer, parse_latency, parse_rate_limit
from tests.conftest import FakeClock
from tests.sandbox.helpers import KEY, CallbackReceiver, decode

SFX = "elevenlabs/sound-effect-v2"
TTS = "elevenlabs/text-to-speech-turbo-2-5"


def create(url: str, model: str, inputs: dict[str, Any], **extra: Any) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/jobs/createTask", headers=KEY,
                      json={"model": model, "input": inputs, **extra})


def record(url: str, task_id: str, headers: dict[str, str] = KEY) -> dict[str, Any]:
    response = httpx.get(f"{url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                         headers=headers)
    assert response.status_code == 200
    return dict(response.json())


def test_sound_effect_round_trip(sandbox: SandboxServer) -> None:
    body = {"model": SFX, "input": {"text": "glass breaking", "duration_seconds": 2.5,
                                    "output_format": "mp3_44100_128"}}
    created = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY, json=body)
    assert created.status_code == 200
    answer = created.json()
    assert answer["code"] == 200 and answer["msg"] == "success"
    info = record(sandbox.url, answer["data"]["taskId"])
    assert info["code"] == 200 and info["message"] == "success"  # kie's recordInfo says message
    data = info["data"]
    assert data["state"] == "success" and data["failCode"] == data["failMsg"] == ""
    assert json.loads(data["param"]) == body  # a JSON string of the whole request
    result = json.loads(data["resultJson"])  # also a string: parsed twice
    audio = httpx.get(result["resultUrls"][0])
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/mpeg"
    rate, seconds = decode(audio.content, "mp3_44100_128")
    assert rate == 44100 and abs(seconds - 2.5) < 0.03
    assert data["creditsConsumed"] > 0


def test_states_follow_the_clock(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.latency = parse_latency(f"{SFX}=10")
    task_id = create(sandbox.url, SFX, {"text": "wind"}).json()["data"]["taskId"]
    seen = []
    for step in (0, 2, 3, 4, 1):
        fake_clock.advance(step)
        data = record(sandbox.url, task_id)["data"]
        seen.append(data["state"])
        assert (data["resultJson"] == "") == (data["state"] != "success")
    assert seen == ["waiting", "queuing", "generating", "generating", "success"]
    assert data["costTime"] == 10000


def test_tts_with_timestamps_and_speed(sandbox: SandboxServer) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    durations = []
    for speed in (0.7, 1.2):
        answer = create(sandbox.url, TTS, {"text": text, "speed": speed, "timestamps": True})
        assert "message" in answer.json()  # the TTS page's createTask says message
        data = record(sandbox.url, answer.json()["data"]["taskId"])["data"]
        result = json.loads(data["resultJson"])
        alignment = result["resultObject"]["alignment"]
        assert "".join(alignment["characters"]) == text
        starts, ends = alignment["character_start_times_seconds"], alignment[
            "character_end_times_seconds"]
        assert starts == sorted(starts) and all(e >= s for s, e in zip(starts, ends, strict=True))
        _, seconds = decode(httpx.get(result["resultUrls"][0]).content, "mp3_44100_128")
        assert abs(ends[-1] - seconds) < 0.5
        durations.append(seconds)
    assert durations[0] > durations[1] * 1.3  # slower speech lasts longer


@pytest.mark.parametrize(("headers", "expected"), [({}, 401), ({"Authorization": "Bearer  x y"}, 401),
                                                   ({"Authorization": "Basic abc"}, 401)])
def test_missing_or_malformed_key(sandbox: SandboxServer, headers: dict[str, str],
                                  expected: int) -> None:
    sandbox.config.update({"quirks": "market_error_status=1"})  # HTTP 401 too
    response = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=headers,
                          json={"model": SFX, "input": {"text": "x"}})
    assert response.status_code == expected
    assert response.json() == {"code": 401, "msg": "You do not have access permissions"}


def test_only_configured_keys_are_accepted(sandbox: SandboxServer) -> None:
    sandbox.config.api_keys = frozenset({"right-key"})
    wrong = create(sandbox.url, SFX, {"text": "x"})
    assert wrong.status_code == 401 and "test-key" not in wrong.text
    right = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask",
                       headers={"Authorization": "Bearer right-key"},
                       json={"model": SFX, "input": {"text": "x"}})
    assert right.json()["code"] == 200


@pytest.mark.parametrize(("model", "inputs", "code", "needle"), [
    (TTS, {"text": "hi", "voice": "rachel"}, 500,
     "This voice is not within the range of allowed options"),
    (TTS, {"text": "hi", "speed": 1.5}, 422, "input.speed"),
    (TTS, {"text": ""}, 422, "input.text"),
    (TTS, {"voice": "Rachel"}, 422, "input.text: field required"),
    (SFX, {"text": "x", "duration_seconds": 42}, 422, "input.duration_seconds"),
    (SFX, {"text": "x", "output_format": "mp3_48000_320"}, 422, "input.output_format"),
    (SFX, {"text": "x", "loop": "yes"}, 422, "input.loop"),
    ("elevenlabs/sound-effect-v3", {"text": "x"}, 422, "is not supported"),
])
def test_invalid_requests_answer_the_body_code(sandbox: SandboxServer, model: str,
                                               inputs: dict[str, Any], code: int,
                                               needle: str) -> None:
    sandbox.config.update({"quirks": "market_error_status=0"})
    response = create(sandbox.url, model, inputs)
    assert response.status_code == 200  # the market's quirk: HTTP 200, status in the body
    body = response.json()
    assert body["code"] == code and needle in (body.get("msg") or body.get("message"))
    assert "data" not in body
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["tasks"]["total"] == 0


def test_unknown_and_missing_task_id(sandbox: SandboxServer) -> None:
    sandbox.config.update({"quirks": "market_error_status=0"})
    assert record(sandbox.url, "task_nope") == {"code": 404, "message": "Task not found"}
    missing = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo", headers=KEY).json()
    assert missing["code"] == 422


def test_kie_and_apikley_are_separate_accounts(sandbox: SandboxServer) -> None:
    sandbox.config.update({"quirks": "market_error_status=0"})
    task_id = create(sandbox.url, SFX, {"text": "x"}).json()["data"]["taskId"]
    apikley = httpx.get(f"{sandbox.url}/apikley/api/v1/jobs/recordInfo",
                        params={"taskId": task_id}, headers=KEY).json()
    assert apikley == {"code": 404, "msg": "Task not found"}  # apikley says msg
    made = httpx.post(f"{sandbox.url}/apikley/api/v1/jobs/createTask", headers=KEY,
                      json={"model": SFX, "input": {"text": "x"}}).json()
    assert made["code"] == 200
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["tasks"]["by_provider"] == {"kie": 1, "apikley": 1}


def test_variants_differ_and_are_deterministic(sandbox_config: Any) -> None:
    takes: list[list[bytes]] = []
    for _ in range(2):  # two fresh sandboxes: the same requests give the same takes
        with SandboxServer(sandbox_config) as url:
            files = []
            for _ in range(3):
                task_id = create(url, SFX, {"text": "laser", "duration_seconds": 1}).json()[
                    "data"]["taskId"]
                result = json.loads(record(url, task_id)["data"]["resultJson"])
                files.append(httpx.get(result["resultUrls"][0]).content)
            takes.append(files)
    assert takes[0] == takes[1]
    assert len({hashlib.sha256(f).digest() for f in takes[0]}) == 3


def test_credits_run_out_with_402(sandbox: SandboxServer) -> None:
    sandbox.config.update({"quirks": "market_error_status=0"})
    sandbox.config.credits = 5
    balance = httpx.get(f"{sandbox.url}/api/v1/chat/credit", headers=KEY).json()
    assert balance == {"code": 200, "msg": "success", "data": 5}
    first = create(sandbox.url, SFX, {"text": "x", "duration_seconds": 2})  # 3 credits
    assert first.json()["code"] == 200
    second = create(sandbox.url, SFX, {"text": "x", "duration_seconds": 2})
    assert second.status_code == 200 and second.json()["code"] == 402
    assert httpx.get(f"{sandbox.url}/api/v1/chat/credit", headers=KEY).json()["data"] == 2
    assert httpx.get(f"{sandbox.url}/_sandbox/stats").json()["credits_used"]["kie"] == 3


def test_rate_limit_is_a_sliding_window(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.update({"quirks": "market_error_status=1"})  # HTTP 429 too
    sandbox.config.rate_limit = parse_rate_limit("3/10")
    answers = []
    for _ in range(3):
        answers.append(create(sandbox.url, SFX, {"text": "x"}).status_code)
        fake_clock.advance(3)  # requests at t=0, 3, 6
    refused = create(sandbox.url, SFX, {"text": "x"})  # t=9: 3 in the last 10 s
    assert answers == [200, 200, 200]
    assert refused.status_code == 429 and refused.json()["code"] == 429
    # Polls and uploads are not counted.
    assert httpx.get(f"{sandbox.url}/api/v1/chat/credit", headers=KEY).status_code == 200
    fake_clock.advance(1.01)  # t=10.01: the first request left the window
    assert create(sandbox.url, SFX, {"text": "x"}).json()["code"] == 200
    assert create(sandbox.url, SFX, {"text": "x"}).status_code == 429
    stats = httpx.get(f"{sandbox.url}/_sandbox/stats").json()
    assert stats["tasks"]["total"] == 4  # nothing was created for a 429
    assert stats["requests"]["POST /api/v1/jobs/createTask"] == {"200": 4, "429": 2}


def test_concurrent_task_limit(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.latency = parse_latency("10")
    sandbox.config.max_concurrent = 2
    assert [create(sandbox.url, SFX, {"text": "x"}).json()["code"] for _ in range(3)] == [
        200, 200, 429]
    fake_clock.advance(10)
    assert create(sandbox.url, SFX, {"text": "x"}).json()["code"] == 200
    assert httpx.get(f"{sandbox.url}/_sandbox/stats").json()["peak_concurrent_tasks"] == 2


def test_signed_callback_on_success(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.webhook_hmac_key = "hmac-secret"
    sandbox.config.latency = parse_latency("5")
    receiver = CallbackReceiver()
    try:
        task_id = create(sandbox.url, SFX, {"text": "x"}, callBackUrl=receiver.url).json()[
            "data"]["taskId"]
        fake_clock.advance(5)
        [(body, headers)] = receiver.wait(1)
    finally:
        receiver.close()
    assert body["code"] == 200 and body["msg"] == "Playground task completed successfully."
    assert body["data"]["taskId"] == task_id and body["data"]["state"] == "success"
    assert json.loads(body["data"]["param"])["callBackUrl"] == receiver.url
    expected = base64.b64encode(hmac.new(
        b"hmac-secret", f"{task_id}.{headers['x-webhook-timestamp']}".encode(),
        hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(headers["x-webhook-signature"], expected)
    assert int(headers["x-webhook-timestamp"]) == int(fake_clock.now_s)


def test_failed_generation_fails_the_task_and_calls_back(sandbox: SandboxServer) -> None:
    sandbox.config.faults = {"501": 1.0}
    receiver = CallbackReceiver()
    try:
        task_id = create(sandbox.url, SFX, {"text": "x"}, callBackUrl=receiver.url).json()[
            "data"]["taskId"]
        [(body, headers)] = receiver.wait(1)
    finally:
        receiver.close()
    assert "x-webhook-signature" not in headers  # unsigned without a key
    assert body["code"] == 501 and body["msg"] == "Playground task failed."
    assert body["data"]["state"] == "fail"
    assert body["data"]["failCode"] in ("500", "GENERATION_FAILED", "")  # market_fail_fields
    data = record(sandbox.url, task_id)["data"]
    assert data["state"] == "fail" and data["failMsg"] and data["creditsConsumed"] == 0
