"""A narration's last step: its segments, stitched into one programme with subtitles.

The segments are ordinary TTS jobs (manifest/programmes.py gives each its neighbours as
`previous_text`/`next_text`); this is the local job that depends on all of
them. The programme is built in a worker thread (runner.audio.stitch: linear in the
number of segments), stored in the content cache like any provider result, and
its sidecar (every segment's offset and duration) and subtitles travel with the
asset, so a restore from the cache brings them back too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from runner.audio.formats import FormatSpec
from runner.audio.loudness import describe_miss
from runner.engine.context import Finish, RunContext
from runner.engine.events import EventKind
from runner.engine.retry import JobOutcome
from runner.manifest.expansion import extension_for
from runner.plan.plan import Plan, PlannedJob
from runner.store.cache import Blob, ContentCache, file_digest
from runner.store.journal import AssetRow


def _subtitles(ctx: RunContext, segments: list[PlannedJob], sidecar: dict[str, Any],
               duration_s: float, dialogue: bool) -> dict[str, str]:
    """SRT and VTT for the programme: word timings where every segment has them,
    otherwise one cue per segment placed by the sidecar."""
    from runner.text.subtitles import (
        cues_from_sidecar,
        make_cues,
        shift_words,
        to_srt,
        to_vtt,
        words_from_alignment,
    )

    per_segment: dict[str, list[Any]] = {}
    for seg in segments:
        asset = ctx.asset_of(seg.job.id)
        alignment = _alignment(asset.payload if asset else None)
        if alignment is None:
            per_segment = {}
            break
        words = words_from_alignment(alignment)
        voice_field = seg.job.model.voice_field
        speaker = seg.job.input.get(voice_field) if dialogue and voice_field else None
        if speaker:  # a dialogue's cues say who speaks (VTT voice tags)
            words = [dataclasses.replace(w, speaker=str(speaker)) for w in words]
        per_segment[seg.job.id] = words
    if per_segment:
        cues = make_cues(shift_words(per_segment, sidecar), audio_duration_s=duration_s)
    else:
        texts = {seg.job.id: str(seg.job.input.get("text", "")) for seg in segments}
        cues = cues_from_sidecar(sidecar, texts)
    return {"srt": to_srt(cues), "vtt": to_vtt(cues)}


def _alignment(payload: Any) -> dict[str, Any] | None:
    """The character alignment in a TTS result, in whichever shape the provider used."""
    if not isinstance(payload, dict):
        return None
    for candidate in (payload.get("alignment"), payload.get("normalized_alignment"),
                      (payload.get("resultObject") or {}).get("alignment")
                      if isinstance(payload.get("resultObject"), dict) else None,
                      payload.get("timestamps"), payload):
        if isinstance(candidate, dict) and "characters" in candidate \
                and "character_start_times_seconds" in candidate:
            return candidate
    return None


async def _verify(ctx: RunContext, pj: PlannedJob, checks: list[PlannedJob],
                  texts: dict[str, str], max_wer: float) -> dict[str, Any]:
    """Each segment's word error rate against its own transcript; warns above `max_wer`.

    The cache is looked up here, the transcripts read and compared in a worker
    thread: a long segment's comparison must not hold up the other jobs' requests."""
    heard: dict[str, Blob] = {}
    for check in checks:
        asset = ctx.asset_of(check.job.id)
        blob = ctx.cache.get(asset.sha256, asset.ext) if asset else None
        if blob is not None:
            heard[str(check.job.verifies)] = blob
    by_segment = await asyncio.to_thread(_error_rates, ctx.cache, heard, texts)
    above = {s: w for s, w in by_segment.items() if w > max_wer}
    if above:
        worst = ", ".join(f"{s} ({w:.0%})" for s, w in sorted(above.items()))
        ctx.emit(EventKind.WARNING, pj, message=(
            f"{len(above)} segment(s) above the word error rate {max_wer:.0%}: {worst}; "
            f"listen, and regenerate with --force {' '.join(sorted(above))}"))
    return {"max_wer": max_wer, "wer": by_segment, "above": sorted(above)}


def _error_rates(cache: ContentCache, heard: dict[str, Blob],
                 texts: dict[str, str]) -> dict[str, float]:
    """Word error rate of each segment's transcript (blob) against its text; blocking."""
    from runner.text.transcripts import parse_stt
    from runner.text.wer import wer

    return {segment_id: round(wer(texts[segment_id], parse_stt(cache.read_bytes(blob)).text), 4)
            for segment_id, blob in heard.items()}


