"""`runner status` and `runner clean`: what the build holds, and tidying it. No network.

status: each job as the journal and the lockfile know it: done, cached, frozen,
in flight (with its task id), uncertain, failed (with the reason), or still to
do (new / changed).

clean: removes what no job of the manifest refers to any more: output files
the runner itself wrote (the journal lists them, so a user's own files in the
folder are never touched) and cache entries of superseded takes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.layout import BuildLayout, Target, layout_for
from runner.manifest import Pipeline, load_pipeline
from runner.plan import Plan, State, make_plan
from runner.store.buildlock import BuildLock
from runner.store.cache import ContentCache
from runner.store.journal import Journal, TaskRowState


@dataclass(frozen=True, slots=True)
class JobStatus:
    job_id: str
    status: str  # done | cached | frozen | in flight | uncertain | failed | skipped | new | changed
    detail: str = ""
    task_id: str | None = None


def _journal(layout: BuildLayout) -> Journal | None:
    return Journal(layout.journal, readonly=True) if layout.journal.exists() else None


def _plan(manifest: Path | Pipeline, sandbox: bool) -> tuple[Plan, BuildLayout]:
    pipeline = manifest if isinstance(manifest, Pipeline) else load_pipeline(manifest)
    layout = layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE)
    journal = _journal(layout)
    outputs = journal.outputs() if journal else {}
    if journal:
        journal.close()
    return make_plan(pipeline, layout, outputs=outputs), layout


def build_status(manifest: Path, *, sandbox: bool = False) -> list[JobStatus]:
    plan, layout = _plan(manifest, sandbox)
    journal = _journal(layout)
    outcomes = journal.latest_outcomes() if journal else {}
    statuses = []
    for p in plan.jobs:
        job_id = p.job.id
        live = journal.live_task(p.key) if journal else None
        last = outcomes.get(job_id)
        if p.state is State.FROZEN:
            statuses.append(JobStatus(job_id, "frozen", "the locked take is kept (freeze: true)"))
        elif p.state is State.UP_TO_DATE:
            cached = last is not None and last.key == p.key and last.outcome == "cached"
            statuses.append(JobStatus(job_id, "cached" if cached else "done", p.job.output,
                                      p.locked.task_id if p.locked else None))
        elif live is not None and live.state is TaskRowState.SUBMITTED:
            statuses.append(JobStatus(job_id, "in flight", "submitted; the next run collects it",
                                      live.task_id))
        elif live is not None and live.state in (TaskRowState.SUBMITTING,
                                                 TaskRowState.UNCERTAIN):
            statuses.append(JobStatus(job_id, "uncertain", "sent without a recorded answer: "
                                      "check the provider, then --resubmit-uncertain",
                                      live.task_id))
        elif last is not None and last.key == p.key and last.outcome in (
                "failed", "skipped", "interrupted", "uncertain"):
            statuses.append(JobStatus(job_id, last.outcome, last.message or "", last.task_id))
        else:
            statuses.append(JobStatus(job_id, p.state.value if p.state is not State.RESTORE
                                      else "restore", "to be generated" if p.state.needs_work
                                      and p.state is not State.RESTORE else "output missing: "
                                      "restored from the cache on the next run"))
    if journal:
        journal.close()
    return statuses


def render_status(statuses: list[JobStatus]) -> str:
    counts: dict[str, int] = {}
    for s in statuses:
        counts[s.status] = counts.get(s.status, 0) + 1
    width = max((len(s.job_id) for s in statuses), default=2)
    task_width = max((len(s.task_id or "") for s in statuses), default=0)
    lines = [f"{s.job_id.ljust(width)}  {s.status.ljust(9)}  "
             f"{(s.task_id or '-').ljust(task_width)}  {s.detail}".rstrip()
             for s in statuses]
    lines.append(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    return "\n".join(lines)


@dataclass
class CleanReport:
    outputs: list[Path] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)  # where each was (Blob.label)
    freed_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"outputs": [str(p) for p in self.outputs], "cache": self.blobs,
                "freed_bytes": self.freed_bytes}


def clean(manifest: Path, *, sandbox: bool = False, dry_run: bool = False) -> CleanReport:
    """Remove what no job refers to. It writes the build, so it takes the build's lock
    (refusing at once with BuildBusy while a run holds it); a dry run only reads."""
    pipeline = load_pipeline(manifest)
    if dry_run:
        return _clean(pipeline, sandbox=sandbox, dry_run=True)
    layout = layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE)
    with BuildLock(layout.state_dir, "runner clean").hold(wait=False):
        return _clean(pipeline, sandbox=sandbox, dry_run=False)


def _clean(pipeline: Pipeline, *, sandbox: bool, dry_run: bool) -> CleanReport:
    plan, layout = _plan(pipeline, sandbox)
    report = CleanReport()
    if not layout.journal.exists():
        return report
    keep_outputs: set[str] = set()
    keep_blobs: set[str] = set()
    for p in plan.jobs:
        keep_outputs.add(p.job.output)
        if p.locked is not None:
            keep_blobs.add(p.locked.sha256)
            keep_outputs.update(p.locked.companions.values())
    with Journal(layout.journal) as journal:
        assets = journal.all_assets()
        current_keys = {p.key for p in plan.jobs}
        keep_blobs |= {a.sha256 for k, a in assets.items() if k in current_keys}
        for output in sorted(journal.outputs()):
            if output in keep_outputs:
                continue
            path = layout.output_path(output)
            if path.exists():
                report.outputs.append(path)
                report.freed_bytes += path.stat().st_size
                if not dry_run:
                    path.unlink()
                    _remove_empty_parents(path.parent, layout.output_dir)
            if not dry_run:
                journal.forget_output(output)
        cache = ContentCache(layout.cache_dir(os.environ))
        unused = [blob for blob in cache.blobs() if blob.sha256 not in keep_blobs]
        if not dry_run:
            unused = cache.remove(unused)
        report.blobs = [blob.label for blob in unused]
        report.freed_bytes += sum(blob.size for blob in unused)
        if not dry_run:
            for key, asset in assets.items():
                if asset.sha256 not in keep_blobs:
                    journal.forget_asset(key)
    return report


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
