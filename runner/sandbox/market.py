"""The market jobs API of kie.ai and apikley: createTask, recordInfo, credits, callbacks.

Kept on purpose: the status rides in the body `code`, with HTTP saying 200 or
the same code (quirk `market_error_status`); createTask of the TTS model and
kie's recordInfo say `message` where everything else says `msg`; `param` and
`resultJson` are JSON strings; a task walks waiting → queuing → generating →
success | fail as sandbox time passes. Every quirk is a knob (quirks.py).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.sandbox import formats, media, speech, synth, transcribe
from runner.sandbox.state import Refusal, Task, TaskState, canonical_json, sha256_hex
from runner.sandbox.validate import Rule, check, describe
from runner.sandbox.web import (
    JSON,
    Dropped,
    Sandbox,
    base_url,
    bearer_key,
    json_body,
    maybe_slow,
    sandbox_of,
)

TTS = "elevenlabs/text-to-speech-turbo-2-5"
SFX = "elevenlabs/sound-effect-v2"
STT = "elevenlabs/speech-to-text"
_RULES: dict[str, dict[str, Rule]] = {
    TTS: {
        "text": Rule("string", required=True, min_length=1, max_length=5000),
        "voice": Rule("string"),
        "stability": Rule("number", minimum=0, maximum=1),
        "similarity_boost": Rule("number", minimum=0, maximum=1),
        "style": Rule("number", minimum=0, maximum=1),
        "speed": Rule("number", minimum=0.7, maximum=1.2),
        "timestamps": Rule("boolean"),
        "previous_text": Rule("string", max_length=5000),
        "next_text": Rule("string", max_length=5000),
        "language_code": Rule("string", max_length=500),
    },
    SFX: {
        "text": Rule("string", required=True, max_length=5000),
        "loop": Rule("boolean"),
        "duration_seconds": Rule("number", minimum=0.5, maximum=22),
        "prompt_influence": Rule("number", minimum=0, maximum=1),
        "output_format": Rule("string", enum=formats.MARKET_SFX_FORMATS),
    },
    STT: {
        "audio_url": Rule("string", required=True, min_length=1),
        "language_code": Rule("string", max_length=500),
        "tag_audio_events": Rule("boolean"),
        "diarize": Rule("boolean"),
    },
}
MODELS = tuple(_RULES)
# failCode of a failed generation: the callback example's "500", the newer schema's
# "GENERATION_FAILED", and the "" of kie's task-detail examples (quirk market_fail_fields).
_FAIL_CODES = ("500", "GENERATION_FAILED", "")
TTS_FORMAT = formats.parse_format(formats.DEFAULT_FORMAT)  # not selectable on the market


def cost_of(model: str, inputs: dict[str, Any], audio_s: float = 0.0) -> float:
    """Sandbox prices in credits (docs/sandbox.md): invented, but proportional to the work."""
    if model == TTS:
        return float(max(1, math.ceil(len(inputs["text"]) * 12 / 1000)))
    if model == SFX:
        return float(max(1, math.ceil(1.2 * audio_s)))
    return float(max(1, math.ceil(3.5 * audio_s / 60)))


def _msg_key(request: Request, model: str | None = None) -> str:
    """`message` where the docs show it (createTask of the TTS model on kie, kie's
    recordInfo), `msg` everywhere else."""
    kie = not request.url.path.startswith("/apikley")
    shows = kie and (model == TTS if model is not None else True)
    return "message" if shows and sandbox_of(request).state.quirk("market_message_key") else "msg"


def _answer(sandbox: Sandbox, code: int, message: str, key: str = "msg", data: Any = None
            ) -> JSON:
    """The market envelope. An error's HTTP status is 200 or its body code (both are
    documented: quirk `market_error_status`); the body code is what counts."""
    body: dict[str, Any] = {"code": code, key: message}
    if data is not None:
        body["data"] = data
    status = 200 if code == 200 or not sandbox.state.quirk("market_error_status") else code
    return JSON(body, status_code=status)


def unauthorized(sandbox: Sandbox, key: str = "msg") -> JSON:
    return _answer(sandbox, 401, "You do not have access permissions", key)


def provider_of(request: Request) -> str:
    return "apikley" if request.url.path.startswith("/apikley") else "kie"


async def create_task(request: Request) -> Response:
    sandbox = sandbox_of(request)
    state = sandbox.state
    key = bearer_key(request)
    if not state.key_accepted(key):
        return unauthorized(sandbox)
    assert key is not None
    account = state.account(provider_of(request), key)
    if not state.count_request(account):
        return _answer(sandbox, 429, "Rate limit exceeded: too many createTask requests, try "
                       "again later")
    try:
        body = await json_body(request)
    except ValueError:
        return _answer(sandbox, 422, "Request body is not valid JSON")
    if not isinstance(body, dict):
        return _answer(sandbox, 422, "Request body must be a JSON object")
    model = body.get("model")
    msg = _msg_key(request, model if isinstance(model, str) else None)
    if not isinstance(model, str) or not model:
        return _answer(sandbox, 422, "model is required", msg)
    if model not in _RULES:
        return _answer(sandbox, 422, f"The model {model!r} is not supported; supported "
                       f"models: {', '.join(MODELS)}", msg)
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        return _answer(sandbox, 422, "input is required and must be an object", msg)
    issues = check(inputs, _RULES[model], ("input",))
    callback = body.get("callBackUrl")
    if callback is not None and not isinstance(callback, str):
        return _answer(sandbox, 422, "callBackUrl must be a string", msg)
    if issues:
        return _answer(sandbox, 422, "; ".join(describe(i) for i in issues), msg)
    if model == TTS and inputs.get("voice") not in (None, *speech.MARKET_VOICES):
        return _answer(sandbox, 500, "This voice is not within the range of allowed options",
                       msg)
    language = inputs.get("language_code") or ""
    if model == TTS and language and not (len(language) == 2 and language.isalpha()):
        return _answer(sandbox, 422, "input.language_code: expected an ISO 639-1 code", msg)
    for code, text in (("429", "Rate limit exceeded, try again later"),
                       ("455", "Service unavailable: the system is under maintenance"),
                       ("500", "Server exception, please try again later")):
        if state.draw_fault(code):
            return _answer(sandbox, int(code), text, msg)
    # An optional field sent as null means "not given": its default applies.
    given = {name: value for name, value in inputs.items() if value is not None}
    task = await _make_task(sandbox, request, account, model, given, body)
    if isinstance(task, JSON):
        return task
    state.add_task(task, charge=True)
    if task.callback_url:
        sandbox.callbacks.schedule(task)
    await maybe_slow(sandbox)
    if state.draw_fault("drop"):
        return Dropped()
    data = {"taskId": task.task_id}
    if state.quirk("market_record_id"):
        data["recordId"] = task.task_id[5:]
    return _answer(sandbox, 200, "success", msg, data)


async def _make_task(sandbox: Sandbox, request: Request, account: Any, model: str,
                     inputs: dict[str, Any], body: dict[str, Any]) -> Task | JSON:
    """Admit (concurrency, credits), then create: nothing is counted for a refused request."""
    state = sandbox.state
    transcript: dict[str, Any] | None = None
    fail: tuple[str, str] | None = None
    if model == STT:
        transcript, audio_s, fail = await _transcribe(sandbox, inputs)
    elif model == SFX:
        audio_s = float(inputs.get("duration_seconds") or synth.derived_duration_s(inputs["text"]))
    else:
        audio_s = 0.0
    cost = cost_of(model, inputs, audio_s)
    refusal = state.admit(account, cost)
    if refusal is Refusal.CONCURRENCY:
        return _answer(sandbox, 429, "Too many running tasks for this key, try again later",
                       _msg_key(request, model))
    if refusal is Refusal.CREDITS:
        return _answer(sandbox, 402, "Credits insufficient", _msg_key(request, model))
    request_hash = sha256_hex(canonical_json({"model": model, "input": inputs}))
    seed = int(sha256_hex(f"{request_hash}:{state.occurrence(account, request_hash)}")[:16], 16)
    task_id = state.new_id("task_")
    latency = sandbox.config.latency_for(model).draw(state.rng)
    # Per-task quirks are decided once, so that every poll of a task tells the same story.
    fail_fields = state.quirk("market_fail_fields")
    if state.draw_fault("501"):
        fail = (state.quirk_rng.choice(_FAIL_CODES) if fail_fields else "500",
                "Internal server error")
    both_keys = state.quirk("market_result_object_null")
    now = state.now()
    file: media.StoredFile | None = None
    if transcript is not None:
        result = {"resultUrls": None, **transcript} if both_keys else transcript
    else:
        if model == TTS:
            utterance = speech.Utterance(inputs["text"], inputs.get("voice", "Rachel"),
                                         float(inputs.get("speed", 1.0)), language_of(inputs), seed)
            recipe, timing = await asyncio.to_thread(
                media.speech_recipe, sandbox.media.library, utterance, TTS_FORMAT)
        else:
            fmt = formats.parse_format(inputs.get("output_format", formats.DEFAULT_FORMAT))
            # Bare samples, or the same samples in a RIFF/WAVE file (not documented either
            # way for the market; a client must not wrap a WAV a second time).
            riff = fmt.codec in ("pcm", "ulaw", "alaw") and state.quirk("market_raw_as_wav")
            recipe = media.sound_recipe("sfx", inputs["text"], audio_s, seed, fmt, riff=riff)
        file = sandbox.media.add(media.StoredFile(
            file_id=state.new_id(), name=f"{task_id}.{recipe.extension}",
            content_type=recipe.content_type, created_s=now,
            expires_s=_expiry(sandbox, now + latency), recipe=recipe))
        result = {"resultUrls": [f"{base_url(request)}/files/{file.file_id}/{file.name}"]}
        if model == TTS and inputs.get("timestamps"):
            result["resultObject"] = {"alignment": speech.alignment(
                utterance.text, timing.words, timing.duration_s)}
        elif both_keys:
            result["resultObject"] = None
    return Task(task_id=task_id, provider=account.provider, account=account, model=model,
                param=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
                created_s=now, latency_s=latency, cost=cost, input_hash=request_hash,
                fail=fail, result=result, file_id=file.file_id if file else None,
                callback_url=body.get("callBackUrl") or None, empty_fail_fields=fail_fields)


def language_of(inputs: dict[str, Any]) -> str:
    return str(inputs.get("language_code") or "")


def _expiry(sandbox: Sandbox, done_s: float) -> float | None:
    if sandbox.state.draw_fault("expire"):
        return sandbox.state.now()  # already gone when fetched
    ttl = sandbox.config.result_ttl_s
    return None if ttl is None else done_s + ttl


async def _transcribe(sandbox: Sandbox, inputs: dict[str, Any]
                      ) -> tuple[dict[str, Any], float, tuple[str, str] | None]:
    from runner.sandbox.uploads import FetchError, fetch_audio

    options = transcribe.SttOptions(
        language_code=inputs.get("language_code") or "",
        tag_audio_events=inputs.get("tag_audio_events", True),
        diarize=inputs.get("diarize", True))
    try:
        data = await fetch_audio(sandbox, inputs["audio_url"])
        result = await transcript_of(sandbox, data, options)
    except FetchError as exc:
        return {}, 0.0, ("400", f"Audio file download failed: {exc}")
    except transcribe.UndecodableAudio as exc:
        return {}, 0.0, ("422", f"Unsupported audio file: {exc}")
    duration = float(result.pop("audio_duration_secs"))
    return {"resultObject": result}, duration, None


async def transcript_of(sandbox: Sandbox, data: bytes, options: transcribe.SttOptions
                        ) -> dict[str, Any]:
    marker = sandbox.media.recognise(data)
    if marker is not None:
        return transcribe.from_marker(marker, options)
    duration = await asyncio.to_thread(transcribe.decoded_duration_s, data, options.raw_pcm_16k)
    return transcribe.invented(data, duration, options)


def record(sandbox: Sandbox, task: Task) -> dict[str, Any]:
    """`data` of recordInfo (and of a callback) at the current sandbox time."""
    now = sandbox.state.now()
    state = task.state(now)
    final = state in (TaskState.SUCCESS, TaskState.FAIL)
    ok = state is TaskState.SUCCESS
    failed = final and task.fail is not None
    unset = "" if task.empty_fail_fields else None  # quirk market_fail_fields
    return {
        "taskId": task.task_id,
        "model": task.model,
        "state": state.value,
        "param": task.param,
        "resultJson": json.dumps(task.result, ensure_ascii=False, separators=(",", ":")) if ok else
        (None if final else ""),
        "failCode": task.fail[0] if failed and task.fail else unset,
        "failMsg": task.fail[1] if failed and task.fail else unset,
        "costTime": round(task.latency_s * 1000) if final else None,
        "completeTime": round(task.done_s * 1000) if final else None,
        "createTime": round(task.created_s * 1000),
        "updateTime": round(min(now, task.done_s) * 1000),
        "creditsConsumed": (task.cost if ok else 0) if final else None,
    }


def callback_body(sandbox: Sandbox, task: Task) -> dict[str, Any]:
    data = record(sandbox, task)
    ok = data["state"] == "success"
    data["consumeCredits"] = data["creditsConsumed"]
    data["remainedCredits"] = sandbox.state.balance(task.account)
    if not ok:
        data.pop("resultJson")
    return {"code": 200 if ok else 501, "data": data,
            "msg": "Playground task completed successfully." if ok else "Playground task failed."}


async def record_info(request: Request) -> Response:
    sandbox = sandbox_of(request)
    msg = _msg_key(request)
    key = bearer_key(request)
    if not sandbox.state.key_accepted(key):
        return unauthorized(sandbox, msg)
    assert key is not None
    account = sandbox.state.account(provider_of(request), key)
    task_id = request.query_params.get("taskId")
    await maybe_slow(sandbox)
    if sandbox.state.draw_fault("drop"):
        return Dropped()
    if not task_id:
        return _answer(sandbox, 422, "taskId is required", msg)
    task = sandbox.state.tasks.get(task_id)
    if task is None or task.account is not account:
        return _answer(sandbox, 404, "Task not found", msg)
    if sandbox.state.now() < task.created_s + sandbox.config.invisible_s:
        # Created, not visible yet: the market's answer (knob `invisible_s`; not a quirk
        # on by default, as most tests and clients read a new task once).
        if sandbox.config.invisible_answer == "null":
            return JSON({"code": 200, msg: "success", "data": None})
        return _answer(sandbox, 422, "recordInfo is null", msg)
    return _answer(sandbox, 200, "success", msg, record(sandbox, task))


async def credit(request: Request) -> Response:
    sandbox = sandbox_of(request)
    key = bearer_key(request)
    if not sandbox.state.key_accepted(key):
        return unauthorized(sandbox)
    assert key is not None
    balance = sandbox.state.balance(sandbox.state.account(provider_of(request), key))
    # Unlimited balances still answer a number, as the real endpoint always does.
    return _answer(sandbox, 200, "success", data=1_000_000_000 if balance is None else balance)


async def download_url(request: Request) -> Response:
    """`POST /api/v1/common/download-url`: a 20-minute link for a file this service made."""
    sandbox = sandbox_of(request)
    if not sandbox.state.key_accepted(bearer_key(request)):
        return unauthorized(sandbox)
    try:
        body = await json_body(request)
        url = body["url"]
    except (ValueError, KeyError, TypeError):
        return _answer(sandbox, 422, "url is required")
    from runner.sandbox.uploads import own_file

    stored = own_file(sandbox, url) if isinstance(url, str) else None
    if stored is None:
        return _answer(sandbox, 422, "Only files generated by this service are supported")
    return _answer(sandbox, 200, "success", data=f"{base_url(request)}/files/{stored.file_id}/"
                   f"{quote(stored.name)}?expires={int(sandbox.state.now() + 1200)}")


def routes(prefix: str) -> list[Route]:
    return [
        Route(f"{prefix}/api/v1/jobs/createTask", create_task, methods=["POST"]),
        Route(f"{prefix}/api/v1/jobs/recordInfo", record_info, methods=["GET"]),
        Route(f"{prefix}/api/v1/chat/credit", credit, methods=["GET"]),
        Route(f"{prefix}/api/v1/common/download-url", download_url, methods=["POST"]),
    ]
