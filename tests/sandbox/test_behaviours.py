"""Documented behaviours that are always on (not quirks): each shows on the wire.

ElevenLabs' headers, plan concurrency, streaming endpoints, WAV speech and odd
input; the market's times in milliseconds, result and upload expiry, uploads'
random names and encoded URLs, callbacks to a URL with a path; the rate limit per
provider; what `runner sandbox serve` and `runner run --sandbox` start with.
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from runner.sandbox import SandboxProcess, SandboxServer, parse_latency, parse_rate_limit
from runner.sandbox.config import REALISTIC_LATENCY, REALISTIC_RATE_LIMIT
from tests.conftest import FakeClock
from tests.sandbox.helpers import KEY, XI, CallbackReceiver, Gate, decode

GEORGE = "JBFqnCBsd6RMkjVDRZzb"
SFX = {"model": "elevenlabs/sound-effect-v2", "input": {"text": "x", "duration_seconds": 1}}


def speak(sandbox: SandboxServer, path: str = "", **body: Any) -> httpx.Response:
    params = {"output_format": body.pop("output_format", "mp3_44100_128")}
    return httpx.post(f"{sandbox.url}/v1/text-to-speech/{GEORGE}{path}", headers=XI,
                      params=params, json={"text": "Headers tell the truth.", **body}, timeout=30)


# --- ElevenLabs ----------------------------------------------------------------------


@pytest.mark.parametrize(("model_id", "cost", "maximum"), [
    ("eleven_multilingual_v2", 23, 5), ("eleven_flash_v2_5", 12, 10),
    ("eleven_turbo_v2_5", 12, 10), ("eleven_v3", 23, 5)])
def test_elevenlabs_headers(sandbox: SandboxServer, model_id: str, cost: int,
                            maximum: int) -> None:
    """request-id and history-item-id are distinct records; character-cost bills Flash and
    Turbo at half a credit per character; the concurrency pair follows the plan (Creator)."""
    answer = speak(sandbox, model_id=model_id)
    assert answer.status_code == 200
    headers = answer.headers
    assert headers["request-id"] and headers["history-item-id"]
    assert headers["request-id"] != headers["history-item-id"]
    assert int(headers["character-cost"]) == cost == math.ceil(23 / (2 if cost == 12 else 1))
    assert int(headers["maximum-concurrent-requests"]) == maximum
    assert int(headers["current-concurrent-requests"]) == 1
    # Stitching takes the request id, not the history item's.
    wrong = speak(sandbox, previous_request_ids=[headers["history-item-id"]])
    assert wrong.status_code == 400 and wrong.json()["detail"]["code"] == "invalid_request_id"
    assert speak(sandbox, previous_request_ids=[headers["request-id"]]).status_code == 200


def test_plan_concurrency_is_enforced(sandbox: SandboxServer) -> None:
    sandbox.config.update({"elevenlabs_plan": "free"})
    gate = Gate()
    sandbox.config.sleep = gate
    answers: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(speak(sandbox)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    gate.wait_in_flight(sandbox, 2)
    answers.append(speak(sandbox))  # a third while two are held
    gate.open()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 200, 429]  # the Free plan: 2 at once for Multilingual v2
    assert {a.headers.get("maximum-concurrent-requests") for a in answers
            if a.status_code == 200} == {"2"}
    sandbox.config.update({"elevenlabs_plan": None})
    assert "maximum-concurrent-requests" not in speak(sandbox).headers


def test_rate_limit_and_quota_bodies(sandbox: SandboxServer) -> None:
    sandbox.config.update({"rate_limit": "elevenlabs=1/60"})
    assert speak(sandbox).status_code == 200
    limited = speak(sandbox)
    assert limited.status_code == 429
    assert limited.json()["detail"]["code"] == limited.json()["detail"]["status"] == \
        "rate_limit_exceeded"
    sandbox.config.update({"rate_limit": None, "credits": 23 + 5})  # 23 spent above
    quota = speak(sandbox)
    assert quota.status_code == 401 and quota.json()["detail"]["code"] == "quota_exceeded"
    assert "You have 5 credits remaining, while 23 credits are required" in \
        quota.json()["detail"]["message"]


@pytest.mark.parametrize("fmt", ["wav_16000", "wav_44100", "wav_8000"])
def test_speech_in_wav(sandbox: SandboxServer, fmt: str) -> None:
    """Every output format the API lists, WAV included (the SDK's enum)."""
    for path in ("", "/with-timestamps"):
        answer = speak(sandbox, path, output_format=fmt)
        assert answer.status_code == 200, answer.text
        audio = base64.b64decode(answer.json()["audio_base64"]) if path else answer.content
        assert audio[:4] == b"RIFF"
        rate, seconds = decode(audio, fmt)
        assert rate == int(fmt.split("_")[1]) and seconds > 1
    # The streaming endpoints list no WAV (a RIFF header needs sizes a stream lacks).
    for path in ("/stream", "/stream/with-timestamps"):
        refused = speak(sandbox, path, output_format=fmt)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["query", "output_format"]


def test_streaming_endpoints(sandbox: SandboxServer) -> None:
    text = "Streaming speech arrives in pieces, and the pieces make the whole."
    whole = speak(sandbox, text=text, seed=11, output_format="mp3_22050_32")
    with httpx.stream("POST", f"{sandbox.url}/v1/text-to-speech/{GEORGE}/stream", headers=XI,
                      params={"output_format": "mp3_22050_32"},
                      json={"text": text, "seed": 11}) as streamed:
        assert streamed.headers.get("transfer-encoding") == "chunked"
        assert streamed.headers["request-id"] and streamed.headers["character-cost"] == "66"
        pieces = list(streamed.iter_raw())
    assert len(pieces) > 1 and b"".join(pieces) == whole.content  # the same take, in pieces
    timed = speak(sandbox, "/with-timestamps", text=text, seed=11)
    lines = speak(sandbox, "/stream/with-timestamps", text=text, seed=11).text.splitlines()
    chunks = [json.loads(line) for line in lines if line]
    assert len(chunks) > 1
    audio = b"".join(base64.b64decode(c["audio_base64"]) for c in chunks)
    assert audio == base64.b64decode(timed.json()["audio_base64"])
    characters = [ch for c in chunks for ch in c["alignment"]["characters"]]
    starts = [t for c in chunks for t in c["alignment"]["character_start_times_seconds"]]
    assert "".join(characters) == text and starts == sorted(starts)
    assert starts == timed.json()["alignment"]["character_start_times_seconds"]


@pytest.mark.parametrize(("body", "loc"), [
    ({"voice_settings": 5}, ["body", "voice_settings"]),
    ({"voice_settings": [1]}, ["body", "voice_settings"]),
    ({"previous_request_ids": 5}, ["body", "previous_request_ids"]),
    ({"text": 5}, ["body", "text"]),
    ({"seed": "7"}, ["body", "seed"]),
    ({"pronunciation_dictionary_locators": "x"}, ["body", "pronunciation_dictionary_locators"]),
])
def test_odd_input_is_a_422_not_a_crash(sandbox: SandboxServer, body: dict[str, Any],
                                        loc: list[str]) -> None:
    answer = httpx.post(f"{sandbox.url}/v1/text-to-speech/{GEORGE}", headers=XI,
                        json={"text": "x", **body})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == loc


# --- market ---------------------------------------------------------------------------


def test_times_are_milliseconds_in_records_and_callbacks(sandbox: SandboxServer,
                                                         fake_clock: FakeClock) -> None:
    sandbox.config.latency = parse_latency("4")
    receiver = CallbackReceiver()
    try:
        target = receiver.url.replace("/callback", "/hooks/kie/7?token=a%20b")
        created_at = fake_clock.now_s
        task_id = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                             json={**SFX, "callBackUrl": target}).json()["data"]["taskId"]
        fake_clock.advance(4)
        [(body, _)] = receiver.wait(1)
    finally:
        receiver.close()
    data = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                     headers=KEY).json()["data"]
    assert data["createTime"] == round(created_at * 1000)
    assert data["completeTime"] == data["updateTime"] == round((created_at + 4) * 1000)
    assert data["costTime"] == 4000
    for key in ("createTime", "completeTime", "updateTime", "costTime"):
        assert body["data"][key] == data[key]
    assert receiver.paths == ["/hooks/kie/7?token=a%20b"]  # the URL's path and query, as given


