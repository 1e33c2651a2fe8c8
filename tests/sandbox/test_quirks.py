"""Every quirk shows on the wire when on, and is gone when off (quirks.py).

Each check runs twice: with the quirk at 1 it must show on the answer (so the test
fails the day the sandbox stops emitting it), at 0 the plain shape must come back
(so the knob really switches it). The faithful default of every quirk is above 0:
the mode every engine test runs against has them all.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from runner.audio.containers import parse_wav
from runner.sandbox import SandboxServer
from runner.sandbox.quirks import FAITHFUL, QUIRKS, QuirkError, parse_quirks
from tests.sandbox.helpers import KEY, XI, Gate, sine_wav

SFX = "elevenlabs/sound-effect-v2"
TTS = "elevenlabs/text-to-speech-turbo-2-5"
STT = "elevenlabs/speech-to-text"


def create(sandbox: SandboxServer, model: str, inputs: dict[str, Any],
           prefix: str = "") -> httpx.Response:
    return httpx.post(f"{sandbox.url}{prefix}/api/v1/jobs/createTask", headers=KEY,
                      json={"model": model, "input": inputs})


def record(sandbox: SandboxServer, task_id: str, prefix: str = "") -> httpx.Response:
    return httpx.get(f"{sandbox.url}{prefix}/api/v1/jobs/recordInfo", headers=KEY,
                     params={"taskId": task_id})


def result_of(sandbox: SandboxServer, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    task_id = create(sandbox, model, inputs).json()["data"]["taskId"]
    return dict(record(sandbox, task_id).json()["data"])


def error_status(sandbox: SandboxServer, on: bool) -> None:
    refused = create(sandbox, TTS, {"text": "hi", "speed": 3})  # body code 422
    missing = record(sandbox, "task_nope")  # body code 404
    assert refused.json()["code"] == 422 and missing.json()["code"] == 404
    assert (refused.status_code, missing.status_code) == ((422, 404) if on else (200, 200))


def message_key(sandbox: SandboxServer, on: bool) -> None:
    made = create(sandbox, TTS, {"text": "hi"}).json()
    task_id = made["data"]["taskId"]
    kie_record = record(sandbox, task_id).json()
    other = create(sandbox, SFX, {"text": "x"}).json()
    apikley = record(sandbox, task_id, "/apikley").json()  # apikley always says msg
    key = "message" if on else "msg"
    assert key in made and key in kie_record and "msg" in other and "msg" in apikley


def fail_fields(sandbox: SandboxServer, on: bool) -> None:
    ok = result_of(sandbox, SFX, {"text": "x"})
    assert (ok["failCode"], ok["failMsg"]) == (("", "") if on else (None, None))
    sandbox.config.faults = {"501": 1.0}
    codes = {result_of(sandbox, SFX, {"text": f"x{i}"})["failCode"] for i in range(12)}
    assert codes == ({"500", "GENERATION_FAILED", ""} if on else {"500"})


def result_object_null(sandbox: SandboxServer, on: bool) -> None:
    sfx = json.loads(result_of(sandbox, SFX, {"text": "x"})["resultJson"])
    audio_url = sfx["resultUrls"][0]
    stt = json.loads(result_of(sandbox, STT, {"audio_url": audio_url})["resultJson"])
    if on:
        assert "resultObject" in sfx and sfx["resultObject"] is None
        assert "resultUrls" in stt and stt["resultUrls"] is None and stt["resultObject"]
    else:
        assert "resultObject" not in sfx and "resultUrls" not in stt


def record_id(sandbox: SandboxServer, on: bool) -> None:
    data = create(sandbox, SFX, {"text": "x"}).json()["data"]
    assert ("recordId" in data) is on and data["taskId"]


def upload_host(sandbox: SandboxServer, on: bool) -> None:
    form = {"files": {"file": ("a.wav", sine_wav(0.2), "audio/wav")},
            "data": {"uploadPath": "u"}, "headers": KEY}
    on_api = httpx.post(f"{sandbox.url}/api/file-stream-upload", **form)  # type: ignore[arg-type]
    on_own = httpx.post(f"{sandbox.upload_url}/api/file-stream-upload", **form)  # type: ignore[arg-type]
    apikley = httpx.post(f"{sandbox.url}/apikley/file-upload/api/file-stream-upload",
                         **form)  # type: ignore[arg-type]
    assert on_api.status_code == (404 if on else 200)
    assert on_own.status_code == 200 and apikley.status_code == 200  # apikley: its API host
    # The upload host serves uploads and files, not the API.
    assert httpx.post(f"{sandbox.upload_url}/api/v1/jobs/createTask", headers=KEY,
                      json={"model": SFX, "input": {"text": "x"}}).status_code == 404
    assert httpx.get(on_own.json()["data"]["downloadUrl"]).status_code == 200


def quickstart_shape(sandbox: SandboxServer, on: bool) -> None:
    data = httpx.post(f"{sandbox.upload_url}/api/file-base64-upload", headers=KEY, json={
        "base64Data": base64.b64encode(b"RIFF....").decode(), "uploadPath": "u",
        "fileName": "n.wav"}).json()["data"]
    quickstart = {"fileId", "originalName", "uploadPath", "fileUrl", "downloadUrl"}
    pages = {"fileName", "filePath", "downloadUrl", "fileSize", "mimeType", "uploadedAt"}
    assert set(data) == (quickstart if on else pages)
    assert httpx.get(data["downloadUrl"]).content == b"RIFF...."


def raw_as_wav(sandbox: SandboxServer, on: bool) -> None:
    result = json.loads(result_of(sandbox, SFX, {"text": "x", "duration_seconds": 1,
                                                 "output_format": "ulaw_8000"})["resultJson"])
    data = httpx.get(result["resultUrls"][0]).content
    assert (data[:4] == b"RIFF") is on and result["resultUrls"][0].endswith(
        ".wav" if on else ".ulaw")
    samples = parse_wav(data).data_bytes if on else len(data)
    assert samples == 8000  # one second of G.711 either way


def generation_id(sandbox: SandboxServer, on: bool) -> None:
    created = httpx.post(f"{sandbox.url}/v2/generate/audio", headers=KEY,
                         json={"model": "stable-audio", "prompt": "x", "seconds_total": 1})
    assert created.status_code == 201
    assert set(created.json()) == ({"generation_id"} if on else {"id", "status"})


def legacy_429(sandbox: SandboxServer, on: bool) -> None:
    sandbox.config.update({"max_concurrent": 1})
    gate = Gate()
    sandbox.config.sleep = gate
    answers: list[httpx.Response] = []

    def generate() -> None:
        answers.append(httpx.post(f"{sandbox.url}/v1/sound-generation", headers=XI,
                                  json={"text": "x"}, timeout=60))

    first = threading.Thread(target=generate)
    first.start()
    gate.wait_in_flight(sandbox, 1)
    generate()  # refused: one is in flight
    gate.open()
    first.join()
    [refused] = [a for a in answers if a.status_code == 429]
    detail = refused.json()["detail"]
    if on:
        assert detail == {"status": "too_many_concurrent_requests",
                          "message": "Too many concurrent requests"}
    else:
        assert detail["code"] == detail["status"] == "concurrent_limit_exceeded"
        assert detail["type"] == "rate_limit_error" and detail["request_id"]


CHECKS: dict[str, Callable[[SandboxServer, bool], None]] = {
    "market_error_status": error_status, "market_message_key": message_key,
    "market_fail_fields": fail_fields, "market_result_object_null": result_object_null,
    "market_record_id": record_id, "market_upload_host": upload_host,
    "upload_quickstart_shape": quickstart_shape, "market_raw_as_wav": raw_as_wav,
    "aimlapi_generation_id": generation_id, "elevenlabs_legacy_429": legacy_429,
}


def test_every_quirk_has_a_wire_check_and_is_on_in_the_faithful_mode() -> None:
    assert set(CHECKS) == set(QUIRKS)
    assert all(FAITHFUL[name] > 0 for name in QUIRKS)


@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_quirk_on_the_wire(sandbox: SandboxServer, quirk: str, on: bool) -> None:
    sandbox.config.update({"quirks": f"{quirk}={int(on)}"})
    CHECKS[quirk](sandbox, on)
    shown = httpx.get(f"{sandbox.url}/_sandbox/stats").json()["quirks"].get(quirk, 0)
    assert (shown > 0) is on


def test_mixed_rates_show_both_shapes(sandbox: SandboxServer) -> None:
    """At the faithful 0.5 both documented shapes come, in a seeded order."""
    statuses = [create(sandbox, TTS, {"text": "x", "speed": 3}).status_code for _ in range(24)]
    assert set(statuses) == {200, 422}
    sandbox.sandbox.reset()
    again = [create(sandbox, TTS, {"text": "x", "speed": 3}).status_code for _ in range(24)]
    assert again == statuses  # reproducible: the quirks' own seeded generator


@pytest.mark.parametrize(("spec", "expected"), [
    ("all", FAITHFUL),
    ("none", dict.fromkeys(FAITHFUL, 0.0)),
    ("none,market_error_status=1", {**dict.fromkeys(FAITHFUL, 0.0), "market_error_status": 1}),
    ("market_raw_as_wav=0", {**FAITHFUL, "market_raw_as_wav": 0.0}),
    ("market_record_id", FAITHFUL),  # a bare name means 1
])
def test_quirk_specs(spec: str, expected: dict[str, float]) -> None:
    assert parse_quirks(spec) == expected


@pytest.mark.parametrize(("spec", "needle"), [
    ("market_errors=1", "expected all, none or one of"), ("market_record_id=2", "within [0, 1]"),
    ("market_record_id=yes", "NAME=PROBABILITY")])
def test_bad_quirk_specs(sandbox: SandboxServer, spec: str, needle: str) -> None:
    with pytest.raises(QuirkError, match=needle.replace("[", r"\[")):
        parse_quirks(spec)
    answer = httpx.post(f"{sandbox.url}/_sandbox/config", json={"quirks": spec})
    assert answer.status_code == 400 and needle in answer.json()["error"]
    shown = httpx.post(f"{sandbox.url}/_sandbox/config",
                       json={"quirks": "market_raw_as_wav=0"}).json()
    assert shown["quirks"] == "all,market_raw_as_wav=0"
