"""Every documented output format decodes as real audio of the requested length and rate."""

from __future__ import annotations

import json

import httpx
import pytest

from runner.sandbox import SandboxServer
from runner.sandbox.formats import ELEVENLABS_TTS_FORMATS, MARKET_SFX_FORMATS
from tests.sandbox.helpers import KEY, XI, decode, generation_id


@pytest.mark.parametrize("fmt", MARKET_SFX_FORMATS)
def test_market_sound_effect_formats(sandbox: SandboxServer, fmt: str) -> None:
    sandbox.config.update({"quirks": "market_raw_as_wav=0"})  # bare samples (below: in WAV)
    created = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY, json={
        "model": "elevenlabs/sound-effect-v2",
        "input": {"text": "thunder", "duration_seconds": 1.5, "output_format": fmt}}).json()
    info = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo",
                     params={"taskId": created["data"]["taskId"]}, headers=KEY).json()["data"]
    data = httpx.get(json.loads(info["resultJson"])["resultUrls"][0]).content
    rate, seconds = decode(data, fmt)
    assert rate == int(fmt.split("_")[1])
    assert abs(seconds - 1.5) <= 0.03
    if fmt.startswith("opus"):
        assert data[:4] == b"OggS" and b"OpusHead" in data[:100]
    if fmt.startswith(("pcm", "ulaw", "alaw")):
        assert data[:4] not in (b"RIFF", b"OggS", b"ID3\x03")  # raw, no header
        assert len(data) == round(1.5 * rate) * (2 if fmt.startswith("pcm") else 1)


@pytest.mark.parametrize(("fmt", "tag"), [("pcm_24000", 1), ("ulaw_8000", 7), ("alaw_8000", 6)])
def test_market_raw_results_may_come_as_wav(sandbox: SandboxServer, fmt: str, tag: int) -> None:
    """Quirk market_raw_as_wav: the same samples inside a RIFF/WAVE header."""
    sandbox.config.update({"quirks": "market_raw_as_wav=1"})
    created = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask", headers=KEY, json={
        "model": "elevenlabs/sound-effect-v2",
        "input": {"text": "thunder", "duration_seconds": 1.5, "output_format": fmt}}).json()
    info = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo",
                     params={"taskId": created["data"]["taskId"]}, headers=KEY).json()["data"]
    url = json.loads(info["resultJson"])["resultUrls"][0]
    answer = httpx.get(url)
    data = answer.content
    assert url.endswith(".wav") and answer.headers["content-type"] == "audio/wav"
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert int.from_bytes(data[20:22], "little") == tag  # PCM, mu-law or A-law
    assert data.count(b"RIFF") == 1  # wrapped once
    rate, seconds = decode(data, fmt)
    assert rate == int(fmt.split("_")[1]) and abs(seconds - 1.5) <= 0.03
    assert httpx.get(f"{sandbox.url}/_sandbox/stats").json()["quirks"]["market_raw_as_wav"] == 1


@pytest.mark.parametrize("fmt", ELEVENLABS_TTS_FORMATS)
def test_elevenlabs_speech_formats(sandbox: SandboxServer, fmt: str) -> None:
    response = httpx.post(f"{sandbox.url}/v1/text-to-speech/21m00Tcm4TlvDq8ikWAM",
                          params={"output_format": fmt}, headers=XI,
                          json={"text": "Formats are easy.", "seed": 7})
    assert response.status_code == 200, response.text
    rate, seconds = decode(response.content, fmt)
    assert rate == int(fmt.split("_")[1]) and 0.8 < seconds < 4


def test_sound_length_follows_the_prompt_when_not_given(sandbox: SandboxServer) -> None:
    lengths = []
    for prompt in ("boom", "a long rolling thunder over distant hills with rain and wind"):
        audio = httpx.post(f"{sandbox.url}/v1/sound-generation", headers=XI,
                           params={"output_format": "pcm_16000"}, json={"text": prompt})
        lengths.append(decode(audio.content, "pcm_16000")[1])
    assert 1.0 <= lengths[0] < lengths[1] <= 10.0


def test_stable_audio_is_a_stereo_wav_of_seconds_total(sandbox: SandboxServer) -> None:
    generation = httpx.post(f"{sandbox.url}/v2/generate/audio", headers=KEY,
                            json={"model": "stable-audio", "prompt": "lofi", "seconds_total": 3})
    fetched = httpx.get(f"{sandbox.url}/v2/generate/audio", headers=KEY,
                        params={"generation_id": generation_id(generation.json())}).json()
    data = httpx.get(fetched["audio_file"]["url"]).content
    assert data[:4] == b"RIFF" and fetched["audio_file"]["file_size"] == len(data)
    assert int.from_bytes(data[22:24], "little") == 2  # channels
    rate, seconds = decode(data, "wav_44100")
    assert rate == 44100 and abs(seconds - 3) < 0.01
