"""Capacity that is not a rate: tasks in flight, and the budget for retries."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from types import TracebackType

from runner.engine.limits.gate import Clock, Gate, Sleep

_EPSILON = 1e-9


class InFlight(Gate):
    """At most `capacity` tasks submitted and not finished; the capacity can move.

    `concurrency_limited()` (the provider refused a request for running too many)
    drops the capacity below what is running now; each run of `capacity` good
    releases then gives one back, up to `max_capacity`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"in-flight capacity must be >= 1, not {capacity}")
        super().__init__(None, None)  # never waits on time, only on releases
        self.max_capacity = capacity
        self._capacity = capacity
        self._in_use = 0
        self._ok_run = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def in_use(self) -> int:
        return self._in_use

    async def acquire(self) -> None:
        await self._enter()

    def release(self, *, ok: bool = True) -> None:
        if self._in_use <= 0:
            raise RuntimeError("InFlight.release() without a matching acquire()")
        self._in_use -= 1
        if ok:
            self._ok_run += 1
            if self._ok_run >= self._capacity and self._capacity < self.max_capacity:
                self._ok_run = 0
                self._capacity += 1
        self._notify()

    async def __aenter__(self) -> None:
        """`async with in_flight:` holds one permit; an exception releases it with ok=False."""
        await self.acquire()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release(ok=exc is None)

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """Give a held permit back for the block, and take one again after it (a job
        waiting to retry has nothing in flight). If it is cancelled while taking one
        again, the permit is counted as held all the same, so that its holder's own
        release stays balanced: the cap is exceeded by one only while that job ends."""
        self.release(ok=False)
        try:
            yield
        finally:
            try:
                await self.acquire()
            except BaseException:
                self._in_use += 1
                raise

    def set_capacity(self, capacity: int) -> None:
        """New capacity (at least 1). Running tasks are not revoked; waiters see it at once."""
        self._capacity = max(1, capacity)
        self._notify()

    def concurrency_limited(self) -> None:
        # The refused request holds a permit, so the provider accepted at most in_use - 1.
        self._ok_run = 0
        self.set_capacity(min(self._capacity, self._in_use - 1))

    def _delay_s(self, now: float) -> float:
        return 0.0 if self._in_use < self._capacity else math.inf

    def _take(self, now: float) -> None:
        self._in_use += 1

    def _untake(self) -> None:
        self._in_use -= 1


class RetryBudget(Gate):
    """Retries an account may make, so a failing provider is not hammered.

    A token bucket, after gRPC retry throttling and finagle's RetryBudget. Every
    retry spends a token, and `spend()` waits for one rather than failing the job.
    A success deposits `deposit_per_success`. A retry that succeeds also gets its
    own token back, because it did not hammer anything. Time refills
    `refill_per_s`, so work still proceeds when nothing succeeds. With the
    defaults, a provider failing 100% sees the first 10 retries, then one every
    2 s (30 a minute, whatever the number of jobs). Once it recovers, successful
    retries pay for themselves, and every 10 first-attempt successes fund one
    more retry.
    Spend it for retries of failures (transport errors, 5xx, 455/503); 429s are
    paced by the `SlidingWindow` instead, and `Decision.spend_budget` says which.
    """

    def __init__(self, capacity: float = 10.0, refill_per_s: float = 0.5,
                 deposit_per_success: float = 0.1, *, clock: Clock | None = None,
                 sleep: Sleep | None = None) -> None:
        if capacity < 1 or refill_per_s < 0 or deposit_per_success < 0:
            raise ValueError("retry budget: capacity >= 1, refill and deposit >= 0")
        super().__init__(clock, sleep)
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self.deposit_per_success = deposit_per_success
        self.spent = 0
        self._tokens = capacity
        self._updated_s: float | None = None

    @property
    def tokens(self) -> float:
        self._refill(self._clock())
        return self._tokens

    async def spend(self) -> None:
        """Take one retry token, waiting (FIFO) until there is one."""
        await self._enter()

    def record_success(self, *, was_retry: bool = False) -> None:
        self._refill(self._clock())
        refund = self.deposit_per_success + (1.0 if was_retry else 0.0)
        self._tokens = min(self.capacity, self._tokens + refund)
        self._notify()

    def _refill(self, now: float) -> None:
        if self._updated_s is not None and now > self._updated_s:
            self._tokens = min(self.capacity,
                               self._tokens + (now - self._updated_s) * self.refill_per_s)
        self._updated_s = now

    def _delay_s(self, now: float) -> float:
        self._refill(now)
        missing = 1.0 - self._tokens
        if missing <= _EPSILON:  # ten deposits of 0.1 make 0.9999999999999999
            return 0.0
        return missing / self.refill_per_s if self.refill_per_s > 0 else math.inf

    def _take(self, now: float) -> None:
        self._tokens = max(0.0, self._tokens - 1.0)
        self.spent += 1

    def _untake(self) -> None:
        self._tokens += 1.0
        self.spent -= 1
