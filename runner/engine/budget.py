"""`--max-credits`: a credit budget that concurrent jobs cannot overshoot together.

Before a job is submitted it reserves the most its request can cost: the worst
case the provider can bill for it (`runner.plan.pricing.worst_case`), not the plan's
estimate, which assumes things the provider decides (a sound effect without a
duration is estimated at 4 s and billed for the length the model picks). When
the task is done the reservation is settled to what the provider reports it
spent (or spent whole, if the provider says nothing). The sum of what is spent
and what is reserved never exceeds the budget, so neither does the bill.

A job whose worst case does not fit now waits while other reservations are
still to be settled (they usually cost less than their worst case); it is not
submitted once nothing is left in flight and it still does not fit, and the
run says which budget stopped it and what was spent. A job whose worst case is
unknown (no price, audio of unknown length) cannot be budgeted: it is not
submitted under a budget.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

_EPSILON = 1e-9


@dataclass
class Budget:
    limit: float | None  # None: no budget
    spent: float = 0.0
    reserved: dict[str, float] = field(default_factory=dict)
    _changed: asyncio.Event | None = field(default=None, init=False, repr=False)

    @property
    def committed(self) -> float:
        return self.spent + sum(self.reserved.values())

    def fits(self, job_id: str, worst: float) -> bool:
        """Whether reserving `worst` for the job keeps spent + reserved within the limit."""
        if self.limit is None:
            return True
        own = self.reserved.get(job_id, 0.0)  # a job's new task replaces its old reservation
        return self.committed - own + worst <= self.limit + _EPSILON

    async def reserve(self, job_id: str, worst: float | None,
                      stopping: asyncio.Event | None = None) -> bool:
        """Reserve the most the job's request can cost; False when it cannot fit.

        Waits while it does not fit but reservations of jobs in flight may still be
        settled below their worst case. Returns False at once when even then it could
        not fit, when `worst` is unknown under a budget, or when `stopping` is set.
        """
        if self.limit is None:
            self.reserved[job_id] = worst or 0.0
            return True
        if worst is None:
            return False
        while not self.fits(job_id, worst):
            others = [j for j in self.reserved if j != job_id]
            if not others or self.spent + worst > self.limit + _EPSILON:
                return False  # nothing left to settle could make room
            if stopping is not None and stopping.is_set():
                return False
            await self._wait_for_change(stopping)
        self.reserved[job_id] = worst
        return True

    def settle(self, job_id: str, actual: float | None) -> None:
        """The task finished: spend what it cost (the whole reservation if unknown)."""
        reserved = self.reserved.pop(job_id, 0.0)
        self.spent += actual if actual is not None else reserved
        self._notify()

    def close(self, job_id: str) -> None:
        """The job ended: a reservation it still holds (a request whose answer was lost,
        a task left running) may be billed, so it is spent, not given back."""
        if job_id in self.reserved:
            self.settle(job_id, None)

    def release(self, job_id: str) -> None:
        """The job's request was refused or its task failed: nothing was billed."""
        if self.reserved.pop(job_id, None) is not None:
            self._notify()

    def describe(self) -> str:
        return (f"--max-credits {self.limit:g}: {self.spent:g} spent, "
                f"{sum(self.reserved.values()):g} reserved by jobs in flight")

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def _wait_for_change(self, stopping: asyncio.Event | None) -> None:
        if self._changed is None:
            self._changed = asyncio.Event()
        changed = asyncio.ensure_future(self._changed.wait())
        waits = [changed]
        if stopping is not None:
            waits.append(asyncio.ensure_future(stopping.wait()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
