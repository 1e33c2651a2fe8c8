"""From a stored asset to the files a person uses: outputs, companions, lock entries.

Every output is copied from the content-addressed cache (digest checked on the
way), or from the bytes the step that stored it hands along (`Produced`), into a
temp file beside it, fsynced and renamed: a crash leaves the old file or the new
one. Transcripts also get `.txt`, `.srt` and `.vtt` beside
their JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runner.catalog.models import Kind
from runner.errors import Problem, StoreError
from runner.manifest.outputs import companions
from runner.manifest.postprocess import raw_of
from runner.manifest.types import JobKind
from runner.plan.plan import Plan, PlannedJob, context_digest
from runner.store import atomic
from runner.store.cache import ContentCache, file_digest
from runner.store.journal import AssetRow, Journal
from runner.store.layout import BuildLayout
from runner.store.lockfile import LockEntry


def output_conflicts(plan: Plan, cache_dir: Path) -> list[Problem]:
    """Outputs and companions that would overwrite the build's own files (journal,
    cache, lockfile) or another file of the run, each with its file:line.

    `runner validate` refuses these too; the engine checks again before it submits
    anything, because a manifest that slips through would be found out only after
    paying, when a result is written over the journal or another job's subtitles.
    """
    layout, doc = plan.layout, plan.pipeline.document
    root = layout.output_dir
    reserved: list[tuple[PurePosixPath, str]] = []
    for path, what in ((layout.state_dir, "the build's state folder (journal and cache)"),
                       (cache_dir, "the build's cache"), (layout.lockfile, "the lockfile")):
        try:
            reserved.append((PurePosixPath(path.relative_to(root).as_posix()), what))
        except ValueError:
            continue  # not inside output_dir: no output can reach it
    problems: list[Problem] = []
    owners: dict[str, tuple[str, str]] = {}  # file -> (job id, what it is to that job)
    for p in plan.jobs:
        job = p.job
        files = [(job.output, "output"), *((name, role.removeprefix("its "))
                                          for name, role in companions(job, job.output))]
        for name, what in files:
            normal = os.path.normpath(name).replace(os.sep, "/")
            for place, place_what in reserved:
                parts = PurePosixPath(normal).parts
                if [s.casefold() for s in parts[:len(place.parts)]] == \
                        [s.casefold() for s in place.parts]:
                    problems.append(doc.problem(
                        ("jobs", job.template, "output"), f"{what} '{normal}' would be written "
                        f"into {place_what} ({place.as_posix()}); choose another path",
                        job_id=job.id))
                    break
            owner = owners.setdefault(normal, (job.id, what))
            if owner != (job.id, what):
                other = "itself" if owner[0] == job.id else f"job '{owner[0]}'"
                problems.append(doc.problem(
                    ("jobs", job.template, "output"), f"{what} '{normal}' is also written by "
                    f"{other} (as its {owner[1]}); choose another path", job_id=job.id))
    return problems


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Produced:
    """A job's asset, handed from the step that stored it to the step that writes its
    output. `data` is the asset's bytes when that step still holds them (a small result
    verified in memory, a transcript just serialised): the output is written from them,
    with no read of the cache and no second hash. Handed along, never kept: what the
    run keeps of a job (`RunContext.assets`) is its asset alone."""

    asset: AssetRow
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Written:
    """Files written for one job: (relative path, sha256, size, mtime_ns) each."""

    output: tuple[str, str, int, int]
    companions: dict[str, tuple[str, str, int, int]]  # kind -> file


async def write_outputs(pj: PlannedJob, asset: AssetRow, cache: ContentCache,
                        layout: BuildLayout, data: bytes | None = None) -> Written:
    """Write the job's output and companions; from `data`, the asset's bytes, when the
    caller holds them (`Produced.data`). An output without companions written from
    `data` is written on the event loop with its fsync in a worker thread; anything
    else entirely in a worker thread (`write_files`): fsyncs never stall the loop."""
    job = pj.job
    if data is not None and job.model.kind is not Kind.TRANSCRIPT and \
            job.kind is not JobKind.STITCH:  # (those two have companions to write)
        mtime_ns = await cache.materialize_bytes(data, layout.output_path(job.output))
        return Written((job.output, asset.sha256, len(data), mtime_ns), {})
    return await asyncio.to_thread(write_files, pj, asset, cache, layout, data)


def write_files(pj: PlannedJob, asset: AssetRow, cache: ContentCache,
                layout: BuildLayout, data: bytes | None = None) -> Written:
    """Write the job's output and companions from the cache, or from `data` (the
    asset's bytes, when the caller holds them). Pure file work (no journal): the
    engine runs it in a worker thread."""
    job = pj.job
    blob = cache.get(asset.sha256, asset.ext)
    if blob is None:
        raise StoreError(f"cache file for {job.id} ({asset.sha256[:12]}) is missing")
    dest = layout.output_path(job.output)
    mtime_ns = cache.materialize(blob, dest, data)
    paths: dict[str, Path] = {}
    if job.model.kind is Kind.TRANSCRIPT:
        # From the bytes just written (their digest known): no second hash.
        paths = write_transcript_companions(dest, dest.read_bytes() if data is None else data,
                                            asset.duration_s)
    elif job.kind is JobKind.STITCH and asset.payload:
        paths = write_programme_companions(dest, asset.payload)
    companions = {}
    for kind, path in paths.items():
        cache.discard_leftovers(path)  # of earlier writes cut short by a kill
        st = path.stat()
        companions[kind] = (path.relative_to(layout.output_dir).as_posix(), file_digest(path),
                            st.st_size, st.st_mtime_ns)
    return Written((job.output, blob.sha256, blob.size, mtime_ns), companions)


def record(pj: PlannedJob, asset: AssetRow, written: Written, journal: Journal) -> LockEntry:
    """Journal what was written (so `runner clean` knows the runner wrote it) and
    return the job's lock entry."""
    for relative, sha, size, mtime_ns in (written.output, *written.companions.values()):
        journal.record_output(relative, sha, size, mtime_ns)
    return lock_entry(pj, asset, {kind: f[0] for kind, f in written.companions.items()})


