"""What happens during a run, as a stream of events.

The engine emits one `Event` per step; every job ends in exactly one FINISHED
event carrying its `JobOutcome`. Observers (the progress display, the JSON log,
the tally behind the end-of-run summary) only listen: they never steer the run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runner.engine.retry import JobOutcome


class EventKind(StrEnum):
    RUN_STARTED = "run_started"
    QUEUED = "queued"  # a job that needs work entered the run
    UPLOADED = "uploaded"
    SUBMITTED = "submitted"  # the provider accepted a task (task_id)
    POLLED = "polled"
    RETRY = "retry"  # a request will be repeated after `delay_s`
    SUCCEEDED = "succeeded"  # the provider finished the task
    STORED = "stored"  # the result is verified and in the cache
    STITCH_PROGRESS = "stitch_progress"
    DOWNLOAD_PROGRESS = "download_progress"  # a large result: done/total in MiB
    FINISHED = "finished"  # the job's one outcome
    ACCOUNT_STOPPED = "account_stopped"
    BUDGET_STOPPED = "budget_stopped"
    WARNING = "warning"  # done, but a person should look (e.g. a segment's transcript differs)
    # The team's remote cache (runner.team): each carries `size_bytes` moved and `busy_s`.
    REMOTE_HIT = "remote_hit"  # the result came from the remote cache: no provider request
    REMOTE_MISS = "remote_miss"  # not there: the job goes to its provider
    REMOTE_STORED = "remote_stored"  # this machine's result is recorded for the team
    REMOTE_ADOPTED = "remote_adopted"  # another machine recorded the request first: its take
    # The team's ledger of claims (runner.team.claims): machines that share an account.
    CLAIM_HELD = "claim_held"  # another machine holds the request: this job waits for it
    CLAIM_TAKEN = "claim_taken"  # another machine bought it: its result, nothing bought here
    CLAIM_ADOPTED = "claim_adopted"  # its machine stopped after the provider answered: this
    #                                 one collects the task it recorded
    RUN_FINISHED = "run_finished"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    job_id: str | None = None
    provider: str | None = None
    outcome: JobOutcome | None = None
    message: str = ""
    task_id: str | None = None
    credits: float | None = None
    delay_s: float | None = None
    done: int | None = None  # progress of long local work (stitching)
    total: int | None = None
    size_bytes: int | None = None  # bytes moved by this step (remote cache)
    busy_s: float | None = None  # the remote cache's busy wall time so far
    time_s: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return {k: (v.value if isinstance(v, StrEnum) else v)
                for k, v in (("event", self.kind), ("job", self.job_id),
                             ("provider", self.provider), ("outcome", self.outcome),
                             ("message", self.message), ("task_id", self.task_id),
                             ("credits", self.credits), ("delay_s", self.delay_s),
                             ("done", self.done), ("total", self.total),
                             ("size_bytes", self.size_bytes), ("busy_s", self.busy_s),
                             ("time", round(self.time_s, 3)))
                if v not in (None, "")}


Observer = Callable[[Event], None]


@dataclass(frozen=True, slots=True)
class Failure:
    job_id: str
    provider: str | None
    reason: str
    task_id: str | None


REMOTE_KINDS = frozenset({EventKind.REMOTE_HIT, EventKind.REMOTE_MISS, EventKind.REMOTE_STORED,
                          EventKind.REMOTE_ADOPTED})


@dataclass
class RemoteTally:
    """The remote cache's share of a run: what it answered, bytes moved (both ways,
    records included) and the wall time during which it was busy."""

    hits: int = 0
    misses: int = 0
    stored: int = 0
    adopted: int = 0
    bytes_moved: int = 0
    busy_s: float = 0.0

    def __call__(self, event: Event) -> None:
        if event.kind is EventKind.REMOTE_HIT:
            self.hits += 1
        elif event.kind is EventKind.REMOTE_MISS:
            self.misses += 1
        elif event.kind is EventKind.REMOTE_STORED:
            self.stored += 1
        elif event.kind is EventKind.REMOTE_ADOPTED:
            self.adopted += 1
        self.bytes_moved += event.size_bytes or 0
        self.busy_s = max(self.busy_s, event.busy_s or 0.0)


CLAIM_KINDS = frozenset({EventKind.CLAIM_HELD, EventKind.CLAIM_TAKEN, EventKind.CLAIM_ADOPTED})


@dataclass
class TeamTally:
    """What the team's ledger did in a run: jobs that waited for another machine, took
    its result, or adopted the task of a machine that stopped."""

    waited: int = 0
    taken: int = 0
    adopted: int = 0

    def __call__(self, event: Event) -> None:
        if event.kind is EventKind.CLAIM_HELD:
            self.waited += 1
        elif event.kind is EventKind.CLAIM_TAKEN:
            self.taken += 1
        elif event.kind is EventKind.CLAIM_ADOPTED:
            self.adopted += 1


@dataclass
class Tally:
    """Counts built from events, once each: the source of the end-of-run summary."""

    outcomes: Counter[JobOutcome] = field(default_factory=Counter)
    by_provider: dict[str, Counter[str]] = field(default_factory=dict)
    credits: float = 0.0
    retries: int = 0
    requests_submitted: int = 0
    failures: list[Failure] = field(default_factory=list)
    stopped_accounts: dict[str, str] = field(default_factory=dict)
    budget_stop: str | None = None
    warnings: list[str] = field(default_factory=list)
    remote: RemoteTally | None = None  # set by the first remote cache event
    team: TeamTally | None = None  # set by the first claim event
    taken_jobs: set[str] = field(default_factory=set)  # built (and paid) by another machine
    started_s: float = field(default_factory=time.time)
    finished_s: float | None = None

    def __call__(self, event: Event) -> None:
        counter = self.by_provider.setdefault(event.provider or "local", Counter())
        if event.kind is EventKind.FINISHED and event.outcome is not None:
            self.outcomes[event.outcome] += 1
            counter[event.outcome.value] += 1
            if event.outcome in (JobOutcome.FAILED, JobOutcome.UNCERTAIN, JobOutcome.SKIPPED):
                self.failures.append(Failure(str(event.job_id), event.provider, event.message,
                                             event.task_id))
        elif event.kind is EventKind.SUBMITTED:
            self.requests_submitted += 1
            counter["submitted"] += 1
        elif event.kind is EventKind.RETRY:
            self.retries += 1
            counter["retries"] += 1
        elif event.kind is EventKind.SUCCEEDED and event.credits:
            if event.job_id in self.taken_jobs:
                return  # another machine bought it: collecting it here costs nothing
            self.credits += event.credits
            counter["credits"] += round(event.credits)
        elif event.kind is EventKind.ACCOUNT_STOPPED and event.provider:
            self.stopped_accounts[event.provider] = event.message
        elif event.kind is EventKind.BUDGET_STOPPED:
            self.budget_stop = event.message
        elif event.kind is EventKind.WARNING:
            self.warnings.append(f"{event.job_id}: {event.message}" if event.job_id
                                 else event.message)
        elif event.kind is EventKind.RUN_FINISHED:
            self.finished_s = event.time_s
        elif event.kind in REMOTE_KINDS:
            self.remote = self.remote or RemoteTally()
            self.remote(event)
        elif event.kind in CLAIM_KINDS:
            self.team = self.team or TeamTally()
            self.team(event)
            if event.kind is EventKind.CLAIM_TAKEN and event.job_id is not None:
                self.taken_jobs.add(event.job_id)

    @property
    def elapsed_s(self) -> float:
        return (self.finished_s or time.time()) - self.started_s


class Bus:
    """Fans events out to observers, in order (observers must be quick and must not raise)."""

    def __init__(self, observers: list[Observer] | None = None) -> None:
        self.observers = list(observers or [])

    def emit(self, event: Event) -> None:
        for observer in self.observers:
            observer(event)
