"""AI/ML API and ElevenLabs answers the sandbox never gives, scripted with MockTransport."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.catalog.models import MODELS
from runner.errors import (
    AccountRefused,
    ConcurrencyLimited,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    TransportError,
)
from runner.providers.aimlapi import AimlapiAdapter
from runner.providers.base import Request, TaskState
from runner.providers.elevenlabs import Base64Field, ElevenLabsAdapter

from .conftest import Sink
from .mock import BASE, Script, account, reply

pytestmark = pytest.mark.anyio

KEY = "sk-mock-key-0123456789abcdef"
STABLE = MODELS["stable-audio"]
TTS = MODELS["text-to-speech"]
TIMED = MODELS["text-to-speech-with-timestamps"]
STT = MODELS["speech-to-text"]


# --- AI/ML API ----------------------------------------------------------------------------


@pytest.mark.parametrize("answer", [
    reply({"generation_id": "g-1"}, 201), reply({"id": "g-1", "status": "queued"}, 200),
    reply({"id": "g-1", "status": "queued"}, 202),
])
async def test_aimlapi_create_answers(answer: httpx.Response) -> None:
    script = Script(answer)
    async with script.client() as client:
        task = await AimlapiAdapter(account("aimlapi"), KEY, client).submit(
            Request("m", STABLE, {"prompt": "calm", "model": "ignored", "steps": 5}))
    assert task.task_id == "g-1"
    assert json.loads(script.last.content) == {"model": "stable-audio", "prompt": "calm",
                                               "steps": 5}
    assert script.last.headers["authorization"] == f"Bearer {KEY}"


async def aiml_status(answer: httpx.Response) -> Any:
    script = Script(answer)
    async with script.client() as client:
        status = await AimlapiAdapter(account("aimlapi"), KEY, client).status("g:stable-audio")
    assert script.last.url.params["generation_id"] == "g:stable-audio"
    return status


@pytest.mark.parametrize(("word", "state"), [
    ("queued", TaskState.PENDING), ("generating", TaskState.PENDING),
    ("processing", TaskState.PENDING), ("failed", TaskState.FAILED), ("error", TaskState.FAILED),
])
async def test_aimlapi_states(word: str, state: TaskState) -> None:
    status = await aiml_status(reply({"id": "g", "status": word, "audio_file": None,
                                      "error": {"name": "E", "message": "bad"}}))
    assert status.state is state and status.provider_state == word


async def test_aimlapi_completed_without_meta_or_url() -> None:
    status = await aiml_status(reply({"id": "g", "status": "completed",
                                      "audio_file": {"url": "https://cdn/x.wav"}}))
    assert status.result.urls == ("https://cdn/x.wav",) and status.result.credits is None
    with pytest.raises(ProviderUnavailable, match="no audio_file.url"):
        await aiml_status(reply({"id": "g", "status": "completed", "audio_file": None}))


@pytest.mark.parametrize(("answer", "kind", "words"), [
    (reply({"message": ["prompt must be a string", "steps must be an integer"],
            "statusCode": 400}, 400), RequestRejected, "prompt must be a string; steps must be"),
    (reply({"message": "Too Many Requests: concurrency limit reached"}, 429),
     ConcurrencyLimited, "concurrency"),
    (reply({"message": "You've run out of credits"}, 403), AccountRefused, "out of credits"),
    (reply(text="<html>bad gateway</html>", status=502), ProviderUnavailable, "bad gateway"),
    (reply(text="error code: 1010", status=403), RequestRejected, "User-Agent"),
    (reply(text="<html>accepted</html>", status=201), TransportError, "unreadable"),
])
async def test_aimlapi_error_table(answer: httpx.Response, kind: type[ProviderError],
                                   words: str) -> None:
    script = Script(answer)
    async with script.client() as client:
        with pytest.raises(ProviderError) as caught:
            await AimlapiAdapter(account("aimlapi"), KEY, client).submit(
                Request("m", STABLE, {"prompt": "x"}))
    assert type(caught.value) is kind and words in str(caught.value)


# --- ElevenLabs ---------------------------------------------------------------------------


async def test_query_path_and_body_are_split(tmp_path: Path) -> None:
    script = Script(httpx.Response(200, content=b"ID3audio", headers={
        "request-id": "r-1", "character-cost": "5", "content-type": "audio/mpeg"}))
    async with script.client(user_agent=False) as bare:
        result = await ElevenLabsAdapter(account("elevenlabs"), KEY, bare).generate(
            Request("t", TTS, {"voice_id": "a/b", "output_format": "pcm_16000",
                               "enable_logging": False, "text": "hi", "seed": 3}),
            Sink(tmp_path / "a"))
    sent = script.last
    assert sent.url.raw_path == b"/v1/text-to-speech/a%2Fb?output_format=pcm_16000&enable_logging=false"
    assert json.loads(sent.content) == {"text": "hi", "seed": 3}
    assert sent.headers["xi-api-key"] == KEY and "authorization" not in sent.headers
    assert sent.headers["user-agent"].startswith("Mozilla/5.0")
    assert (result.request_id, result.credits, result.content_type) == ("r-1", 5.0, "audio/mpeg")
    assert (tmp_path / "a").read_bytes() == b"ID3audio"


async def test_speech_to_text_multipart(tmp_path: Path) -> None:
    audio = tmp_path / "talk.wav"
    audio.write_bytes(b"RIFFfake")
    script = Script(reply({"text": "hello", "words": [], "language_code": "en"},
                          headers={"request-id": "r-2"}))
    async with script.client() as client:
        eleven = ElevenLabsAdapter(account("elevenlabs"), KEY, client)
        result = await eleven.generate(Request("s", STT, {
            "model_id": "scribe_v1", "diarize": True, "keyterms": ["Kie", "apikley"],
            "additional_formats": [{"format": "srt"}], "num_speakers": None,
            "enable_logging": True, "file": "ignored"}, audio_file=audio), Sink(tmp_path / "x"))
        assert result.payload == {"text": "hello", "words": [], "language_code": "en"}
        assert result.request_id == "r-2"
        sent = script.last
        assert sent.url.params["enable_logging"] == "true"
        content = sent.content
        for part in (b'name="model_id"\r\n\r\nscribe_v1', b'name="diarize"\r\n\r\ntrue',
                     b'name="keyterms"\r\n\r\nKie', b'name="keyterms"\r\n\r\napikley',
                     b'name="additional_formats"\r\n\r\n[{"format":"srt"}]',
                     b'name="file"; filename="talk.wav"', b"RIFFfake"):
            assert part in content
        assert b"num_speakers" not in content and b"ignored" not in content
        # No file: still multipart, with the URL as a plain field.
        await eleven.generate(Request("s", STT, {"model_id": "scribe_v1",
                                                 "source_url": "https://f/a.mp3"}),
                              Sink(tmp_path / "x"))
        assert script.last.headers["content-type"].startswith("multipart/form-data")
        assert b'name="source_url"\r\n\r\nhttps://f/a.mp3' in script.last.content


@pytest.mark.parametrize(("answer", "kind", "code", "words"), [
    (reply({"detail": [{"loc": ["body", "text"], "msg": "field required", "type": "missing"},
                       {"loc": ["query", "output_format"], "msg": "bad", "type": "enum"}]}, 422),
     RequestRejected, None, "body.text: field required; query.output_format: bad"),
    (reply({"detail": {"status": "too_many_concurrent_requests", "message": "wait"}}, 429,
           {"retry-after": "2"}), ConcurrencyLimited, "too_many_concurrent_requests", "wait"),
    (reply({"detail": {"status": "system_busy", "message": "busy"}}, 429), RateLimited,
     "system_busy", "busy"),
    (reply({"detail": {"code": "quota_exceeded", "status": "legacy", "message": "no quota"}},
           401), AccountRefused, "quota_exceeded", "out of credits"),
    (reply({"detail": "Not Found"}, 404), RequestRejected, None, "Not Found"),
    (reply(text="upstream connect error", status=503), ProviderUnavailable, None, "upstream"),
])
async def test_elevenlabs_error_table(answer: httpx.Response, kind: type[ProviderError],
                                      code: str | None, words: str, tmp_path: Path) -> None:
    script = Script(answer)
    async with script.client() as client:
        with pytest.raises(ProviderError) as caught:
            await ElevenLabsAdapter(account("elevenlabs"), KEY, client).generate(
                Request("t", TTS, {"voice_id": "v", "text": "x"}), Sink(tmp_path / "x"))
    error = caught.value
    assert type(error) is kind and error.code == code and words in str(error)
    if kind is ConcurrencyLimited:
        assert error.retry_after_s == 2.0


# --- with-timestamps: base64 audio decoded as it streams ------------------------------------

AUDIO = bytes(range(256)) * 40  # 10 KiB whose base64 holds '+' and '/'
ALIGN = {"characters": ["h", "\"", "é"], "character_start_times_seconds": [0, 0.1, 0.2],
         "character_end_times_seconds": [0.1, 0.2, 0.3]}


def timed_body(order: str = "audio-first", escape_slashes: bool = False,
               line_breaks: bool = False) -> bytes:
    encoded = base64.b64encode(AUDIO).decode()
    if line_breaks:
        encoded = "\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    audio = json.dumps(encoded)
    if escape_slashes:
        audio = audio.replace("/", "\\/").replace("+", "\\u002B")
    parts = [f'"audio_base64" :  {audio}', f'"alignment": {json.dumps(ALIGN)}',
             '"normalized_alignment": null']
    if order == "audio-last":
        parts.reverse()
    return ("{ " + ",\n ".join(parts) + " }").encode()


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64, 4096, 1 << 20])
@pytest.mark.parametrize("variant", [{}, {"order": "audio-last"}, {"escape_slashes": True},
                                     {"line_breaks": True}])
async def test_base64_field_any_chunking(chunk_size: int, variant: dict[str, Any]) -> None:
    raw = timed_body(**variant)
    out: list[bytes] = []

    async def sink(chunk: bytes) -> None:
        out.append(chunk)

    field = Base64Field("audio_base64", sink)
    for i in range(0, len(raw), chunk_size):
        await field.feed(raw[i:i + chunk_size])
    doc = await field.finish()
    assert b"".join(out) == AUDIO
    assert doc["alignment"] == ALIGN and doc["normalized_alignment"] is None
    if chunk_size <= 4096 and variant.get("order") != "audio-last":
        assert len(out) > 1  # decoded as it came, not at the end


@pytest.mark.parametrize(("raw", "words"), [
    (b'{"alignment": null}', "no audio_base64"),
    (b'{"audio_base64": null}', "no audio_base64"),
    (b'{"audio_base64": "AAA', "ends inside"),
    (b'{"audio_base64": "A!!A"}', "not valid base64"),
])
async def test_base64_field_bad_answers(raw: bytes, words: str) -> None:
    async def sink(chunk: bytes) -> None:
        pass

    field = Base64Field("audio_base64", sink)
    with pytest.raises(ValueError, match=words):
        await field.feed(raw)
        await field.finish()


async def test_with_timestamps_over_a_chunked_stream(tmp_path: Path) -> None:
    raw = timed_body()

    async def chunks() -> Any:
        for i in range(0, len(raw), 1000):
            yield raw[i:i + 1000]

    script = Script(lambda request: httpx.Response(200, content=chunks(), headers={
        "content-type": "application/json", "request-id": "r-9"}))
    sink = Sink(tmp_path / "a.mp3")
    async with script.client() as client:
        result = await ElevenLabsAdapter(account("elevenlabs"), KEY, client).generate(
            Request("t", TIMED, {"voice_id": "v", "text": "x"}), sink)
    assert sink.path.read_bytes() == AUDIO and sink.chunks > 5
    assert result.payload == {"alignment": ALIGN, "normalized_alignment": None}
    assert result.content_type == "audio/mpeg"
    assert str(script.last.url) == f"{BASE}/v1/text-to-speech/v/with-timestamps"


async def test_with_timestamps_without_audio(tmp_path: Path) -> None:
    script = Script(reply({"alignment": None}))
    async with script.client() as client:
        with pytest.raises(ProviderUnavailable, match="no audio_base64"):
            await ElevenLabsAdapter(account("elevenlabs"), KEY, client).generate(
                Request("t", TIMED, {"voice_id": "v", "text": "x"}), Sink(tmp_path / "x"))
