"""The official `elevenlabs` SDK against the sandbox: every ElevenLabs endpoint, streaming
included, its raw-response headers and its errors.

The SDK is ElevenLabs' own client (Fern-generated from their API definition): what
it parses without complaint, a real client parses. It talks to the sandbox over a
real socket, in the faithful mode.
"""

from __future__ import annotations

import base64
import math
import threading

import pytest
from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.errors import UnprocessableEntityError
from elevenlabs.types import VoiceSettings

from runner.sandbox import SandboxServer
from tests.sandbox.helpers import Gate, decode, sine_wav

GEORGE = "JBFqnCBsd6RMkjVDRZzb"
TEXT = "The SDK works against the sandbox."
NO_RETRY = {"max_retries": 0}


@pytest.fixture
def client(sandbox: SandboxServer) -> ElevenLabs:
    sandbox.config.api_keys = frozenset({"sdk-key"})
    return ElevenLabs(api_key="sdk-key", base_url=sandbox.url)


def test_text_to_speech_convert_in_every_kind_of_format(client: ElevenLabs) -> None:
    for fmt in ("mp3_44100_128", "pcm_16000", "ulaw_8000", "opus_48000_64", "wav_22050"):
        audio = b"".join(client.text_to_speech.convert(
            GEORGE, text=TEXT, model_id="eleven_multilingual_v2", output_format=fmt,  # type: ignore[arg-type]
            voice_settings=VoiceSettings(stability=0.4, similarity_boost=0.8, speed=1.1)))
        rate, seconds = decode(audio, fmt)
        assert rate == int(fmt.split("_")[1]) and seconds > 1


def test_raw_response_headers(client: ElevenLabs) -> None:
    with client.text_to_speech.with_raw_response.convert(
            GEORGE, text=TEXT, model_id="eleven_flash_v2_5") as response:
        audio = b"".join(response.data)
        headers = response.headers
    assert decode(audio, "mp3_44100_128")[1] > 1
    assert headers["request-id"] != headers["history-item-id"]
    assert int(headers["character-cost"]) == math.ceil(len(TEXT) / 2)  # Flash: half price
    assert headers["maximum-concurrent-requests"] == "10"  # Creator plan, Flash
    # The request id stitches the next request, as the SDK's docstrings say.
    follow = b"".join(client.text_to_speech.convert(
        GEORGE, text="And then it went on.", model_id="eleven_flash_v2_5",
        previous_request_ids=[headers["request-id"]]))
    assert decode(follow, "mp3_44100_128")[1] > 0.5


def test_convert_with_timestamps(client: ElevenLabs) -> None:
    timed = client.text_to_speech.convert_with_timestamps(GEORGE, text=TEXT,
                                                         output_format="pcm_22050")
    assert timed.alignment is not None and timed.normalized_alignment is not None
    assert "".join(timed.alignment.characters) == TEXT
    _, seconds = decode(base64.b64decode(timed.audio_base_64), "pcm_22050")
    assert abs(timed.alignment.character_end_times_seconds[-1] - seconds) < 0.05


def test_stream(client: ElevenLabs) -> None:
    pieces = list(client.text_to_speech.stream(GEORGE, text=TEXT, output_format="mp3_22050_32",
                                               seed=5, request_options={"chunk_size": 1024}))
    assert len(pieces) > 1
    whole = b"".join(client.text_to_speech.convert(GEORGE, text=TEXT, seed=5,
                                                   output_format="mp3_22050_32"))
    assert b"".join(pieces) == whole  # the same take, in pieces


def test_stream_with_timestamps(client: ElevenLabs) -> None:
    chunks = list(client.text_to_speech.stream_with_timestamps(
        GEORGE, text=TEXT, output_format="mp3_44100_128", seed=5))
    assert len(chunks) > 1
    audio = b"".join(base64.b64decode(chunk.audio_base_64) for chunk in chunks)
    assert decode(audio, "mp3_44100_128")[1] > 1
    characters = "".join("".join(c.alignment.characters) for c in chunks if c.alignment)
    assert characters == TEXT


def test_sound_effects(client: ElevenLabs) -> None:
    for fmt, seconds in (("mp3_22050_32", 2.0), ("wav_44100", 1.5), ("alaw_8000", 1.0)):
        effect = b"".join(client.text_to_sound_effects.convert(
            text="Spacious braam suitable for high-impact movie trailer moments",
            duration_seconds=seconds, output_format=fmt, prompt_influence=0.5,  # type: ignore[arg-type]
            model_id="eleven_text_to_sound_v2"))
        assert abs(decode(effect, fmt)[1] - seconds) < 0.03


def test_speech_to_text(client: ElevenLabs) -> None:
    speech = b"".join(client.text_to_speech.convert(GEORGE, text=TEXT,
                                                    model_id="eleven_multilingual_v2"))
    transcript = client.speech_to_text.convert(file=speech, model_id="scribe_v1", diarize=True)
    assert transcript.text == TEXT  # type: ignore[union-attr]
    assert transcript.words[0].speaker_id == "speaker_0"  # type: ignore[union-attr]
    other = client.speech_to_text.convert(file=sine_wav(2), model_id="scribe_v2",
                                          tag_audio_events=True)
    assert other.text and abs((other.audio_duration_secs or 0) - 2) < 0.05  # type: ignore[union-attr]


def test_errors_as_the_sdk_raises_them(sandbox: SandboxServer, client: ElevenLabs) -> None:
    with pytest.raises(ApiError) as refused:
        b"".join(ElevenLabs(api_key="wrong", base_url=sandbox.url).text_to_sound_effects
                 .convert(text="x"))
    assert refused.value.status_code == 401
    assert refused.value.body["detail"]["code"] == "invalid_api_key"
    with pytest.raises(UnprocessableEntityError):
        client.text_to_speech.convert_with_timestamps(
            GEORGE, text=TEXT, voice_settings=VoiceSettings(speed=3.0),
            request_options=NO_RETRY)
    sandbox.config.credits = 5
    with pytest.raises(ApiError) as quota:
        b"".join(client.text_to_speech.stream(GEORGE, text=TEXT))
    assert quota.value.status_code == 401
    assert quota.value.body["detail"]["status"] == "quota_exceeded"


@pytest.mark.parametrize(("legacy", "status"), [(0, "concurrent_limit_exceeded"),
                                                (1, "too_many_concurrent_requests")])
def test_both_concurrency_429_bodies(sandbox: SandboxServer, client: ElevenLabs, legacy: int,
                                     status: str) -> None:
    sandbox.config.update({"elevenlabs_plan": "free",
                           "quirks": f"elevenlabs_legacy_429={legacy}"})
    gate = Gate()
    sandbox.config.sleep = gate
    errors: list[ApiError] = []

    def speak() -> None:
        try:
            b"".join(client.text_to_speech.convert(GEORGE, text=TEXT))
        except ApiError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=speak) for _ in range(2)]
    for thread in threads:
        thread.start()
    gate.wait_in_flight(sandbox, 2)
    speak()  # a third while two are held
    gate.open()
    for thread in threads:
        thread.join()
    [error] = errors  # the Free plan allows 2 at once
    assert error.status_code == 429 and error.body["detail"]["status"] == status
