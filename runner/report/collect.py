"""`runner report`: one HTML page to listen to, compare and check a build.

    build_report(manifest)                                          report/write.py
      load the pipeline, its lockfile and its journal (read-only)   collect()
      → one Take per job: its locked asset, its last outcome, whether the
        last run made it, its review decision (runner.store.reviews), its
        loudness target and what was reached, its text, subtitles or transcript
      → Cards: variants of one job side by side, a narration with its segments
      → waveforms, loudness and playable previews, cached by sha256  report/audio.py
      → the page and its parts: escaped HTML, CSS and a little script  report/page.py
      → written atomically: <output_dir>/report.html, and for a build of more
        than one page of cards, report.parts/NNNN.js beside it

The page references the build's files by relative path, so the output folder is
the report's one folder: it can be zipped, moved or opened from file:// as is.
Nothing is fetched from anywhere else, and no key can reach it (the sources
hold none, and the page is scrubbed of every configured key all the same).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.audio.loudness import describe_miss
from runner.catalog.models import Kind
from runner.manifest.load import load_pipeline
from runner.manifest.types import AudioKind, Job, JobKind, Pipeline
from runner.report.audio import AudioView, AudioViews
from runner.store.cache import file_digest
from runner.store.journal import AssetRow, JobOutcomeRow, Journal
from runner.store.layout import BuildLayout, Target, layout_for
from runner.store.lockfile import LockEntry, read_lockfile
from runner.store.reviews import Mark, read_review, review_path
from runner.text.subtitles import Cue, parse_vtt

# Outcomes that leave a job without this run's asset (runner.engine.retry.JobOutcome values).
BAD_OUTCOMES = frozenset({"failed", "uncertain", "skipped", "interrupted"})


@dataclass(slots=True)
class Take:
    """One job as the page shows it: a variant, a segment, a programme or a transcript."""

    job: Job
    entry: LockEntry | None
    outcome: JobOutcomeRow | None
    changed: bool  # its asset was made by the journal's last run
    audio: AudioView | None = None
    heard: AudioView | None = None  # a transcript's local source file, as a playable copy
    missing: bool = False  # locked, but the output file is gone
    text: str | None = None  # a transcript's plain text
    cues: list[Cue] = field(default_factory=list)
    decision: Mark | None = None  # the review decision about this take
    earlier: Mark | None = None  # one about a take the job no longer holds
    picked: bool = False  # the chosen take of a job with variants
    target: dict[str, Any] | None = None  # loudness asked and reached (stitch, postprocess)

    @property
    def target_missed(self) -> str | None:
        return describe_miss(self.target) if self.target else None

    @property
    def status(self) -> str:
        """`failed` / `uncertain` / `skipped` / `interrupted` / `ok` / `missing` / `not built`."""
        if self.outcome is not None and self.outcome.outcome in BAD_OUTCOMES:
            return self.outcome.outcome
        if self.entry is None:
            return "not built"
        return "missing" if self.missing else "ok"

    @property
    def task_id(self) -> str | None:
        if self.outcome is not None and self.outcome.outcome in BAD_OUTCOMES:
            return self.outcome.task_id or (self.entry.task_id if self.entry else None)
        return (self.entry.task_id if self.entry else None) or \
            (self.outcome.task_id if self.outcome else None)


@dataclass(slots=True)
class Card:
    """What sits together on the page: the takes of one job, or a narration."""

    base_id: str
    takes: list[Take]  # variants in order; a narration's programme
    segments: list[Take] = field(default_factory=list)
    sidecar: dict[str, Any] = field(default_factory=dict)  # narration: segment offsets

    @property
    def all_takes(self) -> list[Take]:
        return [*self.takes, *self.segments]


@dataclass(slots=True)
class Build:
    pipeline: Pipeline
    layout: BuildLayout
    cards: list[Card]
    last_run_id: int | None

    review_file: Path | None = None

    @property
    def problems(self) -> list[Take]:
        return [t for c in self.cards for t in c.all_takes if t.status in BAD_OUTCOMES]

    @property
    def missed_targets(self) -> list[Take]:
        return [t for c in self.cards for t in c.all_takes if t.target_missed]


def _journal_state(layout: BuildLayout) -> tuple[dict[str, JobOutcomeRow], dict[str, AssetRow],
                                                  dict[str, tuple[str, int, int]], int | None]:
    if not layout.journal.exists():  # never run: nothing to say about outcomes
        return {}, {}, {}, None
    with Journal(layout.journal, readonly=True) as journal:
        return (journal.latest_outcomes(), journal.all_assets(), journal.outputs(),
                journal.last_run_id())


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _cues(layout: BuildLayout, entry: LockEntry | None) -> list[Cue]:
    vtt = entry.companions.get("vtt") if entry else None
    text = _read_text(layout.output_path(vtt)) if vtt else None
    if text is None:
        return []
    try:
        return parse_vtt(text)
    except ValueError:  # a hand-edited file: the page still renders without its cues
        return []


def _local_source(job: Job, layout: BuildLayout) -> Path | None:
    """The local file a transcription job heard, when it is still there."""
    if job.audio is None or job.audio.kind is not AudioKind.FILE:
        return None
    path = Path(job.audio.value)
    return path if path.is_file() else None


def _content_sha(path: Path, output: str, entry: LockEntry,
                 outputs: dict[str, tuple[str, int, int]]) -> str:
    """The file's sha256: the journal's record when size and mtime still match (no hashing,
    as `make_plan` does), otherwise hashed, so an edited file never shows a stale waveform."""
    st = path.stat()
    known = outputs.get(output)
    if known is not None and known == (entry.sha256, st.st_size, st.st_mtime_ns):
        return entry.sha256
    return file_digest(path)


def _target(layout: BuildLayout, job: Job, entry: LockEntry,
            asset: AssetRow | None) -> dict[str, Any] | None:
    """The loudness asked and reached: a programme's sidecar, or a processed asset's payload."""
    if job.kind is JobKind.STITCH:
        sidecar = entry.companions.get("sidecar")
        text = _read_text(layout.output_path(sidecar)) if sidecar else None
        try:
            loudness = json.loads(text).get("loudness") if text else None
        except (ValueError, AttributeError):
            return None
    else:
        post = (asset.payload or {}).get("post") if asset is not None else None
        loudness = post.get("loudness") if isinstance(post, dict) else None
    return loudness if isinstance(loudness, dict) and loudness.get("target_lufs") is not None \
        else None


def collect(manifest: Path, *, sandbox: bool = False, decode: bool = True) -> Build:
    """Everything the page shows, read from the manifest, lockfile, journal and outputs.
    Without `decode` no audio file is opened (no waveforms, previews or loudness)."""
    pipeline = load_pipeline(manifest)
    layout = layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE)
    locked = read_lockfile(layout.lockfile)
    outcomes, assets, outputs, last_run = _journal_state(layout)
    review = read_review(review_path(layout))

    takes: dict[str, Take] = {}
    to_decode: list[tuple[Path, str, float | None, str | None]] = []
    heard: dict[str, Path] = {}
    for job in pipeline.jobs.values():
        entry = locked.get(job.id)
        asset = assets.get(entry.key) if entry else None
        take = Take(job, entry, outcomes.get(job.id),
                    changed=asset is not None and last_run is not None and asset.run_id == last_run)
        takes[job.id] = take
        if entry is None:
            continue
        take.decision, take.earlier = review.decision(job.id, entry), review.earlier(job.id, entry)
        pick = review.pick(job.base_id)
        take.picked = pick is not None and pick.pick == job.variant and job.variants > 1 \
            and pick.take.is_locked(entry)
        take.target = _target(layout, job, entry, asset)
        path = layout.output_path(entry.output)
        if not path.is_file():
            take.missing = True
            continue
        if job.model.kind is Kind.TRANSCRIPT:
            txt = entry.companions.get("txt")
            take.text = _read_text(layout.output_path(txt)) if txt else None
            source = _local_source(job, layout)
            if source is not None:
                heard[job.id] = source
                to_decode.append((source, file_digest(source), None,
                                  None if source.is_relative_to(layout.output_dir)
                                  else "a copy of a file outside the report's folder"))
        else:
            to_decode.append((path, _content_sha(path, entry.output, entry, outputs),
                              entry.duration_s, None))
        take.cues = _cues(layout, entry)

    views = AudioViews(layout.state_dir).views(to_decode) if decode else {}
    for take in takes.values():
        if take.entry is not None:
            take.audio = views.get(layout.output_path(take.entry.output))
        if take.job.id in heard:
            take.heard = views.get(heard[take.job.id])
    return Build(pipeline, layout, _cards(pipeline, layout, takes), last_run,
                 review_path(layout) if review.marks else None)


def _cards(pipeline: Pipeline, layout: BuildLayout, takes: dict[str, Take]) -> list[Card]:
    """Variants of one job on one card, in manifest order; segments on their narration's."""
    cards: dict[str, Card] = {}
    segments: dict[str, list[Take]] = {}
    for job in pipeline.jobs.values():
        take = takes[job.id]
        if job.segment is not None:
            segments.setdefault(job.segment.parent, []).append(take)
            continue
        card = cards.setdefault(job.base_id, Card(job.base_id, []))
        card.takes.append(take)
        if job.kind is JobKind.STITCH and take.entry is not None:
            sidecar = take.entry.companions.get("sidecar")
            text = _read_text(layout.output_path(sidecar)) if sidecar else None
            try:
                card.sidecar = json.loads(text) if text else {}
            except ValueError:
                card.sidecar = {}
    for parent, parts in segments.items():
        if parent in cards:
            cards[parent].segments = sorted(parts, key=lambda t: t.job.segment.index
                                            if t.job.segment else 0)
    for card in cards.values():
        card.takes.sort(key=lambda t: t.job.variant)
    return list(cards.values())


def secrets_of(pipeline: Pipeline) -> list[str]:
    """Configured keys, to scrub from the page should one ever slip into a message."""
    found = (account.api_key(os.environ) for account in pipeline.accounts.values())
    return sorted({k for k in found if k and len(k) >= 8}, key=len, reverse=True)
