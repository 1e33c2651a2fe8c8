"""AI/ML API and ElevenLabs direct, raw HTTP and through the official elevenlabs SDK."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from runner.sandbox import SandboxServer, parse_latency
from tests.conftest import FakeClock
from tests.sandbox.helpers import KEY, XI, decode, generation_id

GEN = "/v2/generate/audio"


def test_stable_audio_lifecycle(sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    sandbox.config.update({"quirks": "aimlapi_generation_id=0"})  # {id, status}
    sandbox.config.latency = parse_latency("stable-audio=40")
    created = httpx.post(f"{sandbox.url}{GEN}", headers=KEY,
                         json={"model": "stable-audio", "prompt": "calm piano", "steps": 10})
    assert created.status_code == 201
    generation_id = created.json()["id"]
    assert created.json()["status"] == "queued" and generation_id.endswith(":stable-audio")
    statuses = []
    for step in (0, 20, 20):
        fake_clock.advance(step)
        polled = httpx.get(f"{sandbox.url}{GEN}", headers=KEY,
                           params={"generation_id": generation_id}).json()
        statuses.append(polled["status"])
    assert statuses == ["queued", "generating", "completed"]
    assert polled["meta"] == {"usage": {"credits_used": 2520.0}}
    assert polled["audio_file"]["url"].endswith(".wav")


@pytest.mark.parametrize("body", [
    {"model": "stable-audio", "prompt": "x", "seconds_total": 48},
    {"model": "stable-audio", "prompt": "x", "steps": 0},
    {"model": "stable-audio"},
    {"model": "stable-audio-2", "prompt": "x"},
    {"model": "stable-audio", "prompt": "x", "seconds_total": "ten"},
])
def test_stable_audio_validation(sandbox: SandboxServer, body: dict[str, Any]) -> None:
    answer = httpx.post(f"{sandbox.url}{GEN}", headers=KEY, json=body)
    assert answer.status_code == 400
    error = answer.json()
    assert error["message"] == "Body validation error!" and error["statusCode"] == 400
    assert {"path", "requestId", "timestamp"} <= set(error) and error["errors"]


def test_stable_audio_errors(sandbox: SandboxServer) -> None:
    body = {"model": "stable-audio", "prompt": "x"}
    assert httpx.post(f"{sandbox.url}{GEN}", json=body).status_code == 401
    missing = httpx.get(f"{sandbox.url}{GEN}", headers=KEY, params={"generation_id": "nope"})
    assert missing.status_code == 404 and missing.json()["statusCode"] == 404
    sandbox.config.credits = 1000
    broke = httpx.post(f"{sandbox.url}{GEN}", headers=KEY, json=body)
    assert broke.status_code == 403 and "run out of credits" in broke.json()["message"]
    sandbox.config.credits = None
    sandbox.config.faults = {"501": 1.0}
    failed = httpx.post(f"{sandbox.url}{GEN}", headers=KEY, json=body).json()
    polled = httpx.get(f"{sandbox.url}{GEN}", headers=KEY,
                       params={"generation_id": generation_id(failed)}).json()
    assert polled["status"] == "error" and polled["error"]["message"]


def test_tts_bytes_and_headers(sandbox: SandboxServer) -> None:
    answer = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", headers=XI,
                        params={"output_format": "mp3_44100_128"},
                        json={"text": "The first move is what sets everything in motion.",
                              "model_id": "eleven_multilingual_v2"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/mpeg"
    assert answer.headers["character-cost"] == "49" and answer.headers["request-id"]
    stitched = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", headers=XI,
                          json={"text": "And so on.",
                                "previous_request_ids": [answer.headers["request-id"]]})
    assert stitched.status_code == 200
    bogus = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", headers=XI,
                       json={"text": "x", "previous_request_ids": ["nope"]})
    assert bogus.status_code == 400


def test_explicit_seed_is_deterministic_and_takes_differ_without(sandbox: SandboxServer) -> None:
    def say(body: dict[str, Any]) -> bytes:
        return httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", headers=XI,
                          json=body).content

    assert say({"text": "Same again.", "seed": 3}) == say({"text": "Same again.", "seed": 3})
    assert say({"text": "Take two."}) != say({"text": "Take two."})


@pytest.mark.parametrize(("path", "params", "body", "status", "loc"), [
    ("/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", {}, {}, 422, ["body", "text"]),
    ("/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", {},
     {"text": "x", "voice_settings": {"speed": 2}}, 422, ["body", "voice_settings", "speed"]),
    ("/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", {"output_format": "mp3_1"}, {"text": "x"}, 422,
     ["query", "output_format"]),
    ("/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", {}, {"text": "x", "seed": -1}, 422,
     ["body", "seed"]),
    ("/v1/sound-generation", {}, {"text": "x", "duration_seconds": 31}, 422,
     ["body", "duration_seconds"]),
    ("/v1/text-to-speech/not-a-voice", {}, {"text": "x"}, 400, None),
    ("/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", {}, {"text": "x", "model_id": "nope"}, 400, None),
])
def test_elevenlabs_validation(sandbox: SandboxServer, path: str, params: dict[str, str],
                               body: dict[str, Any], status: int, loc: list[str] | None) -> None:
    answer = httpx.post(f"{sandbox.url}{path}", headers=XI, params=params, json=body)
    assert answer.status_code == status
    detail = answer.json()["detail"]
    if loc is None:
        assert detail["status"] and detail["message"]
    else:
        assert detail[0]["loc"] == loc and detail[0]["msg"] and detail[0]["type"]


def test_elevenlabs_keys_and_quota(sandbox: SandboxServer) -> None:
    bad = httpx.post(f"{sandbox.url}/v1/sound-generation", json={"text": "x"})
    assert bad.status_code == 401
    detail = bad.json()["detail"]
    assert {k: detail[k] for k in ("type", "code", "status", "message")} == {
        "type": "authentication_error", "code": "invalid_api_key", "status": "invalid_api_key",
        "message": "Invalid API key"}
    assert detail["request_id"]
    sandbox.config.credits = 10
    quota = httpx.post(f"{sandbox.url}/v1/sound-generation", headers=XI, json={"text": "x"})
    assert quota.status_code == 401 and quota.json()["detail"]["status"] == "quota_exceeded"
    assert quota.json()["detail"]["message"] == (
        "This request exceeds your quota. You have 10 credits remaining, while 100 credits are "
        "required for this request.")


def test_with_timestamps(sandbox: SandboxServer) -> None:
    text = "Hello  world."
    answer = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb/with-timestamps",
                        headers=XI, params={"output_format": "pcm_22050"}, json={"text": text})
    body = answer.json()
    assert body["alignment"]["characters"] == list(text)
    assert "".join(body["normalized_alignment"]["characters"]) == "Hello world."
    _, seconds = decode(base64.b64decode(body["audio_base64"]), "pcm_22050")
    assert abs(body["alignment"]["character_end_times_seconds"][-1] - seconds) < 0.01
