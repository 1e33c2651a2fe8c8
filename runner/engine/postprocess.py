"""Running a job's post-processing: the provider's take in, the asset out.

    produce_processed(ctx, pj, generate)       the engine's step for a job with `post`
      the provider's result under the raw key: from the journal and cache when it
      is there (a changed step: no request), else `generate` (the usual request,
      journaled under the raw key, so a resumed run finds its task)
      → runner.audio.process.process(): decode → trim → loop crossfade → fades →
        normalise → encode
      → the processed file in the cache, recorded under the job's own key, with the
        raw take, the steps and the loudness reached in its payload

The raw result stays in the cache (`runner clean` keeps it while the job exists),
and the processed file is the output. A loudness target that is missed is a
warning of the run, and the report shows it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from runner.audio.formats import FormatSpec
from runner.audio.process import process
from runner.engine.context import Finish, RunContext
from runner.engine.events import EventKind
from runner.engine.retry import JobOutcome
from runner.errors import AudioError
from runner.manifest.expansion import extension_for
from runner.plan.plan import PlannedJob
from runner.store.cache import file_digest
from runner.store.journal import AssetRow

# Raw results being made in this process, by (run, raw key): two jobs that ask the same
# request with different steps share one request, as identical jobs do in the engine.
_MAKING: dict[tuple[int, str], asyncio.Future[AssetRow]] = {}


async def _raw_take(ctx: RunContext, pj: PlannedJob,
                    generate: Callable[[PlannedJob], Awaitable[AssetRow]]) -> AssetRow:
    assert pj.raw_key is not None
    if not pj.state.new_take:
        asset = ctx.journal.asset(pj.raw_key) or _adopt_locked_raw(ctx, pj)
        if asset is not None and ctx.cache.get(asset.sha256, asset.ext) is not None:
            return asset  # a step changed, or the output was lost: nothing is bought
    slot = (id(ctx), pj.raw_key)
    if slot in _MAKING and not pj.state.new_take:
        return await asyncio.shield(_MAKING[slot])
    future: asyncio.Future[AssetRow] = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    _MAKING[slot] = future
    try:
        asset = await generate(dataclasses.replace(pj, key=pj.raw_key))
    except BaseException as error:
        future.set_exception(error if isinstance(error, Finish) else Finish(
            JobOutcome.FAILED, str(error) or type(error).__name__))
        raise
    else:
        future.set_result(asset)
    finally:
        _MAKING.pop(slot, None)
    return asset


def _adopt_locked_raw(ctx: RunContext, pj: PlannedJob) -> AssetRow | None:
    """The lockfile names this take's raw result and the cache holds it (a shared cache,
    or a journal lost): record it instead of buying it again."""
    entry = pj.locked
    raw = entry.raw if entry is not None else None
    if entry is None or raw is None or raw.get("key") != pj.raw_key:
        return None
    ext = extension_for(pj.job.format)
    blob = ctx.cache.get(raw["sha256"], ext)
    if blob is None:
        return None
    return ctx.journal.record_asset(raw["key"], sha256=blob.sha256, size=blob.size, ext=ext,
                                    duration_s=None, credits=entry.credits, task_id=entry.task_id,
                                    result_url=entry.result_url)


async def produce_processed(ctx: RunContext, pj: PlannedJob,
                            generate: Callable[[PlannedJob], Awaitable[AssetRow]]) -> AssetRow:
    """The engine's step for a job with post-processing: see the module docstring."""
    post = pj.job.post
    assert post is not None and pj.raw_key is not None
    raw = await _raw_take(ctx, pj, generate)
    blob = ctx.cache.get(raw.sha256, raw.ext)
    if blob is None:
        raise Finish(JobOutcome.FAILED, f"the provider's result ({raw.sha256[:12]}) is not in "
                                        "the cache")
    source = await asyncio.to_thread(ctx.cache.file_of, blob)
    spec = FormatSpec.parse(pj.job.format)
    ext = pj.job.output.rsplit(".", 1)[-1] if "." in pj.job.output else \
        post.extension(extension_for(pj.job.format))
    tmp = ctx.cache.new_temp(ext)
    try:
        try:
            done = await asyncio.to_thread(process, source, spec, post, tmp)
        except AudioError as error:
            raise Finish(JobOutcome.FAILED, f"post-processing: {error}", raw.task_id) from error
        sha = await asyncio.to_thread(file_digest, tmp)
        stored = ctx.cache.adopt(tmp, sha, ext)
    finally:
        tmp.unlink(missing_ok=True)
    if done.loudness is not None and not done.loudness.met:
        ctx.emit(EventKind.WARNING, pj, message=f"loudness: {done.loudness.problem}")
    payload: dict[str, Any] = {"raw": {"key": pj.raw_key, "sha256": raw.sha256, "ext": raw.ext},
                               "post": done.to_json(post)}
    if raw.payload is not None:
        payload["provider"] = raw.payload
    return ctx.journal.record_asset(
        pj.key, sha256=stored.sha256, size=stored.size, ext=stored.ext,
        duration_s=done.duration_s, credits=raw.credits, task_id=raw.task_id,
        result_url=raw.result_url, payload=payload)
