"""ElevenLabs direct: text-to-speech (bytes, with-timestamps, and both streamed), sound
generation, speech-to-text.

Synchronous like the real API: the answer comes after the model's latency, with
the headers the real API sends (`request-id`, a distinct `history-item-id`,
`character-cost` with Flash/Turbo's half-price characters, the concurrency pair).
Auth is the `xi-api-key` header; bodies that do not validate get FastAPI's 422
`{"detail": [{loc, msg, type}]}`, business errors the `{"detail": {type, code,
message, status, request_id}}` shape (a concurrency 429 sometimes the legacy
`{"detail": {"status": "too_many_concurrent_requests"}}`: quirk
`elevenlabs_legacy_429`). Concurrency follows the configured plan (docs/providers.md,
"ElevenLabs: concurrency by plan").
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
import secrets
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from runner.sandbox import formats, media, speech, streaming, synth, transcribe
from runner.sandbox.state import Account, Refusal, canonical_json, sha256_hex
from runner.sandbox.validate import Issue, Rule, check
from runner.sandbox.web import JSON, Dropped, Sandbox, json_body, maybe_slow, sandbox_of

_TTS_LIMITS = {"eleven_turbo_v2_5": 40000, "eleven_flash_v2_5": 40000, "eleven_turbo_v2": 30000,
               "eleven_flash_v2": 30000, "eleven_multilingual_v2": 10000, "eleven_v3": 5000,
               "eleven_monolingual_v1": 10000, "eleven_multilingual_v1": 10000}
# Flash and Turbo cost half a credit per character and have twice the concurrency
# (docs/providers.md, "Prices" and "ElevenLabs: concurrency by plan").
_HALF_PRICE = frozenset({"eleven_turbo_v2_5", "eleven_flash_v2_5", "eleven_turbo_v2",
                         "eleven_flash_v2"})
_SFX_MODELS = ("eleven_text_to_sound_v2", "eleven_text_to_sound_v3", "eleven_text_to_sound_v1")
_STT_MODELS = ("scribe_v1", "scribe_v2", "scribe_v2_medical", "scribe_v3",
               "scribe_v1_experimental")
_VOICE_ID = re.compile(r"^[A-Za-z0-9]{20}$")
_STITCH_MAX_AGE_S = 2 * 3600
_TTS_RULES = {
    "text": Rule("string", required=True), "model_id": Rule("string"),
    "language_code": Rule("string", nullable=True), "voice_settings": Rule("object", nullable=True),
    "seed": Rule("integer", minimum=0, maximum=4294967295, nullable=True),
    "previous_text": Rule("string", nullable=True), "next_text": Rule("string", nullable=True),
    "previous_request_ids": Rule("array", nullable=True),
    "next_request_ids": Rule("array", nullable=True),
    "pronunciation_dictionary_locators": Rule("array", nullable=True),
    "apply_text_normalization": Rule("string", enum=("auto", "on", "off")),
}
_SETTINGS_RULES = {
    "stability": Rule("number", minimum=0, maximum=1, nullable=True),
    "similarity_boost": Rule("number", minimum=0, maximum=1, nullable=True),
    "style": Rule("number", minimum=0, maximum=1, nullable=True),
    "speed": Rule("number", minimum=0.7, maximum=1.2, nullable=True),
    "use_speaker_boost": Rule("boolean", nullable=True),
}
_SFX_RULES = {
    "text": Rule("string", required=True, min_length=1),
    "duration_seconds": Rule("number", minimum=0.5, maximum=30, nullable=True),
    "prompt_influence": Rule("number", minimum=0, maximum=1, nullable=True),
    "loop": Rule("boolean", nullable=True),
    "model_id": Rule("string", enum=_SFX_MODELS, nullable=True),
}


_ERROR_TYPES = {400: "validation_error", 401: "authentication_error", 429: "rate_limit_error",
                500: "service_error", 503: "service_error"}


def detail(status: int, code: str, message: str, **extra: Any) -> JSON:
    """The current error body: `type`, `code`, `message`, the legacy `status`, a request id."""
    body = {"type": _ERROR_TYPES.get(status, "error"), "code": code, "message": message,
            "status": code, "request_id": secrets.token_hex(16), **extra}
    return JSON({"detail": body}, status_code=status)


def unprocessable(issues: list[Issue]) -> JSON:
    return JSON({"detail": [{"loc": list(i.loc), "msg": i.msg, "type": i.type} for i in issues]},
                status_code=422)


class _Refused(Exception):
    def __init__(self, response: JSON) -> None:
        self.response = response


async def _begin(request: Request, fmt_choices: tuple[str, ...] | None
                 ) -> tuple[Sandbox, Account, formats.AudioFormat | None]:
    """Auth, rate window, output format; raises _Refused with the answer otherwise."""
    sandbox = sandbox_of(request)
    key = request.headers.get("xi-api-key")
    if not sandbox.state.key_accepted(key):
        raise _Refused(detail(401, "invalid_api_key", "Invalid API key"))
    assert key is not None
    account = sandbox.state.account("elevenlabs", key)
    if not sandbox.state.count_request(account):
        raise _Refused(detail(429, "rate_limit_exceeded", "Too many requests, slow down."))
    fmt = None
    if fmt_choices is not None:
        name = request.query_params.get("output_format", formats.DEFAULT_FORMAT)
        if name not in fmt_choices:
            raise _Refused(unprocessable([Issue(("query", "output_format"),
                                                f"value is not a valid enumeration member; "
                                                f"permitted: {', '.join(fmt_choices)}",
                                                "type_error.enum")]))
        fmt = formats.parse_format(name)
    return sandbox, account, fmt


def _flash_or_turbo(model_id: str | None) -> bool:
    return model_id in _HALF_PRICE


def _faults(sandbox: Sandbox) -> None:
    for fault, status, code in (("429", 429, "rate_limit_exceeded"), ("455", 503, "system_busy"),
                                ("500", 500, "internal_server_error")):
        if sandbox.state.draw_fault(fault):
            raise _Refused(detail(status, code, "Sandbox fault injected"))


def _admit(sandbox: Sandbox, account: Account, cost: float, limit: int | None) -> None:
    refusal = sandbox.state.admit(account, cost, max_concurrent=limit)
    if refusal is Refusal.CONCURRENCY:
        if sandbox.state.quirk("elevenlabs_legacy_429"):  # "queue, do not back off"
            raise _Refused(JSON({"detail": {"status": "too_many_concurrent_requests",
                                            "message": "Too many concurrent requests"}},
                                status_code=429))
        raise _Refused(detail(429, "concurrent_limit_exceeded", "Too many concurrent "
                              f"requests: your plan allows {limit} at once"))
    if refusal is Refusal.CREDITS:
        left = max(0, math.floor(sandbox.state.balance(account) or 0))
        raise _Refused(detail(401, "quota_exceeded", f"This request exceeds your quota. You "
                              f"have {left} credits remaining, while {math.ceil(cost)} credits "
                              "are required for this request."))


async def _generate(sandbox: Sandbox, account: Account, model: str, body_hash: str, cost: float,
                    limit: int | None) -> tuple[str, dict[str, str]]:
    """Hold the request for the model's latency, counted as in flight; bill it."""
    state = sandbox.state
    request_id = state.new_id()
    account.in_flight += 1
    try:
        fail = state.draw_fault("501")
        state.record_generation(account, model, body_hash, state.now(), 0.0 if fail else cost)
        await sandbox.config.sleep(sandbox.config.latency_for(model).draw(state.rng))
        in_flight = account.in_flight
    finally:
        account.in_flight -= 1
    if fail:
        raise _Refused(detail(500, "internal_server_error", "Generation failed"))
    state.request_ids[request_id] = state.now()
    # The history item is another record than the request: a client that stitched with
    # it instead of request-id would be refused (400 invalid_request_id).
    headers = {"request-id": request_id, "history-item-id": state.new_id(),
               "character-cost": str(int(cost)), "current-concurrent-requests": str(in_flight),
               "x-region": "sandbox"}
    if limit is not None:
        headers["maximum-concurrent-requests"] = str(limit)
    return request_id, headers


