"""Virtual time for asyncio tests: an event loop whose clock jumps instead of waiting.

`VirtualTimeLoop` is a selector event loop whose `time()` is a number it owns.
Whenever every task is blocked and the loop would wait for its next timer, the
clock jumps straight to that timer instead, so `asyncio.sleep(3600)` returns at
once in wall time while `loop.time()` says an hour passed. Everything built on
the loop's timers (`asyncio.sleep`, `call_later`, `asyncio.timeout`, the
limiters' default clock and sleep) therefore runs in virtual time, unchanged.

Why a loop and not a fake `sleep`: code under test awaits futures, tasks and
sleeps together; only the loop knows when all of them are blocked, which is the
one moment it is correct to move time forward. (aiolimiter patches `loop.time`
with a mock for the same reason; this does it without patching.)

Time jumps land exactly on a timer's deadline: the jump is `when - now`, and
adding back a difference of two close floats is exact (Sterbenz), so code that
sleeps "until t" wakes with `loop.time() == t`.

    from runner.testing.clock import run_virtual
    elapsed_s = run_virtual(main())   # result of main(); loop.time() starts at 0.0

A loop that has nothing ready, no timer and no I/O is deadlocked; in virtual
time that would hang the test, so it raises `VirtualDeadlock` instead.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# How long a deadlocked loop may wait for real I/O (threads, subprocesses) before
# it is declared stuck. Pure-asyncio tests never reach this.
_REAL_IO_GRACE_S = 1.0


class VirtualDeadlock(RuntimeError):
    """Every task waits on something that nothing will ever set."""


class _Clock:
    __slots__ = ("now_s",)

    def __init__(self, start_s: float) -> None:
        self.now_s = start_s


class _VirtualSelector(selectors.BaseSelector):
    """Polls real I/O without blocking; a wait for a timer becomes a clock jump."""

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self._real = selectors.DefaultSelector()

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = self._real.select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            # Nothing ready and no timer: only real I/O (the loop's self-pipe, woken
            # by another thread) can still make progress.
            events = self._real.select(_REAL_IO_GRACE_S)
            if not events:
                raise VirtualDeadlock("no task can proceed: nothing is ready, scheduled or pending")
            return events
        self._clock.now_s += timeout
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock starts at `start_s` and only moves when all tasks wait."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._virtual = _Clock(start_s)
        super().__init__(selector=_VirtualSelector(self._virtual))

    def time(self) -> float:
        return self._virtual.now_s


def run_virtual(main: Coroutine[Any, Any, T], *, start_s: float = 0.0) -> T:
    """Run `main` to completion on a fresh `VirtualTimeLoop` and close the loop."""
    with asyncio.Runner(loop_factory=lambda: VirtualTimeLoop(start_s)) as runner:
        return runner.run(main)
