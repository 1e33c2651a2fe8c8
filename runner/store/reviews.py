"""The review file: what a person decided about each take, kept beside the lockfile.

    pipelines/game_sfx.lock.json
    pipelines/game_sfx.review.jsonl      one JSON object per line, sorted by job id

    {"review": 1, "pipeline": "game_sfx"}
    {"job": "door", "pick": 1, "take": "3f2a...", "task": "task_81", "by": "ana", "at": "2026-12-03T10:11:31.870Z"}
    {"job": "door#1", "decision": "approved", "take": "3f2a...", "task": "task_81", "by": "ana", "at": "2026-12-03T10:11:12.345Z"}
    {"job": "door#2", "decision": "rejected", "note": "hinge too shrill", "take": "9c1e...", "task": "task_82", "by": "ana", "at": "2026-12-03T10:11:20.002Z"}

A decision names the take it is about: `take` is the sha256 of what the provider
returned (the file itself, or its raw result when the job is post-processed) and
`task` the provider's task id. A decision counts only while the job's locked take
is that take: once a rejected take has been replaced, the new one is unreviewed.
Matching on the task as well as the bytes matters when a provider (the sandbox)
answers the same request with the same bytes: a new task is a new take.

What a decision does (runner.plan.plan): an approved take is frozen like `freeze:
true` (a changed request keeps it; only `--force` remakes it); a rejected take is
remade on the next run ("rejected: new take"), the rejected file staying in the
cache. A pick names the chosen take of a job with variants (and approves it):
`runner export` copies it to the job's fixed `approved:` path.

Made for git: one line per decision, sorted, so a diff reads as a list of
decisions. Two reviewers' files merge with git's union driver (add
`*.review.jsonl merge=union` to .gitattributes): both sides' lines are kept, and
where both decided the same job, the newest `at` wins when the file is read. A
decision is never deleted, only superseded (clearing writes an `unreviewed`
line), so a union merge cannot bring an old decision back. Every decision is
written at once, atomically (temp file, fsync, rename): closing the browser
loses nothing. A line that cannot be read is an error naming its line number.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import StoreError
from runner.store import atomic

if TYPE_CHECKING:
    from runner.store.layout import BuildLayout
    from runner.store.lockfile import LockEntry

REVIEW_VERSION = 1
SUFFIX = ".review.jsonl"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    UNREVIEWED = "unreviewed"  # a decision cleared: kept as a line so merges cannot revive it


@dataclass(frozen=True, slots=True)
class Take:
    """Which take a decision is about: the provider's result, by content and task."""

    sha256: str
    task: str | None = None

    def is_locked(self, entry: LockEntry | None) -> bool:
        """Is this the take the lockfile holds for the job now?"""
        if entry is None:
            return False
        current = take_of(entry)
        return current.sha256 == self.sha256 and (
            self.task is None or current.task is None or current.task == self.task)


def take_of(entry: LockEntry) -> Take:
    """The take a lock entry holds: the provider's result behind a post-processed file."""
    raw = entry.raw or {}
    return Take(str(raw.get("sha256") or entry.sha256), entry.task_id)


@dataclass(frozen=True, slots=True)
class Mark:
    """One line of the file: a decision about a take, or the pick of a job's variants."""

    job: str
    take: Take
    at: str  # ISO 8601 UTC with milliseconds: the newest wins
    decision: Decision | None = None
    pick: int | None = None  # a pick line (job = the base id); 0: no pick any more
    note: str = ""
    by: str = ""

    def to_json(self) -> dict[str, Any]:
        """The line, in reading order: who, what, why, which take, by whom, when."""
        line: dict[str, Any] = {"job": self.job}
        if self.decision is not None:
            line["decision"] = self.decision.value
        if self.pick is not None:
            line["pick"] = self.pick
        if self.note:
            line["note"] = self.note
        line["take"] = self.take.sha256
        if self.take.task:
            line["task"] = self.take.task
        if self.by:
            line["by"] = self.by
        line["at"] = self.at
        return line

    @property
    def slot(self) -> tuple[str, str]:
        """What a newer line supersedes: the same job's decision, or its pick."""
        return (self.job, "pick" if self.pick is not None else "decision")


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def reviewer() -> str:
    """Who decides: RUNNER_REVIEWER, else the login name."""
    name = os.environ.get("RUNNER_REVIEWER")
    if name:
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return ""


def review_path(layout: BuildLayout) -> Path:
    """`<stem>.review.jsonl` beside the build's lockfile."""
    lockfile = layout.lockfile
    return lockfile.with_name(lockfile.name.removesuffix(".lock.json") + SUFFIX)


