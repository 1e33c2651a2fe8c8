"""The sandbox's own OpenAPI 3.0 document, served at `/_sandbox/openapi.json`."""

from __future__ import annotations

from typing import Any

from runner import __version__
from runner.sandbox import formats

_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_XI: list[dict[str, list[str]]] = [{"xi": []}]


def _op(summary: str, security: list[dict[str, list[str]]] | None, body: str | None = None,
        params: tuple[str, ...] = (), ok: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {ok: {"description": "success"}}}
    if security is not None:
        op["security"] = security
    if params:
        op["parameters"] = [{"name": p, "in": "query", "schema": {"type": "string"}} for p in params]
    if body:
        op["requestBody"] = {"content": {body: {"schema": {"type": "object"}}}}
    return op


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix, label in (("", "kie.ai"), ("/apikley", "apikley")):
        upload = "" if not prefix else "/apikley/file-upload"
        paths[f"{prefix}/api/v1/jobs/createTask"] = {"post": _op(
            f"{label}: create a market task", _BEARER, "application/json")}
        paths[f"{prefix}/api/v1/jobs/recordInfo"] = {"get": _op(
            f"{label}: task details", _BEARER, params=("taskId",))}
        paths[f"{prefix}/api/v1/chat/credit"] = {"get": _op(f"{label}: credits left", _BEARER)}
        paths[f"{prefix}/api/v1/common/download-url"] = {"post": _op(
            f"{label}: temporary download link", _BEARER, "application/json")}
        paths[f"{upload}/api/file-stream-upload"] = {"post": _op(
            f"{label}: upload a file (multipart)", _BEARER, "multipart/form-data")}
        paths[f"{upload}/api/file-base64-upload"] = {"post": _op(
            f"{label}: upload a file (base64)", _BEARER, "application/json")}
        paths[f"{upload}/api/file-url-upload"] = {"post": _op(
            f"{label}: upload a file from a URL", _BEARER, "application/json")}
    paths["/v2/generate/audio"] = {
        "post": _op("AI/ML API: create a stable-audio generation", _BEARER, "application/json",
                    ok="201"),
        "get": _op("AI/ML API: fetch a generation", _BEARER, params=("generation_id",)),
    }
    tts_format = {"name": "output_format", "in": "query",
                  "schema": {"type": "string", "enum": list(formats.ELEVENLABS_TTS_FORMATS)}}
    stream_format = {**tts_format, "schema": {
        "type": "string", "enum": list(formats.ELEVENLABS_STREAM_FORMATS)}}
    for path, summary, fmt in (
            ("/v1/text-to-speech/{voice_id}", "ElevenLabs: speech (audio bytes)", tts_format),
            ("/v1/text-to-speech/{voice_id}/with-timestamps",
             "ElevenLabs: speech with character timings", tts_format),
            ("/v1/text-to-speech/{voice_id}/stream", "ElevenLabs: speech, streamed (chunked)",
             stream_format),
            ("/v1/text-to-speech/{voice_id}/stream/with-timestamps",
             "ElevenLabs: speech with timings, streamed (one JSON object per line)",
             stream_format)):
        op = _op(summary, _XI, "application/json")
        op["parameters"] = [{"name": "voice_id", "in": "path", "required": True,
                             "schema": {"type": "string"}}, fmt]
        paths[path] = {"post": op}
    sfx = _op("ElevenLabs: sound effect (audio bytes)", _XI, "application/json")
    sfx["parameters"] = [{**tts_format, "schema": {
        "type": "string", "enum": list(formats.ELEVENLABS_SFX_FORMATS)}}]
    paths["/v1/sound-generation"] = {"post": sfx}
    paths["/v1/speech-to-text"] = {"post": _op("ElevenLabs: transcribe", _XI,
                                               "multipart/form-data")}
    paths["/files/{file_id}/{name}"] = {"get": _op("a result or uploaded file", None)}
    for path, summary, method in (("/_sandbox/stats", "counters", "get"),
                                  ("/_sandbox/reset", "forget tasks, files and counters", "post"),
                                  ("/_sandbox/config", "read or change knobs", "post"),
                                  ("/_sandbox/clock", "advance sandbox time", "post"),
                                  ("/_sandbox/hosts", "where kie's upload host listens", "get"),
                                  ("/_sandbox/openapi.json", "this document", "get")):
        paths[path] = {method: _op(f"sandbox: {summary}", None)}
    return {
        "openapi": "3.0.3",
        "info": {"title": "runner sandbox", "version": __version__,
                 "description": "A local emulator of the kie.ai/apikley market API, AI/ML API "
                                "and ElevenLabs. See docs/sandbox.md."},
        "paths": paths,
        "components": {"securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "xi": {"type": "apiKey", "in": "header", "name": "xi-api-key"},
        }},
    }
