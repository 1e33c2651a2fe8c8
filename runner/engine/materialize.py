"""From a stored asset to the files a person uses: outputs, companions, lock entries.

Every output is copied from the content-addressed cache (digest checked on the
way) into a temp file beside it, fsynced and renamed: a crash leaves the old
file or the new one. Transcripts also get `.txt`, `.srt` and `.vtt` beside
their JSON.
"""

from __future__ import annotations

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
from runner.store.cache import Blob, ContentCache, file_digest
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
class Written:
    """Files written for one job: (relative path, sha256, size, mtime_ns) each."""

    output: tuple[str, str, int, int]
    companions: dict[str, tuple[str, str, int, int]]  # kind -> file


def write_files(pj: PlannedJob, asset: AssetRow, cache: ContentCache,
                layout: BuildLayout) -> Written:
    """Write the job's output and companions from the cache. Pure file work (no
    journal), so the engine runs it in a worker thread: fsyncs never stall the loop."""
    job = pj.job
    blob = cache.get(asset.sha256, asset.ext)
    if blob is None:
        raise StoreError(f"cache file for {job.id} ({asset.sha256[:12]}) is missing")
    dest = layout.output_path(job.output)
    mtime_ns = cache.materialize(blob, dest)
    paths: dict[str, Path] = {}
    if job.model.kind is Kind.TRANSCRIPT:
        # From the output just written (its digest checked on the way): no second hash.
        paths = write_transcript_companions(dest, dest.read_bytes(), asset.duration_s)
    elif job.kind is JobKind.STITCH and asset.payload:
        paths = write_programme_companions(dest, asset.payload)
    companions = {}
    for kind, path in paths.items():
        cache.discard_leftovers(path)  # of earlier writes cut short by a kill
        st = path.stat()
        companions[kind] = (path.relative_to(layout.output_dir).as_posix(), file_digest(path),
                            st.st_size, st.st_mtime_ns)
    return Written((job.output, blob.sha256, blob.size, mtime_ns), companions)


async def write_output_from_memory(pj: PlannedJob, asset: AssetRow, cache: ContentCache,
                                   layout: BuildLayout) -> Written | None:
    """`write_files` for an audio job whose bytes were just stored from memory
    (`ContentCache.take_recent`): written from those bytes, the fsync in a worker
    thread. None when this is not such a job (then use `write_files`)."""
    job = pj.job
    if job.model.kind is Kind.TRANSCRIPT or job.kind is JobKind.STITCH:
        return None  # these have companions to write
    data = cache.take_recent(asset.sha256)
    if data is None:
        return None
    mtime_ns = await cache.materialize_recent(data, layout.output_path(job.output))
    return Written((job.output, asset.sha256, len(data), mtime_ns), {})


def record(pj: PlannedJob, asset: AssetRow, written: Written, journal: Journal) -> LockEntry:
    """Journal what was written (so `runner clean` knows the runner wrote it) and
    return the job's lock entry."""
    for relative, sha, size, mtime_ns in (written.output, *written.companions.values()):
        journal.record_output(relative, sha, size, mtime_ns)
    return lock_entry(pj, asset, {kind: f[0] for kind, f in written.companions.items()})


def materialize(pj: PlannedJob, asset: AssetRow, cache: ContentCache, layout: BuildLayout,
                journal: Journal) -> LockEntry:
    """`write_files` then `record`, in the calling thread."""
    return record(pj, asset, write_files(pj, asset, cache, layout), journal)


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


async def json_blob(cache: ContentCache, payload: Any) -> Blob:
    """A JSON result (a transcript) as a cache blob, byte-stable for the same content."""
    text = json.dumps(payload, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return await cache.put_bytes(text.encode("utf-8"), "json")
