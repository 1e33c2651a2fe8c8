"""The event loop a run's engine runs on."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

# The cyclic garbage collector runs its youngest generation after this many new
# objects instead of Python's 700 (2,000 from 3.13), for the run only. httpx leaves
# one reference cycle per response (the response and its stream point at each
# other), so a run makes cyclic garbage at the pace of its requests; every tenth
# young collection collects the middle generation, and every tenth of those may walk
# the whole heap. A 10,000-job run spent 5.4 s of CPU in the collector at 700 and
# 2.2 s at 10,000 (gc.callbacks), for 3 MB more peak memory (bench/bench_scale.py).
YOUNG_GC_THRESHOLD = 10_000


def run_loop(main: Coroutine[Any, Any, T], env: Mapping[str, str]) -> T:
    """Run the engine on uvloop where it is installed (not on Windows), else on asyncio's
    own loop; RUNNER_LOOP=asyncio chooses asyncio's.

    uvloop's event loop and socket transports are written in C: a 10,000-job run
    spends about a fifth less CPU per job on it (bench/bench_scale.py), most of a
    job's CPU being three HTTP exchanges. Everything the engine uses (signal
    handlers, worker threads, aiohttp) behaves the same on both.
    """
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if env.get("RUNNER_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    finally:
        gc.set_threshold(*thresholds)
