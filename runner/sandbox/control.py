"""Introspection under `/_sandbox/`, a prefix no real API uses: stats, reset, config, clock,
hosts, the task log.

Tests and benchmarks drive a sandbox in another process through these. Keys and
the webhook secret can be set here but are never echoed back.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from runner.sandbox.config import KnobError
from runner.sandbox.openapi import document
from runner.sandbox.web import JSON, json_body, sandbox_of


async def stats(request: Request) -> Response:
    return JSON(sandbox_of(request).state.stats.snapshot())


async def reset(request: Request) -> Response:
    sandbox_of(request).reset()
    return JSON({"reset": True})


async def config(request: Request) -> Response:
    sandbox = sandbox_of(request)
    if request.method == "GET":
        return JSON(sandbox.config.describe())
    try:
        changes = await json_body(request)
        if not isinstance(changes, dict):
            raise KnobError("expected a JSON object of knobs")
        sandbox.config.update(changes)
    except (ValueError, KnobError) as exc:
        return JSON({"error": str(exc)}, status_code=400)
    if "seed" in changes:
        sandbox.state.rng.seed(sandbox.config.seed)
        sandbox.state.quirk_rng.seed(f"quirks:{sandbox.config.seed}")
    return JSON(sandbox.config.describe())


async def clock(request: Request) -> Response:
    """`{"advance_s": N}` moves sandbox time forward; GET tells the current time."""
    state = sandbox_of(request).state
    if request.method == "POST":
        try:
            body = await json_body(request)
            advance = float(body["advance_s"])
        except (ValueError, KeyError, TypeError):
            return JSON({"error": "expected {\"advance_s\": SECONDS}"}, status_code=400)
        if advance < 0:
            return JSON({"error": "time only moves forward"}, status_code=400)
        state.clock_offset_s += advance
    return JSON({"now_s": state.now(), "offset_s": state.clock_offset_s})


async def tasks(request: Request) -> Response:
    """The task log, as a provider's dashboard shows it: every task created, oldest
    first, with the digest of what it asked (`by_input_hash` of the stats)."""
    state = sandbox_of(request).state
    return JSON([{"task_id": t.task_id, "provider": t.provider, "model": t.model,
                  "input_hash": t.input_hash, "created_s": t.created_s}
                 for t in state.tasks.values()])
async def hosts(request: Request) -> Response:
    """Where the upload listener is, for a client that only knows the API's URL."""
    return JSON({"upload_base_url": sandbox_of(request).upload_url})


async def openapi(request: Request) -> Response:
    return JSON(document())


def routes() -> list[Route]:
    return [
        Route("/_sandbox/stats", stats, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/config", config, methods=["GET", "POST"]),
        Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
        Route("/_sandbox/tasks", tasks, methods=["GET"]),
        Route("/_sandbox/hosts", hosts, methods=["GET"]),
        Route("/_sandbox/openapi.json", openapi, methods=["GET"]),
    ]