async def _deliver(sandbox: Sandbox, response: Response) -> Response:
    await maybe_slow(sandbox)
    return Dropped() if sandbox.state.draw_fault("drop") else response


async def text_to_speech(request: Request) -> Response:
    """All four TTS endpoints: convert, with-timestamps, stream, stream/with-timestamps."""
    path = request.url.path
    try:
        return await _tts(request, with_timestamps=path.endswith("/with-timestamps"),
                          streamed="/stream" in path)
    except _Refused as refused:
        return refused.response


def _object(body: dict[str, Any], name: str) -> dict[str, Any]:
    """A nested object of the body, or {} when it is absent or not an object (the type
    check reports the latter)."""
    value = body.get(name)
    return value if isinstance(value, dict) else {}


async def _tts(request: Request, *, with_timestamps: bool, streamed: bool) -> Response:
    sandbox, account, fmt = await _begin(request, formats.ELEVENLABS_STREAM_FORMATS if streamed
                                         else formats.ELEVENLABS_TTS_FORMATS)
    assert fmt is not None
    body = await _json_object(request)
    issues = check(body, _TTS_RULES, ("body",))
    settings = _object(body, "voice_settings")
    issues += check(settings, _SETTINGS_RULES, ("body", "voice_settings"))
    for field in ("previous_request_ids", "next_request_ids"):
        ids = body.get(field)
        if isinstance(ids, list) and len(ids) > 3:
            issues.append(Issue(("body", field), "ensure this value has at most 3 items",
                                "value_error.list.max_items"))
    if issues:
        raise _Refused(unprocessable(issues))
    voice_id = request.path_params["voice_id"]
    if voice_id not in speech.VOICE_IDS.values() and not _VOICE_ID.match(voice_id):
        raise _Refused(detail(400, "voice_not_found", f"A voice with voice_id {voice_id!r} "
                              "was not found."))
    model_id = body.get("model_id") or "eleven_multilingual_v2"
    if model_id not in _TTS_LIMITS:
        raise _Refused(detail(400, "model_not_found", f"Model {model_id!r} does not exist."))
    text: str = body["text"]
    if len(text) > _TTS_LIMITS[model_id]:
        raise _Refused(detail(400, "max_character_limit_exceeded", f"Text is too long: at most "
                              f"{_TTS_LIMITS[model_id]} characters for {model_id}."))
    _check_request_ids(sandbox, body)
    for field in ("previous_request_ids", "next_request_ids"):
        if body.get(field):
            sandbox.state.stats.stitched[field] += 1
    _faults(sandbox)
    half = _flash_or_turbo(model_id)
    cost = float(math.ceil(len(text) / 2) if half else len(text))
    limit = sandbox.config.elevenlabs_limit(half)
    _admit(sandbox, account, cost, limit)
    request_hash = sha256_hex(canonical_json({"voice_id": voice_id, "output_format": fmt.name,
                                              "timestamps": with_timestamps, "body": body}))
    seed = _seed(sandbox, account, request_hash, body.get("seed"))
    utterance = speech.Utterance(text, voice_id, float(settings.get("speed") or 1.0),
                                 str(body.get("language_code") or ""), seed)
    model = "text-to-speech-with-timestamps" if with_timestamps else "text-to-speech"
    _, headers = await _generate(sandbox, account, model, request_hash, cost, limit)
    recipe, timing = await asyncio.to_thread(media.speech_recipe, sandbox.media.library,
                                             utterance, fmt)
    audio = await sandbox.media.render(recipe)
    if not with_timestamps:
        if streamed:
            return await _deliver(sandbox, StreamingResponse(
                streaming.pieces(audio), media_type=fmt.content_type, headers=headers))
        return await _deliver(sandbox, Response(audio, media_type=fmt.content_type,
                                                headers=headers))
    normalized = " ".join(text.split())
    norm_timing = speech.timing(sandbox.media.library,
                                speech.Utterance(normalized, voice_id, utterance.speed,
                                                 utterance.language, seed), fmt)
    alignment = speech.alignment(text, timing.words, timing.duration_s)
    norm_alignment = speech.alignment(normalized, norm_timing.words, norm_timing.duration_s)
    if streamed:
        return await _deliver(sandbox, StreamingResponse(
            streaming.timestamped_lines(audio, alignment, norm_alignment), media_type="application/json",
            headers=headers))
    return await _deliver(sandbox, JSON({
        "audio_base64": base64.b64encode(audio).decode("ascii"),
        "alignment": alignment, "normalized_alignment": norm_alignment,
    }, headers=headers))


