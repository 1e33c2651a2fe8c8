"""Per-account limits: how fast requests may go out, and how many tasks may run.

One `AccountLimiter` per provider account, shared by every job of the run:

- `submit`, a `SlidingWindow` (window.py): generation requests (createTask,
  synchronous generations), at most N in any window of the provider's length,
  adapting to 429s;
- `in_flight`, an `InFlight` cap (capacity.py) on tasks submitted and not finished;
- `polls`, a second `SlidingWindow` for status polls;
- `retry_budget`, a `RetryBudget` (capacity.py) that bounds how hard a failing
  provider is retried.

All of them queue waiters FIFO through `gate.Gate` (gate.py), with time and sleep
injected. Every acquire is O(1) amortised: deques pruned from the left, no
scans.
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.catalog.accounts import Limits
from runner.engine.limits.capacity import InFlight, RetryBudget
from runner.engine.limits.gate import Clock, Sleep
from runner.engine.limits.window import BaseSlot, SlidingWindow, Slot, WindowCounters

__all__ = [
    "AccountLimiter", "AccountStats", "BaseSlot", "Clock", "InFlight", "RetryBudget", "Sleep",
    "SlidingWindow", "Slot", "WindowCounters", "poll_window",
]


@dataclass(frozen=True, slots=True)
class AccountStats:
    """One account's limiter, as the progress display shows it."""

    effective_limit: int | None
    window_s: float
    submitted: int
    rate_limited: int
    paused_s: float
    in_flight: int
    in_flight_capacity: int
    polls: int
    retries: int
    stopped: str | None


class AccountLimiter:
    """Everything that paces one provider account, shared by all of its jobs.

    `Limits.requests_per_window` of 0 or less means "not published": the submit
    window discovers it. `polls_per_s` of 0 or less leaves polls unlimited.
    `stop(reason)` records that the key was refused or the credits ran out. The
    engine stops submitting and keeps collecting the tasks in flight.
    """

    def __init__(self, limits: Limits, *, clock: Clock | None = None,
                 sleep: Sleep | None = None, retry_budget: RetryBudget | None = None) -> None:
        configured = limits.requests_per_window
        self.limits = limits
        self.in_flight = InFlight(limits.max_in_flight)
        self.downloads = InFlight(limits.max_downloads)
        self.submit = SlidingWindow(
            configured if configured and configured > 0 else None, limits.window_s,
            clock=clock, sleep=sleep, on_concurrency_limited=self.in_flight.concurrency_limited)
        self.polls = SlidingWindow(*poll_window(limits.polls_per_s), clock=clock, sleep=sleep,
                                   adaptive=limits.polls_per_s > 0)
        self.retry_budget = retry_budget or RetryBudget(clock=clock, sleep=sleep)
        self.stopped: str | None = None

    def succeeded(self, *, was_retry: bool = False) -> None:
        """A request to this account succeeded: it funds the retry budget."""
        self.retry_budget.record_success(was_retry=was_retry)

    def stop(self, reason: str) -> None:
        if self.stopped is None:
            self.stopped = reason

    def stats(self) -> AccountStats:
        submit = self.submit.counters
        return AccountStats(
            effective_limit=self.submit.effective_limit,
            window_s=self.submit.effective_window_s,
            submitted=submit.submitted, rate_limited=submit.rate_limited,
            paused_s=submit.paused_s + self.polls.counters.paused_s,
            in_flight=self.in_flight.in_use, in_flight_capacity=self.in_flight.capacity,
            polls=self.polls.counters.submitted, retries=self.retry_budget.spent,
            stopped=self.stopped)


def poll_window(polls_per_s: float) -> tuple[int | None, float]:
    """`polls_per_s` as (limit, window_s): 10/s → 10 per 1 s, 2.5/s → 2 per 0.8 s,
    0.2/s → 1 per 5 s; 0 or less → unlimited."""
    if polls_per_s <= 0:
        return None, 1.0
    limit = max(1, round(polls_per_s))
    return limit, limit / polls_per_s
