"""FIFO admission shared by the limiters, with time and sleep injected.

Only the head waiter looks at the clock. It sleeps until the subclass's
`_delay_s` says it may go, or until `_notify()` reports a change that may let
it go sooner. When it goes, it also admits, in the same step, every waiter
behind it that may go now (a burst of releases frees many permits at once, and
handing the head on one waiter per turn of the event loop made the last of 50
wait ~40 ms on a busy loop), and hands the head to the first that may not.
Nobody else wakes, so there is no thundering herd. A cancelled waiter leaves
the queue and takes nothing; one cancelled after it was admitted gives back
what it was given.

Time comes from `clock` (default: the running loop's `time`) and waiting from
`sleep` (default `asyncio.sleep`), so tests run on
`runner.testing.clock.VirtualTimeLoop`, or inject their own pair.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class Gate:
    """Base of the limiters: subclasses say when one may be taken and take it."""

    def __init__(self, clock: Clock | None, sleep: Sleep | None) -> None:
        self._clock: Clock = clock or _loop_time
        self._sleep: Sleep = sleep or asyncio.sleep
        # A waiter's future: False when it becomes the head, True when it is admitted.
        self._waiters: deque[asyncio.Future[bool]] = deque()
        self._changed: asyncio.Future[None] | None = None

    def _delay_s(self, now: float) -> float:
        """0 when one may be taken now; else seconds to wait (inf: until a change)."""
        raise NotImplementedError

    def _take(self, now: float) -> None:
        raise NotImplementedError

    def _untake(self) -> None:
        """Give back one `_take` (its waiter was cancelled before it could use it)."""
        raise NotImplementedError

    @property
    def waiting(self) -> int:
        # Cancelled waiters stay queued until they reach the head (leaving is O(1));
        # counting them out is O(n), fine for a display that asks a few times a second.
        return sum(1 for waiter in self._waiters if not waiter.cancelled())

    async def _enter(self) -> None:
        now = self._clock()
        if not self._waiters and self._delay_s(now) <= 0.0:
            self._take(now)
            return
        me: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters.append(me)
        try:
            if self._waiters[0] is not me and await me:
                return  # admitted by the waiter ahead (`_admit_following`)
            while (delay_s := self._delay_s(now := self._clock())) > 0.0:
                await self._wait_for_change(delay_s)
        except BaseException:
            if me.done() and not me.cancelled() and me.result():
                self._untake()  # admitted, then cancelled before it could go
                self._notify()
                raise
            # Many waiters may be cancelled at once (Ctrl-C's grace period ending): the
            # first to clean up may already have popped the others' cancelled futures
            # from the head, so `me` may be anywhere in the queue, or gone.
            if self._waiters and self._waiters[0] is me:
                self._waiters.popleft()
                self._wake_head()
            elif not me.done():
                me.cancel()  # left in place; popped when it reaches the head
            raise
        self._waiters.popleft()
        self._take(now)
        self._admit_following(now)

    def _admit_following(self, now: float) -> None:
        """Admit the waiters behind the one that just went while they may go now, then
        make the first that may not the head (it watches the clock from there)."""
        waiters = self._waiters
        while waiters:
            if waiters[0].cancelled():
                waiters.popleft()
            elif self._delay_s(now) <= 0.0:
                self._take(now)
                waiters.popleft().set_result(True)
            else:
                break
        self._wake_head()

    async def _wait_for_change(self, delay_s: float) -> None:
        loop = asyncio.get_running_loop()
        changed = self._changed = loop.create_future()
        if math.isinf(delay_s):
            await changed
            return
        sleeper = asyncio.ensure_future(self._sleep(delay_s))
        try:
            await asyncio.wait((sleeper, changed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()

    def _wake_head(self) -> None:
        # Invariant: the head of the queue is a live waiter, or the queue is empty.
        waiters = self._waiters
        while waiters and waiters[0].cancelled():
            waiters.popleft()
        if waiters and not waiters[0].done():
            waiters[0].set_result(False)

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)
