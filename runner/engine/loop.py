"""The event loop a run's engine runs on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


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
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