async def stitch_job(ctx: RunContext, pj: PlannedJob, plan: Plan) -> AssetRow:
    from runner.audio.stitch import SegmentInput, StitchSettings, stitch

    job = pj.job
    spec = job.narration
    assert spec is not None
    by_id = {p.job.id: p for p in plan.jobs}
    segments = [by_id[dep] for dep in job.depends_on if by_id[dep].job.segment is not None]
    checks = [by_id[dep] for dep in job.depends_on if by_id[dep].job.verifies is not None]
    blobs = []
    for seg in segments:
        asset = ctx.asset_of(seg.job.id)
        blob = ctx.cache.get(asset.sha256, asset.ext) if asset else None
        if blob is None:
            raise Finish(JobOutcome.FAILED, f"segment {seg.job.id} is not in the cache")
        blobs.append(blob)
    # ffmpeg reads files: a packed segment is unpacked to its loose place first.
    files = await asyncio.to_thread(lambda: [ctx.cache.file_of(blob) for blob in blobs])
    inputs = [SegmentInput(seg.job.id, path, FormatSpec.parse(seg.job.format),
                           seg.job.segment.paragraph if seg.job.segment else 0)
              for seg, path in zip(segments, files, strict=True)]
    settings = StitchSettings(
        gap_ms=spec.gap_ms, paragraph_gap_ms=spec.paragraph_gap_ms,
        crossfade_ms=spec.crossfade_ms, fade_ms=spec.fade_ms, trim_silence=spec.trim_silence,
        target_lufs=spec.loudness_lufs, max_true_peak_dbtp=spec.true_peak_dbtp,
        output_format=job.format,
    )
    ext = extension_for(job.format)
    tmp = ctx.cache.new_temp(ext)
    sidecar_tmp = ctx.cache.new_temp("json")
    loop = asyncio.get_running_loop()

    def progress(done: int, total: int) -> None:
        loop.call_soon_threadsafe(lambda: ctx.emit(EventKind.STITCH_PROGRESS, pj, done=done,
                                                   total=total))

    progress(0, len(inputs))  # decoding comes first: show the bar from the start
    try:
        result = await asyncio.to_thread(stitch, inputs, tmp, settings,
                                         sidecar_path=sidecar_tmp, progress=progress)
        sha = await asyncio.to_thread(file_digest, tmp)
        blob = ctx.cache.adopt(tmp, sha, ext)
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_tmp.unlink(missing_ok=True)
    payload: dict[str, Any] = {"sidecar": result.sidecar}
    missed = describe_miss(result.sidecar["loudness"])
    if missed is not None:  # never silent: the summary and the report both say it
        ctx.emit(EventKind.WARNING, pj, message=f"loudness: {missed}")
    if checks:
        texts = {seg.job.id: str(seg.job.input.get("text", "")) for seg in segments}
        result.sidecar["verify"] = await _verify(ctx, pj, checks, texts, spec.max_wer)
    if spec.subtitles:
        payload["subtitles"] = _subtitles(ctx, segments, result.sidecar, result.info.duration_s,
                                          spec.is_dialogue)
    ctx.journal.record_asset(pj.key, sha256=blob.sha256, size=blob.size, ext=blob.ext,
                             duration_s=result.info.duration_s, credits=0.0, task_id=None,
                             result_url=None, payload=payload)
    asset = ctx.journal.asset(pj.key)
    assert asset is not None
    return asset