def _check_request_ids(sandbox: Sandbox, body: dict[str, Any]) -> None:
    now = sandbox.state.now()
    for field in ("previous_request_ids", "next_request_ids"):
        for request_id in body.get(field) or []:
            made = sandbox.state.request_ids.get(request_id) if isinstance(request_id, str) else None
            if made is None or now - made > _STITCH_MAX_AGE_S:
                raise _Refused(detail(400, "invalid_request_id", f"{field}: request id "
                                      f"{request_id!r} is unknown or older than 2 hours"))


def _seed(sandbox: Sandbox, account: Account, request_hash: str, explicit: Any) -> int:
    if isinstance(explicit, int) and not isinstance(explicit, bool):
        return int(sha256_hex(f"{request_hash}:seed")[:16], 16)  # the request alone decides
    index = sandbox.state.occurrence(account, request_hash)
    return int(sha256_hex(f"{request_hash}:{index}")[:16], 16)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = await json_body(request)
    except ValueError as exc:
        raise _Refused(unprocessable([Issue(("body", 0), f"JSON decode error: {exc}",
                                            "value_error.jsondecode")])) from exc
    if not isinstance(body, dict):
        raise _Refused(unprocessable([Issue(("body",), "value is not a valid dict",
                                            "type_error.dict")]))
    return body


