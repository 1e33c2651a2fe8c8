"""The ElevenLabs direct adapter against the sandbox over real HTTP: audio streamed into a
sink, base64 audio decoded on the fly, transcripts, and the error mapping."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

import httpx
import pytest

from runner.catalog.models import MODELS
from runner.errors import (
    AccountRefused,
    ConcurrencyLimited,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    TransportError,
)
from runner.providers.base import Request
from runner.providers.elevenlabs import ElevenLabsAdapter
from runner.providers.http import make_client
from runner.providers.market import MarketAdapter

from .conftest import API_KEY, Sandbox, Sink, closed_port_url, verify

pytestmark = pytest.mark.anyio

TTS = MODELS["text-to-speech"]
TIMED = MODELS["text-to-speech-with-timestamps"]
SFX = MODELS["sound-generation"]
STT = MODELS["speech-to-text"]
GEORGE = "JBFqnCBsd6RMkjVDRZzb"
TEXT = "The first move is what sets everything in motion."


def adapter(sandbox: Sandbox, client: httpx.AsyncClient,
            key: str = API_KEY) -> ElevenLabsAdapter:
    return ElevenLabsAdapter(sandbox.account("elevenlabs"), key, client)


def speech(fmt: str = "mp3_44100_128", text: str = TEXT, **extra: object) -> dict[str, object]:
    return {"voice_id": GEORGE, "output_format": fmt, "text": text,
            "model_id": "eleven_turbo_v2_5", **extra}


@pytest.mark.parametrize("fmt", ["mp3_44100_128", "pcm_24000", "opus_48000_64"])
async def test_text_to_speech(sandbox: Sandbox, client: httpx.AsyncClient, fmt: str,
                              tmp_path: Path) -> None:
    sink = Sink(tmp_path / "speech")
    result = await adapter(sandbox, client).generate(Request("tts", TTS, speech(fmt)), sink)
    # Turbo v2.5 bills half a credit per character; character-cost says so.
    assert result.request_id and result.credits == math.ceil(len(TEXT) / 2)
    assert result.payload is None
    assert verify(sink.path, fmt).duration_s > 1.0


async def test_with_timestamps(sandbox: Sandbox, client: httpx.AsyncClient,
                               tmp_path: Path) -> None:
    sink = Sink(tmp_path / "timed.mp3")
    result = await adapter(sandbox, client).generate(
        Request("tts", TIMED, speech(voice_settings={"speed": 1.1})), sink)
    assert result.content_type == "audio/mpeg" and result.request_id
    assert result.payload is not None
    assert "".join(result.payload["alignment"]["characters"]) == TEXT
    assert result.payload["normalized_alignment"]["character_end_times_seconds"]
    info = verify(sink.path, "mp3_44100_128")
    assert info.duration_s == pytest.approx(
        result.payload["alignment"]["character_end_times_seconds"][-1], abs=0.5)


@pytest.mark.parametrize("fmt", ["mp3_44100_128", "wav_16000", "ulaw_8000"])
async def test_sound_generation(sandbox: Sandbox, client: httpx.AsyncClient, fmt: str,
                                tmp_path: Path) -> None:
    sink = Sink(tmp_path / "sfx")
    result = await adapter(sandbox, client).generate(Request("sfx", SFX, {
        "text": "glass shattering on stone", "duration_seconds": 1.2, "output_format": fmt}), sink)
    assert result.credits == 30  # 25 per second of set duration, rounded up
    assert verify(sink.path, fmt).duration_s == pytest.approx(1.2, abs=0.1)


async def test_speech_to_text_of_a_local_file(sandbox: Sandbox, client: httpx.AsyncClient,
                                              tmp_path: Path) -> None:
    eleven = adapter(sandbox, client)
    sink = Sink(tmp_path / "spoken.mp3")
    await eleven.generate(Request("tts", TTS, speech()), sink)

    async def nothing(chunk: bytes) -> None:
        raise AssertionError("a transcript is not written to the sink")

    result = await eleven.generate(Request(
        "stt", STT, {"model_id": "scribe_v1", "tag_audio_events": False, "diarize": True},
        audio_file=sink.path), nothing)
    assert result.payload is not None and result.content_type == "application/json"
    assert result.payload["text"].strip(" .").lower() == TEXT.strip(" .").lower()
    assert result.request_id == result.payload["transcription_id"]


async def test_speech_to_text_of_a_url(sandbox: Sandbox, client: httpx.AsyncClient,
                                       tmp_path: Path) -> None:
    """Another job's output, published through the market's upload API, by source_url."""
    local = tmp_path / "spoken.mp3"
    await adapter(sandbox, client).generate(Request("tts", TTS, speech()), Sink(local))
    url = await MarketAdapter(sandbox.account("kie"), API_KEY, client).upload(local, "s.mp3")

    async def nothing(chunk: bytes) -> None:
        raise AssertionError("unused")

    result = await adapter(sandbox, client).generate(
        Request("stt", STT, {"model_id": "scribe_v2", "source_url": url}), nothing)
    assert result.payload is not None and "everything" in result.payload["text"]


# --- errors -----------------------------------------------------------------------------


async def test_refused_key(sandbox: Sandbox, client: httpx.AsyncClient, tmp_path: Path) -> None:
    sandbox.knobs(api_keys=[API_KEY])
    for key in ("sk-wrong-key-000000000000", ""):
        with pytest.raises(AccountRefused) as caught:
            await adapter(sandbox, client, key).generate(Request("t", TTS, speech()),
                                                         Sink(tmp_path / "x"))
        assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")


async def test_quota_exceeded(sandbox: Sandbox, client: httpx.AsyncClient,
                              tmp_path: Path) -> None:
    sandbox.knobs(credits=10)
    with pytest.raises(AccountRefused) as caught:
        await adapter(sandbox, client).generate(Request("t", TTS, speech()), Sink(tmp_path / "x"))
    assert caught.value.code == "quota_exceeded" and "out of credits" in str(caught.value)


async def test_rate_limit(sandbox: Sandbox, client: httpx.AsyncClient, tmp_path: Path) -> None:
    sandbox.knobs(rate_limit="1/60")
    eleven = adapter(sandbox, client)
    await eleven.generate(Request("a", TTS, speech()), Sink(tmp_path / "a"))
    with pytest.raises(RateLimited) as caught:
        await eleven.generate(Request("b", TTS, speech()), Sink(tmp_path / "b"))
    assert caught.value.code == "rate_limit_exceeded"
    assert not getattr(caught.value, "concurrency", False)


@pytest.mark.parametrize(("legacy", "code"), [(0, "concurrent_limit_exceeded"),
                                              (1, "too_many_concurrent_requests")])
async def test_concurrency_limit_is_marked(sandbox: Sandbox, client: httpx.AsyncClient,
                                           tmp_path: Path, legacy: int, code: str) -> None:
    sandbox.knobs(max_concurrent=1, latency="0.3", quirks=f"elevenlabs_legacy_429={legacy}")
    eleven = adapter(sandbox, client)
    results = await asyncio.gather(
        eleven.generate(Request("a", SFX, {"text": "a"}), Sink(tmp_path / "a")),
        eleven.generate(Request("b", SFX, {"text": "b"}), Sink(tmp_path / "b")),
        return_exceptions=True)
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(limited) == 1 and isinstance(limited[0], ConcurrencyLimited)
    assert limited[0].code == code


@pytest.mark.parametrize(("inputs", "code", "words"), [
    (speech() | {"voice_id": "nobody"}, "voice_not_found", "was not found"),
    (speech(text="x" * 5001, model_id="eleven_v3"), "max_character_limit_exceeded",
     "at most 5000 characters"),
])
async def test_bad_request(sandbox: Sandbox, client: httpx.AsyncClient, tmp_path: Path,
                           inputs: dict[str, object], code: str, words: str) -> None:
    with pytest.raises(RequestRejected) as caught:
        await adapter(sandbox, client).generate(Request("t", TTS, inputs), Sink(tmp_path / "x"))
    assert (caught.value.status, caught.value.code) == (400, code)
    assert words in str(caught.value)


async def test_validation_errors_are_joined(sandbox: Sandbox, client: httpx.AsyncClient,
                                            tmp_path: Path) -> None:
    with pytest.raises(RequestRejected) as caught:
        await adapter(sandbox, client).generate(
            Request("t", TTS, speech(voice_settings={"stability": 5})), Sink(tmp_path / "x"))
    assert caught.value.status == 422
    assert "body.voice_settings.stability: ensure this value is less than or equal to 1" in str(
        caught.value)
    with pytest.raises(RequestRejected, match="query.output_format"):
        await adapter(sandbox, client).generate(Request("t", TTS, speech("mp3_1_1")),
                                                Sink(tmp_path / "x"))


@pytest.mark.parametrize(("fault", "http_status", "code"), [
    ("500", 500, "internal_server_error"), ("455", 503, "system_busy"),
    ("501", 500, "internal_server_error"),
])
async def test_server_errors(sandbox: Sandbox, client: httpx.AsyncClient, tmp_path: Path,
                             fault: str, http_status: int, code: str) -> None:
    sandbox.knobs(faults={fault: 1})
    with pytest.raises(ProviderUnavailable) as caught:
        await adapter(sandbox, client).generate(Request("t", SFX, {"text": "a"}),
                                                Sink(tmp_path / "x"))
    assert (caught.value.status, caught.value.code) == (http_status, code)


async def test_transport_failures(sandbox: Sandbox, client: httpx.AsyncClient,
                                  tmp_path: Path) -> None:
    sandbox.knobs(faults={"drop": 1})
    with pytest.raises(TransportError) as dropped:
        await adapter(sandbox, client).generate(Request("t", SFX, {"text": "a"}),
                                                Sink(tmp_path / "x"))
    assert dropped.value.request_sent is True
    sandbox.knobs(faults={"slow": 1}, slow_response_s=1.0)
    async with make_client(read_timeout_s=0.2) as impatient:
        with pytest.raises(TransportError) as slow:
            await adapter(sandbox, impatient).generate(Request("t", SFX, {"text": "a"}),
                                                       Sink(tmp_path / "x"))
    assert slow.value.request_sent is True
    account = dataclasses.replace(sandbox.account("elevenlabs"), base_url=closed_port_url())
    with pytest.raises(TransportError) as refused:
        await ElevenLabsAdapter(account, API_KEY, client).generate(
            Request("t", SFX, {"text": "a"}), Sink(tmp_path / "x"))
    assert refused.value.request_sent is False


async def test_asynchronous_methods_are_not_offered(sandbox: Sandbox,
                                                    client: httpx.AsyncClient,
                                                    tmp_path: Path) -> None:
    eleven = adapter(sandbox, client)
    assert eleven.synchronous
    with pytest.raises(RequestRejected, match="synchronous"):
        await eleven.submit(Request("t", TTS, speech()))
    with pytest.raises(RequestRejected, match="synchronous"):
        await eleven.status("x")
    with pytest.raises(RequestRejected, match="no upload"):
        await eleven.upload(tmp_path / "x.mp3", "x.mp3")
    with pytest.raises(RequestRejected, match="needs a local file or a source_url"):
        await eleven.generate(Request("s", STT, {"model_id": "scribe_v1"}), Sink(tmp_path / "x"))
    assert await eleven.refresh_url("https://x.invalid/a.mp3") is None
