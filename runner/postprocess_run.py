"""Running a job's post-processing: the provider's take in, the asset out.

    produce_processed(ctx, pj, generate)       the engine's step for a job with `post`
      the provider's result under the raw key: from the journal and cache when it
      is there (a changed step: no request), else `generate` (the usual request,
      journaled under the raw key, so a resumed run finds its task)
      → process(): decode → trim → loop crossfade → fades → normalise → encode
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner import atomic
from runner.audiodecode import decode_pcm
from runner.audioformat import FormatSpec, sniff, verify_audio
from runner.errors import AudioError
from runner.events import EventKind
from runner.execute import Finish, RunContext
from runner.expand import extension_for
from runner.loudness import LoudnessResult, encode
from runner.pcm import fade_in, fade_out, frames_of, from_le, loop_crossfade, to_le, trim_silence
from runner.plan import PlannedJob
from runner.postprocess import PostProcess
from runner.retry import JobOutcome
from runner.store.cache import file_digest
from runner.store.journal import AssetRow

# Encoders of `convert.format`: fixed settings, so a take always processes to the same bytes.
_ENCODERS = {
    "ogg": (["-c:a", "libvorbis", "-q:a", "6", "-f", "ogg"], "ogg-vorbis", True),
    "wav": (["-c:a", "pcm_s16le", "-f", "wav"], "wav", False),
    "mp3": (["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"], "mp3", True),
}


@dataclass(frozen=True, slots=True)
class Processed:
    duration_s: float
    sample_rate: int
    channels: int
    trimmed_ms: tuple[float, float]  # silence cut at the start and at the end
    loudness: LoudnessResult | None

    def to_json(self, post: PostProcess) -> dict[str, Any]:
        return {"steps": post.describe(), "duration_s": round(self.duration_s, 3),
                "sample_rate": self.sample_rate, "channels": self.channels,
                "trimmed_ms": list(self.trimmed_ms),
                "loudness": self.loudness.to_json() if self.loudness else None}


def _output_args(post: PostProcess, spec: FormatSpec | None, rate: int) -> tuple[list[str],
                                                                                   str, bool]:
    """Encoder arguments, the container `sniff` must then find, and whether it is lossy."""
    if post.convert.format is not None:
        args, kind, lossy = _ENCODERS[post.convert.format]
        return [*args[:-2], "-ar", str(rate), *args[-2:]], kind, lossy
    if spec is None or spec.raw or spec.name == "wav":
        # Bare provider samples (pcm, G.711) are written as 16-bit WAV once processed.
        return ["-c:a", "pcm_s16le", "-ar", str(rate), "-f", "wav"], "wav", False
    kind = "ogg-opus" if spec.extension == ".opus" else "mp3"
    return spec.ffmpeg_output_args(rate), kind, True


def process(source: Path, spec: FormatSpec | None, post: PostProcess,
            destination: Path) -> Processed:
    """Apply `post` to the audio file `source`, writing `destination` (atomically)."""
    info = verify_audio(source, spec) if spec is not None else None
    convert = post.convert
    rate = convert.sample_rate or (spec.sample_rate if spec and spec.sample_rate else None) \
        or (info.sample_rate if info else 44100)
    channels = convert.channels or (info.channels if info else 1)
    if convert.format is None and spec is not None and spec.raw:
        channels = 1
    pcm = decode_pcm(source, spec, sample_rate=rate, channels=channels)
    samples = from_le(pcm.data)
    total = len(samples) // channels
    cut_start = 0
    if post.trim_silence:
        samples, cut_start = trim_silence(samples, channels, rate, post.silence_threshold_dbfs,
                                          post.keep_silence_ms)
    cut_end = total - cut_start - len(samples) // channels
    if post.loop_crossfade_ms:
        samples = loop_crossfade(samples, channels, frames_of(post.loop_crossfade_ms, rate))
    if post.fade_in_ms:
        fade_in(samples, channels, frames_of(post.fade_in_ms, rate))
    if post.fade_out_ms:
        fade_out(samples, channels, frames_of(post.fade_out_ms, rate))
    args, kind, lossy = _output_args(post, spec, rate)
    scratch = atomic.temp_beside(destination, ".pcm")
    try:
        scratch.write_bytes(to_le(samples))
        with atomic.staged(destination, suffix=".part") as tmp:
            loudness = encode(scratch, rate, channels, tmp, args, post.normalize, lossy=lossy)
            found = sniff(tmp)
            if found.kind != kind:
                raise AudioError(f"{destination.name}: post-processing wrote "
                                 f"{found.description}, not {kind}")
    finally:
        scratch.unlink(missing_ok=True)
    return Processed(len(samples) // channels / rate, rate, channels,
                     (round(cut_start * 1000 / rate, 3), round(cut_end * 1000 / rate, 3)),
                     loudness)


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