async def sound_generation(request: Request) -> Response:
    try:
        sandbox, account, fmt = await _begin(request, formats.ELEVENLABS_SFX_FORMATS)
        assert fmt is not None
        body = await _json_object(request)
        issues = check(body, _SFX_RULES, ("body",))
        if issues:
            raise _Refused(unprocessable(issues))
        _faults(sandbox)
        chosen = body.get("duration_seconds")
        cost = 100.0 if chosen is None else float(math.ceil(25 * chosen))
        limit = sandbox.config.elevenlabs_limit(False)
        _admit(sandbox, account, cost, limit)
        request_hash = sha256_hex(canonical_json({"output_format": fmt.name, "body": body}))
        seed = _seed(sandbox, account, request_hash, None)
        _, headers = await _generate(sandbox, account, "sound-generation", request_hash, cost,
                                     limit)
        duration = float(chosen if chosen is not None else synth.derived_duration_s(body["text"]))
        recipe = media.sound_recipe("sfx", body["text"], duration, seed, fmt)
        audio = await sandbox.media.render(recipe)
        return await _deliver(sandbox, Response(audio, media_type=fmt.content_type,
                                                headers=headers))
    except _Refused as refused:
        return refused.response


def _flag(value: Any, default: bool) -> bool:
    return default if value in (None, "") else str(value).lower() in ("true", "1", "yes")


async def speech_to_text(request: Request) -> Response:
    from runner.sandbox.market import transcript_of
    from runner.sandbox.uploads import FetchError, fetch_audio

    try:
        sandbox, account, _ = await _begin(request, None)
        form = await request.form(max_part_size=200 * 1024 * 1024)
        issues: list[Issue] = []
        model_id = form.get("model_id")
        if not isinstance(model_id, str) or not model_id:
            issues.append(Issue(("body", "model_id"), "field required", "value_error.missing"))
        elif model_id not in _STT_MODELS:
            issues.append(Issue(("body", "model_id"), "value is not a valid enumeration member; "
                                f"permitted: {', '.join(_STT_MODELS)}", "type_error.enum"))
        granularity = form.get("timestamps_granularity") or "word"
        if granularity not in ("none", "word", "character"):
            issues.append(Issue(("body", "timestamps_granularity"), "value is not a valid "
                                "enumeration member; permitted: 'none', 'word', 'character'",
                                "type_error.enum"))
        speakers = form.get("num_speakers")
        if speakers not in (None, "") and not (str(speakers).isdigit()
                                               and 1 <= int(str(speakers)) <= 32):
            issues.append(Issue(("body", "num_speakers"), "ensure this value is between 1 and 32",
                                "value_error.number.not_le"))
        if issues:
            raise _Refused(unprocessable(issues))
        upload = form.get("file")
        url = form.get("cloud_storage_url") or form.get("source_url")
        if (upload is None) == (not url):
            raise _Refused(detail(400, "invalid_parameters", "Provide exactly one of file, "
                                  "cloud_storage_url or source_url.", type="validation_error",
                                  param="file"))
        _faults(sandbox)
        if isinstance(upload, UploadFile):
            data = await upload.read()
        else:
            try:
                data = await fetch_audio(sandbox, str(url))
            except FetchError as exc:
                raise _Refused(detail(400, "invalid_parameters", f"Could not fetch the audio: "
                                      f"{exc}", param="cloud_storage_url")) from exc
        options = transcribe.SttOptions(
            language_code=str(form.get("language_code") or ""),
            tag_audio_events=_flag(form.get("tag_audio_events"), True),
            diarize=_flag(form.get("diarize"), False), granularity=str(granularity),
            num_speakers=int(str(speakers)) if speakers not in (None, "") else None,
            raw_pcm_16k=form.get("file_format") == "pcm_s16le_16")
        try:
            result = await transcript_of(sandbox, data, options)
        except transcribe.UndecodableAudio as exc:
            raise _Refused(detail(400, "invalid_content", str(exc))) from exc
        cost = float(max(1, math.ceil(result["audio_duration_secs"])))
        limit = sandbox.config.elevenlabs_limit(False)
        _admit(sandbox, account, cost, limit)
        request_hash = sha256_hex(data)
        request_id, headers = await _generate(sandbox, account, "speech-to-text", request_hash,
                                              cost, limit)
        result["transcription_id"] = request_id
        return await _deliver(sandbox, JSON(result, headers=headers))
    except _Refused as refused:
        return refused.response


def routes() -> list[Route]:
    return [
        Route("/v1/text-to-speech/{voice_id}", text_to_speech, methods=["POST"]),
        Route("/v1/text-to-speech/{voice_id}/with-timestamps", text_to_speech, methods=["POST"]),
        Route("/v1/text-to-speech/{voice_id}/stream", text_to_speech, methods=["POST"]),
        Route("/v1/text-to-speech/{voice_id}/stream/with-timestamps", text_to_speech,
              methods=["POST"]),
        Route("/v1/sound-generation", sound_generation, methods=["POST"]),
        Route("/v1/speech-to-text", speech_to_text, methods=["POST"]),
    ]
