"""Uploads and speech-to-text: the sandbox knows its own files, and invents for the rest."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import httpx

from runner.sandbox import SandboxServer
from tests.sandbox.helpers import KEY, XI, decode, sine_wav

STT = "elevenlabs/speech-to-text"
TEXT = "Sandbox speech comes back as the very same words."


def _run(url: str, model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    created = httpx.post(f"{url}/api/v1/jobs/createTask", headers=KEY,
                         json={"model": model, "input": inputs}).json()
    return dict(httpx.get(f"{url}/api/v1/jobs/recordInfo", headers=KEY,
                          params={"taskId": created["data"]["taskId"]}).json()["data"])


def _speech_url(url: str) -> str:
    data = _run(url, "elevenlabs/text-to-speech-turbo-2-5", {"text": TEXT, "voice": "Brian"})
    return str(json.loads(data["resultJson"])["resultUrls"][0])


def test_uploads_return_a_download_url(sandbox: SandboxServer) -> None:
    sandbox.config.update({"quirks": "upload_quickstart_shape=0"})  # the endpoint pages' shape
    wav = sine_wav(0.5)
    stream = httpx.post(f"{sandbox.upload_url}/api/file-stream-upload", headers=KEY,
                        files={"file": ("tone.wav", wav, "audio/wav")},
                        data={"uploadPath": "runner/tests", "fileName": "tone.wav"}).json()
    assert stream["success"] is True and stream["code"] == 200
    assert set(stream["data"]) == {"fileName", "filePath", "downloadUrl", "fileSize", "mimeType",
                                   "uploadedAt"}
    assert httpx.get(stream["data"]["downloadUrl"]).content == wav
    as_data_url = "data:audio/wav;base64," + base64.b64encode(wav).decode()
    b64 = httpx.post(f"{sandbox.url}/apikley/file-upload/api/file-base64-upload", headers=KEY,
                     json={"base64Data": as_data_url, "uploadPath": "x"}).json()
    assert b64["data"]["mimeType"] == "audio/wav" and b64["data"]["fileSize"] == len(wav)
    by_url = httpx.post(f"{sandbox.upload_url}/api/file-url-upload", headers=KEY,
                        json={"fileUrl": stream["data"]["downloadUrl"], "uploadPath": "y"}).json()
    assert httpx.get(by_url["data"]["downloadUrl"]).content == wav


def test_upload_errors(sandbox: SandboxServer) -> None:
    url = f"{sandbox.upload_url}/api/file-base64-upload"
    assert httpx.post(url, json={"base64Data": "aGk=", "uploadPath": "x"}).status_code == 401
    for body, needle in (({"base64Data": "aGk="}, "uploadPath"),
                         ({"base64Data": "aGk=", "uploadPath": "/x"}, "uploadPath"),
                         ({"base64Data": "***", "uploadPath": "x"}, "base64")):
        answer = httpx.post(url, headers=KEY, json=body)
        assert answer.status_code == 400 and needle in answer.json()["msg"]
    outside = httpx.post(f"{sandbox.upload_url}/api/file-url-upload", headers=KEY,
                         json={"fileUrl": "https://example.com/a.mp3", "uploadPath": "x"})
    assert outside.status_code == 400 and "127.0.0.1" in outside.json()["msg"]


def test_same_path_and_name_overwrites(sandbox: SandboxServer) -> None:
    def upload(payload: bytes) -> str:
        answer = httpx.post(f"{sandbox.upload_url}/api/file-base64-upload", headers=KEY, json={
            "base64Data": base64.b64encode(payload).decode(), "uploadPath": "p",
            "fileName": "a.bin"}).json()
        return str(answer["data"]["downloadUrl"])

    first = upload(b"one")
    second = upload(b"two")
    assert httpx.get(first).status_code == 404 and httpx.get(second).content == b"two"


def test_market_stt_returns_the_original_text_of_a_sandbox_file(sandbox: SandboxServer) -> None:
    audio_url = _speech_url(sandbox.url)
    data = _run(sandbox.url, STT, {"audio_url": audio_url})
    result = json.loads(data["resultJson"])["resultObject"]
    assert result["text"] == TEXT
    words = [w for w in result["words"] if w["type"] == "word"]
    assert " ".join(w["text"] for w in words) == TEXT
    assert all(w["speaker_id"] == "speaker_0" for w in result["words"])  # diarize defaults on
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(words))
    _, seconds = decode(httpx.get(audio_url).content, "mp3_44100_128")
    assert 0 < words[0]["start"] < 0.2 and seconds - 0.5 < words[-1]["end"] <= seconds


def test_uploaded_copies_are_recognised_even_in_raw_formats(sandbox: SandboxServer) -> None:
    pcm = httpx.post(f"{sandbox.url}/v1/text-to-speech/JBFqnCBsd6RMkjVDRZzb", headers=XI,
                     params={"output_format": "pcm_16000"}, json={"text": TEXT}).content
    upload = httpx.post(f"{sandbox.upload_url}/api/file-stream-upload", headers=KEY,
                        files={"file": ("speech.pcm", pcm)}, data={"uploadPath": "u"}).json()
    data = _run(sandbox.url, STT, {"audio_url": upload["data"]["downloadUrl"], "diarize": False})
    result = json.loads(data["resultJson"])["resultObject"]
    assert result["text"] == TEXT and "speaker_id" not in result["words"][0]


def test_other_audio_gets_a_transcript_spanning_its_duration(sandbox: SandboxServer) -> None:
    wav = sine_wav(4.0)
    answer = httpx.post(f"{sandbox.url}/v1/speech-to-text", headers=XI,
                        data={"model_id": "scribe_v1", "diarize": "true",
                              "tag_audio_events": "true", "num_speakers": "2"},
                        files={"file": ("tone.wav", wav, "audio/wav")})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    again = httpx.post(f"{sandbox.url}/v1/speech-to-text", headers=XI,
                       data={"model_id": "scribe_v1", "diarize": "true",
                             "tag_audio_events": "true", "num_speakers": "2"},
                       files={"file": ("tone.wav", wav, "audio/wav")}).json()
    assert result["text"] == again["text"] and result["text"]  # deterministic
    assert abs(result["audio_duration_secs"] - 4.0) < 0.05
    timed = [w for w in result["words"] if w["type"] != "spacing"]
    assert timed[0]["start"] < 0.2 and 3.5 < timed[-1]["end"] <= 4.0
    assert {w["speaker_id"] for w in result["words"]} <= {"speaker_0", "speaker_1"}


def test_stt_failures(sandbox: SandboxServer) -> None:
    outside = _run(sandbox.url, STT, {"audio_url": "https://example.com/a.mp3"})
    assert outside["state"] == "fail" and "127.0.0.1" in outside["failMsg"]
    no_model = httpx.post(f"{sandbox.url}/v1/speech-to-text", headers=XI,
                          files={"file": ("a.wav", b"RIFF")})
    assert no_model.status_code == 422
    assert no_model.json()["detail"][0]["loc"] == ["body", "model_id"]
    garbage = httpx.post(f"{sandbox.url}/v1/speech-to-text", headers=XI,
                         data={"model_id": "scribe_v1"}, files={"file": ("a.wav", b"nonsense")})
    assert garbage.status_code == 400 and garbage.json()["detail"]["status"] == "invalid_content"
    neither = httpx.post(f"{sandbox.url}/v1/speech-to-text", headers=XI,
                         data={"model_id": "scribe_v1"}, files={"x": ("a", b"")})
    assert neither.status_code == 400
