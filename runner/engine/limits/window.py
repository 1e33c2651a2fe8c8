"""The sliding window that paces one account's requests, adapting to 429s.

The window counts requests the way the provider does. The provider counts a
request when it handles it, somewhere between our send and its answer, so a
slot is reserved before sending (`acquire`) and keeps counting until
`window_s` after the answer arrived (`Slot.answered`). Unanswered slots count
too. Whatever the network delays, N slots in our window bound the provider's
count in any of its windows, with no safety margin. A request that certainly
never left (`Slot.unsent`) frees its slot at once.

Adaptive control. Slow start applies only when no limit is configured. The
effective limit L starts at `initial_limit` and rises by one per accepted
answer. That doubles L each window, and bursts straight to the provider's limit
when answers are instant, which a sliding window allows. A 429 proves L too
high. The provider has just accepted the K requests answered OK in our window
and refused one more, so K is its limit: L becomes min(L - 1, K). K is
remembered as good and the refused L as the ceiling. Below good, L climbs by
one per L/4 accepted answers (quick recovery). From there up, probing costs a
full accepted window per step. That cost doubles (up to 16x) each time a probe
is refused at or below the last ceiling, so a steady limit costs a logarithmic
number of 429s. Only the first 429 of each epoch (the requests sent since the
last decrease) lowers L: a batch of refusals already in flight is one signal,
not many. A Retry-After pauses every acquirer until then, and it lowers L by
at most half, because it says when to come back, not how many.

A configured (published) limit is never exceeded: it is where L starts and the
highest it goes. A 429 under it does not mean "too fast": another client on the
same key, a per-key cap below the published one, or noise. Reading every such
429 as the discovery above does made 2% of stray 429s cost 15x the makespan,
and L came back one step per window (issue 12). So, with a configured limit:
the most the provider accepted in our window during the last one or two
windows is "proven". A 429 below the proven level is stray: L goes one step
down, and each answer brings it back up to the proven level (plus room for the
refused requests still counting in our window). A 429 at the proven level says
the key's share is that now: L goes to it (halving if nothing was accepted yet), and stays
there a window before probing above it, one request at a time, each accepted
answer at a new level opening the next. A steady lower cap then costs about one
429 per window; once the 429s stop, the rate doubles each window and is back at
the configured limit within two (tests/engine/test_limits.py, bench/bench_429.py).

Discovery learns the count for the given `window_s`. The window length is
assumed right, and every provider that publishes a limit publishes it. If it
is too long, the runner stays safe but slow: it reaches N per window_s. If it
is too short, 429s keep coming even at one request per window, so the window
is doubled, up to 64 times. That bounds the hammering, but it costs more 429s
than a right window does. In the tests, with a window 10 or 60 times too short,
about 20% of requests are refused, and the run reaches 60-75% of the true rate.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from types import TracebackType
from typing import Self

from runner.engine.limits.gate import Clock, Gate, Sleep
from runner.errors import ConcurrencyLimited, RateLimited, TransportError

DISCOVERY_START = 4  # slots in the first window when the provider's limit is unknown
MAX_PROBE_WINDOWS = 16  # refused probes back off to one attempt per 16 good windows
MAX_WINDOW_SCALE = 64  # 1 request per 64 windows: the slowest a refused account goes
class _Outcome(Enum):
    OK = "ok"
    RATE_LIMITED = "rate_limited"
    CONCURRENCY_LIMITED = "concurrency_limited"
    UNSENT = "unsent"


class BaseSlot:
    """A reserved request, resolved exactly once (later calls are ignored) by one of
    `answered`, `rate_limited`, `concurrency_limited` or `unsent`.

    As a context manager (`with await window.acquire() as slot:`) it resolves
    itself from how the block ended: normally → answered; `ConcurrencyLimited`
    → concurrency limited; another `RateLimited` → rate limited;
    `TransportError(request_sent=False)` → unsent; anything else, cancellation
    included, → answered, because the request may have been counted.
    """

    __slots__ = ()

    def answered(self) -> None:
        raise NotImplementedError

    def rate_limited(self, retry_after_s: float | None = None) -> None:
        raise NotImplementedError

    def concurrency_limited(self) -> None:
        raise NotImplementedError

    def unsent(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, ConcurrencyLimited):  # the adapter read the provider's wording
            self.concurrency_limited()
        elif isinstance(exc, RateLimited):
            self.rate_limited(exc.retry_after_s)
        elif isinstance(exc, TransportError) and not exc.request_sent:
            self.unsent()
        else:
            self.answered()


class Slot(BaseSlot):
    """One reserved request in a `SlidingWindow` (see `BaseSlot`)."""

    __slots__ = ("_open", "_window", "epoch")

    def __init__(self, window: SlidingWindow, epoch: int) -> None:
        self._window = window
        self.epoch = epoch
        self._open = True

    def answered(self) -> None:
        """The provider answered with anything but a 429: it counted the request."""
        self._close(_Outcome.OK, None)

    def rate_limited(self, retry_after_s: float | None = None) -> None:
        """The provider refused the request as too fast (429)."""
        self._close(_Outcome.RATE_LIMITED, retry_after_s)

    def concurrency_limited(self) -> None:
        """The provider refused it for too many tasks at once: not a rate signal."""
        self._close(_Outcome.CONCURRENCY_LIMITED, None)

    def unsent(self) -> None:
        """The request certainly never reached the provider: free the slot now."""
        self._close(_Outcome.UNSENT, None)

    def _close(self, outcome: _Outcome, retry_after_s: float | None) -> None:
        if self._open:
            self._open = False
            self._window._resolve(self, outcome, retry_after_s)


@dataclass(slots=True)
class WindowCounters:
    """Running totals for the progress display and the summary."""

    submitted: int = 0  # slots handed out
    answered: int = 0  # answered without a 429
    rate_limited: int = 0
    concurrency_limited: int = 0
    unsent: int = 0
    paused_s: float = 0.0  # time all acquirers were held by Retry-After


class SlidingWindow(Gate):
    """At most `effective_limit` requests in any `window_s`, as the provider counts them.

    `limit=None` with `adaptive=True` discovers the limit (module docstring);
    `limit=None, adaptive=False` never limits (a Retry-After still pauses).
    """

    def __init__(self, limit: int | None, window_s: float, *, adaptive: bool = True,
                 initial_limit: int = DISCOVERY_START, clock: Clock | None = None,
                 sleep: Sleep | None = None,
                 on_concurrency_limited: Callable[[], None] | None = None) -> None:
        if window_s <= 0 or (limit is not None and limit < 1) or initial_limit < 1:
            raise ValueError(f"bad window: limit={limit!r}, window_s={window_s!r}")
        super().__init__(clock, sleep)
        self.limit = limit
        self.window_s = window_s
        self.adaptive = adaptive
        self.counters = WindowCounters()
        self._on_concurrency_limited = on_concurrency_limited
        discovering = limit is None and adaptive
        self._effective: int | None = initial_limit if discovering else limit
        self._slow_start = discovering
        self._answered: deque[tuple[float, bool]] = deque()  # (answer time, accepted), in order
        self._ok_in_window = 0  # accepted entries of _answered
        self._pending = 0  # slots handed out, not yet resolved
        self._pause_until = -math.inf
        self._epoch = 0
        self._good: int | None = None  # what the provider accepted when it last refused
        self._ceiling: int | None = None  # the last level refused with a 429
        self._probe_windows = 1
        self._ok_run = 0
        self._scale = 1  # window_s multiplier, > 1 once refused at 1 request per window
        # A configured limit (`_accepted_configured`, `_refused_configured`): the most
        # the provider accepted in one window lately, when, and no probing above it
        # before `_hold_until`.
        self._proven = 0
        self._period = -1  # which window-long period of time `_max_now` covers
        self._max_now = 0  # the most accepted in our window during that period
        self._max_before = 0  # ... and during the period before it
        self._hold_until = -math.inf

    @property
    def effective_limit(self) -> int | None:
        return self._effective

    @property
    def effective_window_s(self) -> float:
        return self.window_s * self._scale

    @property
    def occupied(self) -> int:
        """Slots counting against the window now (answered within it, or unanswered)."""
        self._prune(self._clock())
        return len(self._answered) + self._pending

    async def acquire(self) -> Slot:
        """Wait (FIFO) for room in the window and reserve a slot for one request."""
        await self._enter()
        return Slot(self, self._epoch)

    def pause(self, duration_s: float) -> None:
        """Hold every acquirer for `duration_s` from now (a Retry-After)."""
        now = self._clock()
        until = now + duration_s
        if until > self._pause_until:
            self.counters.paused_s += until - max(now, self._pause_until)
            self._pause_until = until

    def _delay_s(self, now: float) -> float:
        wait_s = self._pause_until - now
        limit = self._effective
        if limit is not None:
            self._prune(now)
            # Taking one more needs `excess + 1` entries gone; unanswered ones
            # leave only when answered, answered ones in expiry order.
            excess = len(self._answered) + self._pending - limit
            if excess >= 0:
                if excess >= len(self._answered):
                    return math.inf
                expiry_s = self._answered[excess][0] + self.window_s * self._scale
                wait_s = max(wait_s, expiry_s - now)
        return max(0.0, wait_s)

    def _take(self, now: float) -> None:
        self._pending += 1
        self.counters.submitted += 1

    def _untake(self) -> None:
        self._pending -= 1
        self.counters.submitted -= 1

    def _prune(self, now: float) -> None:
        answered, window_s = self._answered, self.window_s * self._scale
        while answered and answered[0][0] + window_s <= now:
            if answered.popleft()[1]:
                self._ok_in_window -= 1

    def _resolve(self, slot: Slot, outcome: _Outcome, retry_after_s: float | None) -> None:
        self._pending -= 1
        now = self._clock()
        self._prune(now)
        counters = self.counters
        if outcome is _Outcome.UNSENT:
            counters.unsent += 1
        else:
            accepted = outcome is _Outcome.OK
            self._answered.append((now, accepted))
            if accepted:
                self._ok_in_window += 1
                counters.answered += 1
                self._accepted()
            elif outcome is _Outcome.RATE_LIMITED:
                counters.rate_limited += 1
                if retry_after_s is not None and retry_after_s > 0:
                    self.pause(retry_after_s)
                self._refused(slot, retry_after_s)
            else:
                counters.concurrency_limited += 1
                if self._on_concurrency_limited is not None:
                    self._on_concurrency_limited()
        self._notify()

    def _accepted(self) -> None:
        limit = self._effective
        if not self.adaptive or limit is None:
            return
        if self.limit is not None:
            self._accepted_configured(limit)
            return
        self._ok_run += 1
        if self._slow_start:
            needed = 1
        elif self._good is not None and limit < self._good:
            needed = max(1, limit // 4)  # back up to what the provider last accepted
        else:
            needed = limit * self._probe_windows  # probing: a full window per step
        if self._ok_run < needed or (self.limit is not None and limit >= self.limit):
            return
        self._ok_run = 0
        if self._ceiling is not None and limit >= self._ceiling:
            self._ceiling = None  # a full window at the refused level: the limit rose
            self._probe_windows = 1
        if self._scale > 1 and limit + 1 == 4:
            # 4 per scaled window -> 2 per half of it: the same rate, smaller bursts.
            self._effective, self._scale = 2, self._scale // 2
            self._good = None if self._good is None else -(-self._good // 2)
            self._ceiling = None if self._ceiling is None else -(-self._ceiling // 2)
        else:
            self._effective = limit + 1

    def _accepted_configured(self, limit: int) -> None:
        now = self._clock()
        self._prove(now)
        assert self.limit is not None
        if limit >= self.limit:
            return
        # Refused requests keep their place in our window for a window (the provider
        # may count them): making up what it accepted lately means room for them too.
        refused_now = len(self._answered) - self._ok_in_window
        if limit < self._proven + refused_now:
            # Back to what the provider accepted lately: one more per answer.
            self._effective = limit + 1
        elif now >= self._hold_until:
            # Above it, one request at a time: each answer accepted at a new level
            # proves it (`_prove`) and opens the next. With demand waiting that still
            # doubles the rate each window, and a steady cap refuses one probe only.
            self._effective = min(self.limit, max(limit, self._proven + 1))

    def _prove(self, now: float) -> None:
        """`_proven`: the most the provider accepted in our window during this
        window-long period of time and the one before (older proof lapses: a cap that
        came up since must not be taken for noise for long)."""
        period = int(now // self.window_s)
        if period != self._period:
            self._max_before = self._max_now if period == self._period + 1 else 0
            self._max_now, self._period = 0, period
        self._max_now = max(self._max_now, self._ok_in_window)
        self._proven = max(self._max_before, self._max_now)

    def _refused_configured(self, limit: int, retry_after_s: float | None) -> None:
        """A 429 although the published limit was kept: not "too fast" but another
        client on the key, a per-key cap, or noise (module docstring)."""
        now = self._clock()
        self._prove(now)
        accepted = self._ok_in_window
        if retry_after_s:
            # It said when to come back (the pause), not how many: at most halve.
            self._effective = max(1, min(limit - 1, max(accepted, limit // 2)))
            self._hold_until = now + self.window_s
        elif accepted < self._proven:
            # Refused below what it accepted within two windows: a stray 429. One step
            # down; answers bring it back at once.
            self._effective = max(1, limit - 1)
        else:
            # Refused at the most it has accepted lately: the key's share is that now
            # (a refusal before anything was accepted says less: halve). Stay there a
            # window before probing above it again, so a steady cap costs about one 429
            # per window, and a lifted one is left within two.
            self._effective = max(1, min(limit - 1, accepted or limit // 2))
            self._hold_until = now + self.window_s
        self._epoch += 1

    def _refused(self, slot: Slot, retry_after_s: float | None) -> None:
        limit = self._effective
        if not self.adaptive or limit is None or slot.epoch != self._epoch:
            return
        if self.limit is not None:
            self._refused_configured(limit, retry_after_s)
            return
        accepted = self._ok_in_window
        if retry_after_s:
            # The provider said when to come back (the pause), not how many it takes:
            # an empty window here says nothing about the count, so at most halve.
            accepted = max(accepted, limit // 2)
        if limit == 1 and not retry_after_s and self._scale < MAX_WINDOW_SCALE:
            # Refused at one request per window: the provider's window is longer than
            # ours. Entries already pruned from the shorter window are forgotten, so
            # this can cost one more 429 before the longer window has filled.
            self._scale *= 2
            self._ceiling, self._good = 2, None  # 2 per doubled window was just refused
        else:
            if self._ceiling is not None and limit <= self._ceiling:
                # Refused again at or below the last refused level: the limit is
                # steady, so probe above it half as often.
                self._probe_windows = min(2 * self._probe_windows, MAX_PROBE_WINDOWS)
            self._ceiling, self._good = limit, self._ok_in_window or None
        self._effective = max(1, min(limit - 1, accepted))
        self._slow_start = False
        self._ok_run = 0
        self._epoch += 1