def lock_entry(pj: PlannedJob, asset: AssetRow, companions: dict[str, str]) -> LockEntry:
    job = pj.job
    return LockEntry(
        key=asset.key, provider=job.provider, model=job.model.id, output=job.output,
        sha256=asset.sha256, size=asset.size, created_at=iso(asset.created_at),
        task_id=asset.task_id, result_url=asset.result_url, duration_s=asset.duration_s,
        credits=asset.credits, variant=job.variant, companions=companions,
        context=context_digest(job), raw=raw_of(asset.payload),
    )


def write_transcript_companions(dest: Path, transcript_json: bytes,
                                audio_duration_s: float | None) -> dict[str, Path]:
    """`.txt`, `.srt`, `.vtt` beside a transcript's JSON output."""
    from runner.text.transcripts import parse_stt, write_readable

    transcript = parse_stt(transcript_json)
    return write_readable(transcript, dest.with_suffix(""), audio_duration_s=audio_duration_s)


def write_programme_companions(dest: Path, payload: dict[str, Any]) -> dict[str, Path]:
    """A stitched programme's sidecar (`<stem>.json`) and subtitles (`.srt`, `.vtt`)."""
    stem = dest.with_suffix("")
    written = {"sidecar": stem.with_name(stem.name + ".json")}
    atomic.write_text(written["sidecar"], json.dumps(payload["sidecar"], indent=2,
                                                     ensure_ascii=False) + "\n")
    for kind, text in (payload.get("subtitles") or {}).items():
        written[kind] = stem.with_name(f"{stem.name}.{kind}")
        atomic.write_text(written[kind], text)
    return written


def json_bytes(payload: Any) -> bytes:
    """A JSON result (a transcript) as the bytes stored, byte-stable for the same content."""
    text = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return text.encode("utf-8")
