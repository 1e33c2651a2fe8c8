"""What `runner review` serves: one build's takes, their details and audio, and decisions.

The session reads the manifest once, and the lockfile, journal and review file
whenever the list is asked for (a run may finish while a person listens). It
never writes anything but the review file (and, for jobs that declare
`approved:`, the exported take): decisions go through `runner.store.reviews.record`,
one atomic write each, serialised by a lock. Waveforms and loudness are
measured only when asked for, file by file (runner.report.audio, cached by
content), so a 10,000-asset build opens at once.

Everything here is plain, blocking Python: the web app (runner/report/review_app.py)
runs it in worker threads, and tests call it directly.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import UsageError
from runner.manifest.load import load_pipeline
from runner.manifest.types import Job, JobKind
from runner.plan.export import export_build
from runner.report.audio import AudioView, AudioViews
from runner.report.collect import BAD_OUTCOMES
from runner.report.page import prompt_of
from runner.store.cache import file_digest
from runner.store.journal import AssetRow, JobOutcomeRow, Journal
from runner.store.layout import Target, layout_for
from runner.store.lockfile import LockEntry, read_lockfile
from runner.store.reviews import (
    Decision,
    Mark,
    Review,
    Take,
    now,
    read_review,
    record,
    review_path,
    take_of,
)
from runner.store.reviews import reviewer as default_reviewer

PROMPT_CHARS = 400  # of a prompt in the list; the detail has all of it
KIND = {"sound_effect": "sound effect", "speech": "speech", "music": "music"}


def reviewable(job: Job) -> bool:
    """Jobs whose audio a person judges: assets, programmes and their segments."""
    return job.model.makes_audio and job.verifies is None


def kind_of(job: Job) -> str:
    if job.kind is JobKind.STITCH:
        return "dialogue" if job.narration is not None and job.narration.is_dialogue \
            else "narration"
    if job.segment is not None:
        return "segment"
    return KIND.get(job.model.kind.value, job.model.kind.value)


def voices_of(jobs: Iterable[Job]) -> list[str]:
    """The voices heard, in order of appearance: a narration's, a dialogue's speakers."""
    seen: dict[str, None] = {}
    for job in jobs:
        field = job.model.voice_field
        value = job.input.get(field) if field else None
        value = value or job.input.get("voice") or job.input.get("voice_id")
        if value:
            seen[str(value)] = None
    return list(seen)


@dataclass
class _State:
    """The build as the lockfile and journal say, read for one listing."""

    entries: dict[str, LockEntry]
    outcomes: dict[str, JobOutcomeRow]
    assets: dict[str, AssetRow]
    outputs: dict[str, tuple[str, int, int]]
    last_run: int | None
    review: Review


class ReviewSession:
    def __init__(self, manifest: Path, *, sandbox: bool = False, reviewer: str | None = None):
        self.manifest = manifest
        self.pipeline = load_pipeline(manifest)
        self.layout = layout_for(self.pipeline, Target.SANDBOX if sandbox else Target.LIVE)
        self.review_file = review_path(self.layout)
        self.reviewer = default_reviewer() if reviewer is None else reviewer
        self.views = AudioViews(self.layout.state_dir)
        self.jobs = {j.id: j for j in self.pipeline.jobs.values() if reviewable(j)}
        self.groups: dict[str, list[Job]] = {}
        for job in self.jobs.values():
            self.groups.setdefault(job.base_id, []).append(job)
        self.segments: dict[str, list[Job]] = {}
        for job in self.jobs.values():
            if job.segment is not None:
                self.segments.setdefault(job.segment.parent, []).append(job)
        self._write = threading.Lock()
        self._read = threading.Lock()
        self._stamps: dict[str, tuple[tuple[int, int] | None, ...]] = {}
        self._cached: _State | None = None

    # --- reading the build --------------------------------------------------------------
    def _stamp(self, name: str, *paths: Path) -> tuple[tuple[int, int] | None, ...] | None:
        """The files' stamp (mtime and size) when they changed since `name` was last read,
        else None: a run, `git pull` or another reviewer may change them meanwhile."""
        stamp = tuple(_stat(path) for path in paths)
        return None if self._stamps.get(name) == stamp else stamp

    def _state(self) -> _State:
        """The build now; each of lockfile, journal and review file is read again only
        when it changed, so that a 10,000-take build answers each request at once."""
        with self._read:
            state = self._cached or _State({}, {}, {}, {}, None, Review(self.review_file))
            journal = self.layout.journal
            stamp = self._stamp("lockfile", self.layout.lockfile)
            if stamp is not None:
                state.entries = read_lockfile(self.layout.lockfile)
                self._stamps["lockfile"] = stamp
            stamp = self._stamp("journal", journal, journal.with_name(journal.name + "-wal"))
            if stamp is not None:
                if journal.exists():
                    with Journal(journal, readonly=True) as opened:
                        state.outcomes = opened.latest_outcomes()
                        state.assets, state.outputs = opened.all_assets(), opened.outputs()
                        state.last_run = opened.last_run_id()
                self._stamps["journal"] = stamp
            stamp = self._stamp("review", self.review_file)
            if stamp is not None:
                state.review = read_review(self.review_file)
                self._stamps["review"] = stamp
            self._cached = state
            return state

    def _recorded(self, review: Review) -> None:
        """The review file as `record` just wrote it: no need to read it back."""
        with self._read:
            self._stamps["review"] = (_stat(self.review_file),)
            if self._cached is not None:
                self._cached.review = review

    def prepare(self) -> None:
        """Read the build now, so that the page's first request is answered at once."""
        self._state()

    def _present(self) -> set[str]:
        """Every file under the output folder, as the lockfile names outputs: one walk
        instead of a stat per take (a 10,000-take list costs a third as much)."""
        root = str(self.layout.output_dir)
        found: set[str] = set()
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != ".runner"]
            prefix = os.path.relpath(folder, root).replace(os.sep, "/")
            prefix = "" if prefix == "." else prefix + "/"
            found.update(prefix + name for name in files)
        return found

    def _status(self, job: Job, state: _State, present: set[str] | None = None) -> str:
        outcome = state.outcomes.get(job.id)
        if outcome is not None and outcome.outcome in BAD_OUTCOMES:
            return outcome.outcome
        entry = state.entries.get(job.id)
        if entry is None:
            return "not built"
        if present is not None:
            return "ok" if entry.output in present else "missing"
        return "ok" if self.layout.output_path(entry.output).is_file() else "missing"

    def _asset(self, job: Job, state: _State, present: set[str] | None = None
               ) -> dict[str, Any]:
        entry = state.entries.get(job.id)
        mark = state.review.decision(job.id, entry)
        earlier = state.review.earlier(job.id, entry)
        picked = state.review.pick(job.base_id)
        made = state.assets.get(entry.key) if entry else None
        status = self._status(job, state, present)
        return {
            "id": job.id, "take": job.variant, "status": status,
            "built": entry is not None and status != "missing",
            "changed": bool(made and state.last_run is not None
                            and made.run_id == state.last_run),
            "duration": entry.duration_s if entry else None,
            "decision": mark.decision.value if mark and mark.decision else None,
            "note": mark.note if mark else "", "by": mark.by if mark else "",
            "chosen": bool(picked and picked.pick == job.variant and entry is not None
                           and picked.take.is_locked(entry)),
            "earlier": {"decision": earlier.decision.value if earlier.decision else None,
                        "note": earlier.note} if earlier else None,
        }

    def _group(self, base_id: str, jobs: list[Job], state: _State, models: dict[str, int],
               present: set[str]) -> dict[str, Any]:
        first = jobs[0]
        heard = self.segments.get(first.id, []) if first.kind is JobKind.STITCH else jobs
        prompt = prompt_of(first)
        return {
            "id": base_id, "kind": kind_of(first), "model": models[first.model.id],
            "prompt": prompt[:PROMPT_CHARS] + ("…" if len(prompt) > PROMPT_CHARS else ""),
            "voices": voices_of(heard), "parent": first.segment.parent if first.segment else None,
            "assets": [self._asset(job, state, present) for job in jobs],
        }

    def listing(self) -> dict[str, Any]:
        """Every reviewable take, grouped by job, in manifest order."""
        state = self._state()
        present = self._present()
        names = sorted({j.model.id for j in self.jobs.values()})
        models = {name: i for i, name in enumerate(names)}
        return {
            "pipeline": self.pipeline.name, "target": self.layout.target.value,
            "review_file": _shown(self.review_file, self.pipeline.path.parent),
            "models": names,
            "last_run": state.last_run, "reviewer": self.reviewer,
            "groups": [self._group(base, jobs, state, models, present)
                       for base, jobs in self.groups.items()],
        }

    def detail(self, job_id: str) -> dict[str, Any]:
        """Everything about one take: what was asked, what came back, loudness targets."""
        job = self._job(job_id)
        state = self._state()
        entry = state.entries.get(job_id)
        outcome = state.outcomes.get(job_id)
        loudness = None
        if entry is not None and job.kind is JobKind.STITCH and "sidecar" in entry.companions:
            sidecar = _json(self.layout.output_path(entry.companions["sidecar"]))
            loudness = sidecar.get("loudness") if isinstance(sidecar, dict) else None
        elif entry is not None:
            asset = state.assets.get(entry.key)
            post = (asset.payload or {}).get("post") if asset and asset.payload else None
            loudness = post.get("loudness") if isinstance(post, dict) else None
        return {
            **self._asset(job, state), "kind": kind_of(job), "model": job.model.id,
            "provider": job.provider, "format": job.format, "output": job.output,
            "prompt": prompt_of(job), "input": job.input,
            "postprocess": job.post.describe() if job.post else None,
            "narration": {k: getattr(job.narration, k) for k in (
                "loudness_lufs", "true_peak_dbtp", "gap_ms", "paragraph_gap_ms",
                "crossfade_ms")} if job.narration else None,
            "key": entry.key if entry else None, "task": entry.task_id if entry else None,
            "made": entry.created_at if entry else None,
            "credits": entry.credits if entry else None, "size": entry.size if entry else None,
            "reason": outcome.message if outcome and outcome.outcome in BAD_OUTCOMES else None,
            "loudness_target": loudness, "approved_path": job.approved,
        }

    def _job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise UsageError(f"no take '{job_id}' in {self.pipeline.name}")
        return job

    def view(self, job_id: str) -> AudioView | None:
        """Waveform, duration, loudness and what to play; None when it is not built."""
        self._job(job_id)
        state = self._state()
        entry = state.entries.get(job_id)
        if entry is None:
            return None
        path = self.layout.output_path(entry.output)
        if not path.is_file():
            return None
        st = path.stat()
        known = state.outputs.get(entry.output)
        sha = entry.sha256 if known == (entry.sha256, st.st_size, st.st_mtime_ns) \
            else file_digest(path)
        return self.views.view(path, sha, entry.duration_s)

    # --- deciding -----------------------------------------------------------------------
    def decide(self, job_id: str, decision: str, note: str = "") -> dict[str, Any]:
        """Approve, reject (with a note) or clear the decision about a job's current take."""
        job = self._job(job_id)
        try:
            chosen = Decision(decision)
        except ValueError:
            raise UsageError(f"unknown decision '{decision}': approved, rejected or "
                             "unreviewed") from None
        if chosen is Decision.REJECTED and job.kind is JobKind.STITCH:
            raise UsageError(f"{job_id} is stitched from its segments: reject the segments "
                             "that need a new take")
        with self._write:
            entry = self._state().entries.get(job_id)
            if entry is None:
                raise UsageError(f"{job_id} has no take yet: run it first")
            marks = [Mark(job_id, take_of(entry), now(), chosen,
                          note=note.strip() if chosen is Decision.REJECTED else "",
                          by=self.reviewer)]
            picked = self._state().review.pick(job.base_id)
            if chosen is not Decision.APPROVED and picked is not None \
                    and picked.pick == job.variant:
                marks.append(Mark(job.base_id, take_of(entry), now(), pick=0, by=self.reviewer))
            self._recorded(record(self.review_file, self.pipeline.name, marks))
            self._export(job.base_id)
        return self._asset(job, self._state())

    def pick(self, base_id: str, take: int) -> list[dict[str, Any]]:
        """Choose take `take` of a job with variants (and approve it); 0 clears the pick."""
        jobs = self.groups.get(base_id)
        if not jobs:
            raise UsageError(f"no job '{base_id}' in {self.pipeline.name}")
        if len(jobs) == 1 and take:
            raise UsageError(f"{base_id} has one take: approve it instead of picking")
        chosen = next((j for j in jobs if j.variant == take), None)
        if take and chosen is None:
            raise UsageError(f"{base_id} has takes 1 to {len(jobs)}, not {take}")
        with self._write:
            entries = self._state().entries
            marks = []
            if chosen is not None:
                entry = entries.get(chosen.id)
                if entry is None:
                    raise UsageError(f"{chosen.id} has no take yet: run it first")
                at = now()
                marks = [Mark(base_id, take_of(entry), at, pick=take, by=self.reviewer),
                         Mark(chosen.id, take_of(entry), at, Decision.APPROVED,
                              by=self.reviewer)]
            else:  # no take is chosen any more: a line that says so (merges keep it)
                marks = [Mark(base_id, Take(""), now(), pick=0, by=self.reviewer)]
            self._recorded(record(self.review_file, self.pipeline.name, marks))
            self._export(base_id)
        state = self._state()
        return [self._asset(job, state) for job in jobs]

    def group_assets(self, job_id: str) -> list[dict[str, Any]]:
        """The takes of the job `job_id` belongs to, as the list shows them."""
        jobs = self.groups.get(self._job(job_id).base_id, [])
        state = self._state()
        return [self._asset(job, state) for job in jobs]

    def _export(self, base_id: str) -> None:
        """A job that declares `approved:` gets its chosen take exported at once."""
        if any(j.approved for j in self.groups.get(base_id, [])):
            export_build(self.pipeline, self.layout, only={base_id}, declared_only=True)


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _shown(path: Path, start: Path) -> str:
    """A path as the page names it: relative to the manifest's folder, as in the repo."""
    try:
        return os.path.relpath(path, start)
    except ValueError:
        return str(path)