def test_result_urls_live_24_hours_and_refreshed_links_20_minutes(
        sandbox: SandboxServer, fake_clock: FakeClock) -> None:
    task_id = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY,
                         json=SFX).json()["data"]["taskId"]
    data = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo", params={"taskId": task_id},
                     headers=KEY).json()["data"]
    url = json.loads(data["resultJson"])["resultUrls"][0]
    fake_clock.advance(24 * 3600 - 1)
    assert httpx.get(url).status_code == 200
    fake_clock.advance(2)
    assert httpx.get(url).status_code == 403
    fresh = httpx.post(f"{sandbox.url}/api/v1/common/download-url", headers=KEY,
                       json={"url": url}).json()["data"]
    assert httpx.get(fresh).status_code == 200
    fake_clock.advance(20 * 60)
    assert httpx.get(fresh).status_code == 403


def test_uploads_random_names_encoded_urls_and_expiry(sandbox: SandboxServer,
                                                      fake_clock: FakeClock) -> None:
    def upload(name: str | None, original: str = "take 1 #2 (ä).wav") -> dict[str, Any]:
        fields = {"uploadPath": "runner/u", **({"fileName": name} if name else {})}
        answer = httpx.post(f"{sandbox.upload_url}/api/file-stream-upload", headers=KEY,
                            files={"file": (original, b"RIFF-bytes", "audio/wav")}, data=fields)
        return dict(answer.json()["data"])

    sandbox.config.update({"quirks": "upload_quickstart_shape=0"})
    first, second = upload(None), upload(None)
    # "If not provided, a random file name will be generated" (keeping the extension).
    assert first["fileName"] != second["fileName"]
    assert first["fileName"].endswith(".wav") and "take" not in first["fileName"]
    named = upload("take 1 #2 (ä).wav")
    url = named["downloadUrl"]
    path = urlsplit(url).path
    assert path.endswith("/take%201%20%232%20%28%C3%A4%29.wav") and unquote(path).endswith(
        named["fileName"])
    assert urlsplit(url).fragment == "" and httpx.get(url).content == b"RIFF-bytes"
    fake_clock.advance(24 * 3600 + 1)
    assert httpx.get(url).status_code == 403