@dataclass
class Review:
    """Every mark of a review file, the newest per job and kind."""

    path: Path
    pipeline: str = ""
    marks: dict[tuple[str, str], Mark] = field(default_factory=dict)
    superseded: int = 0  # older lines read (a union merge keeps both sides)

    # --- what the plan, the report and export ask ---------------------------------------
    def decision(self, job_id: str, entry: LockEntry | None) -> Mark | None:
        """The decision about the job's locked take; None when it has none (or only one
        about an earlier take)."""
        mark = self.marks.get((job_id, "decision"))
        if mark is None or mark.decision in (None, Decision.UNREVIEWED):
            return None
        return mark if mark.take.is_locked(entry) else None

    def earlier(self, job_id: str, entry: LockEntry | None) -> Mark | None:
        """A decision about a take the job no longer holds (a rejected take, remade)."""
        mark = self.marks.get((job_id, "decision"))
        if mark is None or mark.decision in (None, Decision.UNREVIEWED):
            return None
        return None if mark.take.is_locked(entry) else mark

    def approved(self, job_id: str, entry: LockEntry | None) -> bool:
        mark = self.decision(job_id, entry)
        return mark is not None and mark.decision is Decision.APPROVED

    def rejected(self, job_id: str, entry: LockEntry | None) -> bool:
        mark = self.decision(job_id, entry)
        return mark is not None and mark.decision is Decision.REJECTED

    def pick(self, base_id: str) -> Mark | None:
        mark = self.marks.get((base_id, "pick"))
        return mark if mark is not None and mark.pick else None

    def takes(self) -> set[str]:
        """Every take a decision names: `runner clean` keeps them in the cache."""
        return {m.take.sha256 for m in self.marks.values()}

    # --- changes ------------------------------------------------------------------------
    def apply(self, mark: Mark) -> bool:
        """Add a mark; False when an existing one is newer (it stays)."""
        current = self.marks.get(mark.slot)
        if current is not None and current.at > mark.at:
            return False
        self.marks[mark.slot] = mark
        return True

    def render(self) -> str:
        header = json.dumps({"review": REVIEW_VERSION, "pipeline": self.pipeline},
                            ensure_ascii=False)
        ordered = sorted(self.marks.values(), key=lambda m: (m.job, m.pick is not None))
        lines = [json.dumps(m.to_json(), ensure_ascii=False) for m in ordered]
        return "\n".join([header, *lines]) + "\n"


def _mark(data: Any, where: str) -> Mark:
    if not isinstance(data, dict) or not isinstance(data.get("job"), str) \
            or not isinstance(data.get("take"), str) or not isinstance(data.get("at"), str):
        raise StoreError(f"{where}: expected a decision with job, take and at")
    decision = data.get("decision")
    pick = data.get("pick")
    if (decision is None) == (pick is None):
        raise StoreError(f"{where}: a line holds either a decision or a pick")
    try:
        parsed = Decision(decision) if decision is not None else None
    except ValueError:
        raise StoreError(f"{where}: unknown decision {decision!r} (expected approved, "
                         "rejected or unreviewed)") from None
    if pick is not None and (not isinstance(pick, int) or isinstance(pick, bool) or pick < 0):
        raise StoreError(f"{where}: pick must be a take number, not {pick!r}")
    task = data.get("task")
    return Mark(data["job"], Take(data["take"], str(task) if task is not None else None),
                data["at"], parsed, pick, str(data.get("note") or ""), str(data.get("by") or ""))


def parse_review(text: str, path: Path) -> Review:
    review = Review(path)
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{number}"
        if line.startswith(("<<<<<<<", "=======", ">>>>>>>")):
            raise StoreError(f"{where}: a git conflict marker; merge review files with the "
                             "union driver (`*.review.jsonl merge=union` in .gitattributes), "
                             "or keep both sides' lines and delete the markers: the newest "
                             "decision wins")
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{where}: not a JSON line ({exc.msg})") from None
        if isinstance(data, dict) and "review" in data:
            if data["review"] != REVIEW_VERSION:
                raise StoreError(f"{where}: review file version {data['review']!r}; this "
                                 f"runner reads version {REVIEW_VERSION}")
            review.pipeline = str(data.get("pipeline") or review.pipeline)
            continue
        mark = _mark(data, where)
        if mark.slot in review.marks:
            review.superseded += 1
        review.apply(mark)
    return review


def read_review(path: Path) -> Review:
    """The review file at `path`; an absent file is a build nobody has reviewed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Review(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"{path}: cannot read the review file ({exc})") from exc
    return parse_review(text, path)


def record(path: Path, pipeline: str, marks: Iterable[Mark]) -> Review:
    """Add marks to the file at `path` and write it atomically; returns what it holds now.

    The file is read again first, so a decision written meanwhile by another reviewer's
    process (or a `git pull`) is kept, not overwritten by a stale copy.
    """
    review = read_review(path)
    review.pipeline = review.pipeline or pipeline
    for mark in marks:
        review.apply(mark)
    atomic.write_text(path, review.render())
    return review
