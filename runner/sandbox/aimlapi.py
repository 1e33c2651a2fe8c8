"""AI/ML API Stable Audio: `POST /v2/generate/audio` and `GET /v2/generate/audio?generation_id=`.

Create answers 201 `{id, status: "queued"}` (or the rendered page's `{generation_id}`:
quirk `aimlapi_generation_id`) with an id shaped `<uuid>:stable-audio`;
polls walk queued → generating → completed | error. Errors use the AI/ML body
`{message, path, requestId, statusCode, timestamp}` (validation hints go in an
extra `errors` list); running out of credits is 403, not 402. The audio is a
44.1 kHz stereo WAV of `seconds_total` seconds.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.sandbox import formats, media
from runner.sandbox.state import Refusal, Task, TaskState, canonical_json, sha256_hex
from runner.sandbox.validate import Issue, Rule, check
from runner.sandbox.web import (
    JSON,
    Dropped,
    base_url,
    bearer_key,
    json_body,
    maybe_slow,
    sandbox_of,
)

MODEL = "stable-audio"
_PATH = "/v2/generate/audio"
_RULES = {
    "model": Rule("string", required=True, enum=(MODEL,)),
    "prompt": Rule("string", required=True, min_length=1),
    "seconds_start": Rule("integer", minimum=1, maximum=47),
    "seconds_total": Rule("integer", minimum=1, maximum=47),
    "steps": Rule("integer", minimum=1, maximum=1000),
}
TOKENS_PER_STEP = 252  # "consuming a total of 252 AI/ML Tokens per step"


def error(status: int, message: str, issues: list[Issue] | None = None) -> JSON:
    body: dict[str, Any] = {
        "message": message, "path": _PATH, "requestId": str(uuid.uuid4()), "statusCode": status,
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
    if issues:
        body["errors"] = [{"path": list(i.loc), "message": i.msg, "expected": i.expected,
                           "received": i.received} for i in issues]
    return JSON(body, status_code=status)


async def create(request: Request) -> Response:
    sandbox = sandbox_of(request)
    state = sandbox.state
    key = bearer_key(request)
    if not state.key_accepted(key):
        return error(401, "Unauthorized: invalid or missing API key")
    assert key is not None
    account = state.account("aimlapi", key)
    if not state.count_request(account):
        return error(429, "Too Many Requests")
    try:
        body = await json_body(request)
    except ValueError:
        return error(400, "Body validation error! Expected a JSON object")
    if not isinstance(body, dict):
        return error(400, "Body validation error! Expected a JSON object")
    issues = check(body, _RULES)
    if issues:
        return error(400, "Body validation error!", issues)
    for fault, status, text in (("429", 429, "Too Many Requests"),
                                ("455", 503, "Service Unavailable"),
                                ("500", 500, "Internal Server Error")):
        if state.draw_fault(fault):
            return error(status, text)
    # An optional field sent as null means "not given": its default applies.
    steps = int(body.get("steps") or 100)
    total_s = int(body.get("seconds_total") or 30)
    cost = float(TOKENS_PER_STEP * steps)
    refusal = state.admit(account, cost)
    if refusal is Refusal.CONCURRENCY:
        return error(429, "Too Many Requests: concurrency limit reached")
    if refusal is Refusal.CREDITS:
        return error(403, "You've run out of credits. Please top up your balance to continue.")
    request_hash = sha256_hex(canonical_json(body))
    seed = int(sha256_hex(f"{request_hash}:{state.occurrence(account, request_hash)}")[:16], 16)
    now = state.now()
    generation_id = f"{uuid.UUID(int=seed << 64 | state.rng.getrandbits(64))}:{MODEL}"
    latency = sandbox.config.latency_for(MODEL).draw(state.rng)
    fail = ("GenerationError", "Audio generation failed") if state.draw_fault("501") else None
    recipe = media.sound_recipe("music", body["prompt"], float(total_s), seed,
                                formats.STABLE_AUDIO_FORMAT)
    name = f"{generation_id.split(':')[0].replace('-', '')[:24]}.wav"
    expires = now if state.draw_fault("expire") else (
        None if sandbox.config.result_ttl_s is None else now + latency + sandbox.config.result_ttl_s)
    stored = sandbox.media.add(media.StoredFile(
        file_id=state.new_id(), name=name, content_type="audio/wav", created_s=now,
        expires_s=expires, recipe=recipe))
    task = Task(task_id=generation_id, provider="aimlapi", account=account, model=MODEL,
                param=canonical_json(body), created_s=now, latency_s=latency, cost=cost,
                input_hash=request_hash, fail=fail,
                result={"url": f"{base_url(request)}/files/{stored.file_id}/{name}"},
                file_id=stored.file_id)
    state.add_task(task, charge=True)
    await maybe_slow(sandbox)
    if state.draw_fault("drop"):
        return Dropped()
    # The example output says {id, status}; the rendered page's sample {generation_id}.
    answer = {"generation_id": generation_id} if state.quirk("aimlapi_generation_id") else {
        "id": generation_id, "status": "queued"}
    return JSON(answer, status_code=201)


async def poll(request: Request) -> Response:
    sandbox = sandbox_of(request)
    key = bearer_key(request)
    if not sandbox.state.key_accepted(key):
        return error(401, "Unauthorized: invalid or missing API key")
    assert key is not None
    account = sandbox.state.account("aimlapi", key)
    generation_id = request.query_params.get("generation_id")
    await maybe_slow(sandbox)
    if sandbox.state.draw_fault("drop"):
        return Dropped()
    if not generation_id:
        return error(400, "Query validation error! generation_id is required")
    task = sandbox.state.tasks.get(generation_id)
    if task is None or task.account is not account:
        return error(404, "Generation not found")
    state = task.state(sandbox.state.now())
    body: dict[str, Any] = {"id": task.task_id, "status": "queued", "audio_file": None,
                            "error": None, "meta": None}
    if state is TaskState.FAIL and task.fail:
        body["status"] = "error"
        body["error"] = {"name": task.fail[0], "message": task.fail[1]}
    elif state is TaskState.SUCCESS and task.result and task.file_id:
        stored = sandbox.media.files[task.file_id]
        size = len(await sandbox.media.content(stored))
        body["status"] = "completed"
        body["audio_file"] = {"url": task.result["url"], "content_type": "application/octet-stream",
                              "file_name": stored.name, "file_size": size}
        body["meta"] = {"usage": {"credits_used": task.cost}}
    elif state in (TaskState.QUEUING, TaskState.GENERATING):
        body["status"] = "generating" if state is TaskState.GENERATING else "queued"
    return JSON(body)


def routes() -> list[Route]:
    return [Route(_PATH, create, methods=["POST"]), Route(_PATH, poll, methods=["GET"])]