def test_rate_limits_per_provider(sandbox: SandboxServer) -> None:
    sandbox.config.rate_limit = parse_rate_limit("kie=1/10")
    kie = [httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY, json=SFX)
           .json()["code"] for _ in range(2)]
    apikley = [httpx.post(f"{sandbox.url}/apikley/api/v1/jobs/createTask", headers=KEY,
                          json=SFX).json()["code"] for _ in range(2)]
    assert kie == [200, 429] and apikley == [200, 200]
    assert httpx.get(f"{sandbox.url}/_sandbox/config").json()["rate_limit"] == "kie=1/10"


# --- serving ---------------------------------------------------------------------------


def test_serve_documents_its_defaults() -> None:
    shown = subprocess.run([sys.executable, "-m", "runner", "sandbox", "serve", "--help"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    flat = " ".join(shown.split())
    for default in ("faithful mode", "latency 0", "no rate limit", "Creator plan",
                    "(default 8765)", "(default 86400)", "default all", "--realistic"):
        assert default in flat, default
    assert all(name in shown for name in ("market_error_status", "elevenlabs_legacy_429"))


def test_the_embedded_sandbox_is_realistic() -> None:
    """`runner run --sandbox` starts the sandbox with the published limits and realistic
    latencies; `serve` prints the API's URL, then the upload host's."""
    from runner.cli.run import SANDBOX_ARGS

    with SandboxProcess(SANDBOX_ARGS) as url:
        config = httpx.get(f"{url}/_sandbox/config").json()
        hosts = httpx.get(f"{url}/_sandbox/hosts").json()
    assert config["rate_limit"] == REALISTIC_RATE_LIMIT == "kie=20/10,apikley=20/10"
    assert config["latency"] == {m: str(v) for m, v in parse_latency(REALISTIC_LATENCY).items()}
    assert config["latency"]["stable-audio"] == "30-60" and config["quirks"] == "all"
    assert config["elevenlabs_plan"] == "creator"
    assert hosts["upload_base_url"].startswith("http://127.0.0.1:")
    assert hosts["upload_base_url"] != url
