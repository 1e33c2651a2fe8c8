"""What the live display shows, kept up to date from events in O(1) each.

`RunState` is an observer: every event changes a few counters and at most one
dict entry, and nothing is rendered here. The display reads the counters on
its own timer (a few times a second), so a 10,000-job run pays for the
display per refresh, not per event.

Phases of a job, as events reveal them (a job is in at most one):

    QUEUED ▶ waiting ─SUBMITTED▶ at provider ─SUCCEEDED▶ fetching ─STORED▶ (gone)
                └─STITCH_PROGRESS▶ local work            FINISHED ends any phase

A synchronous provider (ElevenLabs direct) emits SUBMITTED and SUCCEEDED only
once its answer has arrived, so its jobs count as waiting while they generate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from runner.engine.events import REMOTE_KINDS, Event, EventKind, RemoteTally
from runner.engine.retry import JobOutcome

SUBMIT_RATE_WINDOW_S = 10
# Completions are burstier than submissions (they follow task latency), so the
# ETA averages over a longer window than the submit rate.
FINISH_RATE_WINDOW_S = 30
LOCAL = "local"  # the row of events without a provider (Tally uses the same name)
# Outcomes that need the user's attention: those of `Tally.failures`.
FAILURES = frozenset({JobOutcome.FAILED, JobOutcome.UNCERTAIN, JobOutcome.SKIPPED})


class RateWindow:
    """Events per second over the last `window_s` seconds, O(1) per event.

    One counter per whole second in a ring; a slot is reset when it is reused
    for a newer second. Reading the rate walks the ring (`window_s` slots), which
    the display does a few times a second, never per event.
    """

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._secs = [-1] * window_s
        self._counts = [0] * window_s

    def add(self, time_s: float) -> None:
        sec = int(time_s)
        i = sec % self.window_s
        if self._secs[i] != sec:
            self._secs[i] = sec
            self._counts[i] = 0
        self._counts[i] += 1

    def rate_per_s(self, now_s: float, since_s: float) -> float:
        """The rate at `now_s`; `since_s` (the run's start) keeps the first seconds
        of a run from being averaged over time before it began."""
        now = int(now_s)
        oldest = now - self.window_s + 1
        count = sum(c for s, c in zip(self._secs, self._counts) if oldest <= s <= now)
        span_s = now_s - max(float(oldest), since_s)
        return count / max(span_s, 1.0)


class Phase(Enum):
    WAITING = "waiting"  # queued: waiting for a submit slot, the budget or an upload
    AT_PROVIDER = "at provider"
    FETCHING = "fetching"  # the provider finished; the result is being downloaded
    LOCAL = "local work"  # stitching


@dataclass
class AccountRow:
    """One provider account's line of the display."""

    name: str
    submits: RateWindow = field(default_factory=lambda: RateWindow(SUBMIT_RATE_WINDOW_S))
    phases: dict[Phase, int] = field(default_factory=lambda: dict.fromkeys(Phase, 0))
    outcomes: dict[JobOutcome, int] = field(default_factory=lambda: dict.fromkeys(JobOutcome, 0))
    submitted: int = 0
    retries: int = 0
    credits: float = 0.0
    stopped: str | None = None

    @property
    def failed(self) -> int:
        """Failed, uncertain and skipped jobs, as the summary lists them. Interrupted
        ones are not failures (the next run resumes them): after Ctrl-C they only
        leave the pending count."""
        return sum(self.outcomes[outcome] for outcome in FAILURES)


@dataclass(frozen=True, slots=True)
class Bar:
    """Progress of one job's long local work (a stitch), or any event with done/total."""

    job_id: str
    label: str
    done: int
    total: int


class RunState:
    """The run as the display sees it; call it with every event (an `Observer`)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started_s = clock()
        self.finished_s: float | None = None
        self.total = 0  # jobs that need work (RUN_STARTED)
        self.rows: dict[str, AccountRow] = {}
        self.phase: dict[str, tuple[AccountRow, Phase]] = {}
        self.bars: dict[str, Bar] = {}
        self.finished = 0
        self.finishes = RateWindow(FINISH_RATE_WINDOW_S)  # completions that did work
        self.budget_stop: str | None = None
        self.title = "runner"  # the pipeline's name, if RUN_STARTED's message carries it
        self.remote: RemoteTally | None = None  # the team's remote cache, once it is used
        self.taken: set[str] = set()  # jobs another machine bought (the team's ledger)
        self.version = 0

    def row(self, provider: str | None) -> AccountRow:
        name = provider or LOCAL
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = AccountRow(name)
        return row

    def _move(self, job_id: str | None, row: AccountRow, to: Phase | None) -> None:
        if job_id is None:
            return
        old = self.phase.pop(job_id, None)
        if old is not None:
            old[0].phases[old[1]] -= 1
        if to is not None:
            self.phase[job_id] = (row, to)
            row.phases[to] += 1

    def __call__(self, event: Event) -> None:
        self.version += 1  # tells the display whether a redraw can show anything new
        kind = event.kind
        if kind is EventKind.RUN_STARTED:
            self.started_s = event.time_s
            self.total = event.total or 0
            self.title = event.message or self.title
            return
        if kind is EventKind.RUN_FINISHED:
            self.finished_s = event.time_s
            return
        if kind is EventKind.BUDGET_STOPPED:
            self.budget_stop = event.message
            return
        if kind in REMOTE_KINDS:
            self.remote = self.remote or RemoteTally()
            self.remote(event)
            return
        if kind is EventKind.CLAIM_TAKEN and event.job_id is not None:
            self.taken.add(event.job_id)  # collected here, paid for there
        row = self.row(event.provider)
        if kind is EventKind.QUEUED:
            self._move(event.job_id, row, Phase.WAITING)
        elif kind is EventKind.SUBMITTED:
            row.submitted += 1
            row.submits.add(event.time_s)
            self._move(event.job_id, row, Phase.AT_PROVIDER)
        elif kind is EventKind.SUCCEEDED:
            if event.job_id not in self.taken:  # as the summary counts them (Tally)
                row.credits += event.credits or 0.0
            self._move(event.job_id, row, Phase.FETCHING)
        elif kind is EventKind.STORED:
            self._move(event.job_id, row, None)
            if event.job_id is not None:  # a download's bar, if one was reported
                self.bars.pop(event.job_id, None)
        elif kind is EventKind.RETRY:
            row.retries += 1
        elif kind is EventKind.ACCOUNT_STOPPED:
            row.stopped = row.stopped or event.message
        elif kind is EventKind.FINISHED:
            self._finish(event, row)
        elif event.total is not None and event.done is not None and event.job_id is not None:
            # STITCH_PROGRESS, and any later kind that reports done/total the same way.
            self._progress(event, row)

    def _finish(self, event: Event, row: AccountRow) -> None:
        self._move(event.job_id, row, None)
        if event.job_id is not None:
            self.bars.pop(event.job_id, None)
        if event.outcome is not None:
            row.outcomes[event.outcome] += 1
        self.finished += 1
        if event.outcome is not JobOutcome.CACHED:  # instant: would make the ETA optimistic
            self.finishes.add(event.time_s)

    def _progress(self, event: Event, row: AccountRow) -> None:
        assert event.job_id is not None and event.total is not None and event.done is not None
        if event.kind is EventKind.STITCH_PROGRESS:
            self._move(event.job_id, row, Phase.LOCAL)
        # The bar stays until the job finishes: after the last segment a stitch still
        # measures loudness and encodes, which can take as long as assembling.
        label = event.kind.value.removesuffix("_progress")
        self.bars[event.job_id] = Bar(event.job_id, label, event.done, event.total)

    # -- read by the display, on its own timer ------------------------------------

    def now_s(self) -> float:
        return self.finished_s if self.finished_s is not None else self.clock()

    @property
    def elapsed_s(self) -> float:
        return max(0.0, self.now_s() - self.started_s)

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.finished)

    def eta_s(self) -> float | None:
        """Seconds to go at the recent completion rate; None before there is one."""
        if self.remaining == 0:
            return 0.0
        rate = self.finishes.rate_per_s(self.now_s(), self.started_s)
        return self.remaining / rate if rate > 0 else None

    def pending(self) -> int:
        """Jobs not finished and not in any phase: waiting for their inputs, or queued."""
        busy = sum(n for row in list(self.rows.values()) for p, n in row.phases.items()
                   if p is not Phase.WAITING)
        return max(0, self.remaining - busy)
