"""`runner.engine.loop.run_loop`: the run's garbage-collector setting, and only the run's."""

from __future__ import annotations

import gc

import pytest

from runner.engine.loop import YOUNG_GC_THRESHOLD, run_loop


@pytest.mark.parametrize("env", [{}, {"RUNNER_LOOP": "asyncio"}], ids=["uvloop", "asyncio"])
def test_the_young_gc_threshold_holds_for_the_run_and_is_given_back(
        env: dict[str, str]) -> None:
    before = gc.get_threshold()
    assert before[0] != YOUNG_GC_THRESHOLD

    async def seen() -> tuple[int, ...]:
        return gc.get_threshold()

    assert run_loop(seen(), env) == (YOUNG_GC_THRESHOLD, *before[1:])
    assert gc.get_threshold() == before

    async def fails() -> None:
        raise ValueError("the run failed")

    with pytest.raises(ValueError, match="the run failed"):
        run_loop(fails(), env)
    assert gc.get_threshold() == before
