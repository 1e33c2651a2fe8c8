"""`--max-credits` reserves the worst case (issue 12, item 3).

A sound effect without `duration_seconds` is estimated at 4 s (5 credits) but
billed for the length the model picks (the sandbox: up to 10 s, 12 credits; the
market's schema: up to 22 s). Reserving the estimate let 50 jobs in flight
overrun the budget 2.4x. The sandbox's own credit counter is the judge.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.engine.budget import Budget
from runner.engine.retry import JobOutcome
from runner.manifest.load import load_pipeline
from runner.plan.pricing import DEFAULT_PRICES, estimate, worst_case
from runner.sandbox import SandboxServer
from tests.engine.helpers import run, stats, write_manifest

# 25+ words: the sandbox makes a 10 s sound of it and bills ceil(1.2 x 10) = 12.
PROMPT = ("A long and winding description of a heavy wooden cart rolling slowly over wet "
          "cobblestones in a quiet medieval town at dawn while distant church bells ring "
          "and a dog barks twice")


def long_sfx(folder: Path, count: int, limits: str = "max_in_flight: 50") -> Path:
    manifest = write_manifest(folder, f"""
        - id: cart_{{n}}
          matrix: {{n: [{', '.join(map(str, range(count)))}]}}
          model: elevenlabs/sound-effect-v2
          input: {{text: "{PROMPT} {{n}}"}}
    """)
    text = manifest.read_text().replace(
        "requests_per_window: 200, window_s: 1, polls_per_s: 500",
        f"requests_per_window: 200, window_s: 1, polls_per_s: 500, {limits}", 1)
    manifest.write_text(text)
    return manifest


def test_fifty_jobs_in_flight_with_low_estimates_never_spend_past_the_budget(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = long_sfx(tmp_path, 50)
    code, plan, result, tally = run(manifest, sandbox.url, max_credits=100)
    assert {p.cost for p in plan.jobs} == {5.0}  # the estimate: 4 s assumed
    spent = stats(sandbox.url)["credits_used"]["total"]
    print(f"\n50 jobs estimated at 5, billed 12, --max-credits 100: {spent:g} spent "
          f"({sum(o is JobOutcome.DONE for o in result.outcomes.values())} done)")
    assert spent <= 100, spent
    done = [j for j, o in result.outcomes.items() if o is JobOutcome.DONE]
    assert len(done) >= 5  # the budget was used, not refused up front
    assert spent == 12 * len(done)  # each billed 12 (10 s), as the sandbox says
    assert code == ExitCode.JOBS_FAILED
    # The message names the budget that stopped the run and what was spent.
    assert tally.budget_stop is not None and "--max-credits 100" in tally.budget_stop
    assert f"{spent:g} spent" in tally.budget_stop
    skipped = [f for f in tally.failures if result.outcomes[f.job_id] is JobOutcome.SKIPPED]
    assert len(skipped) == 50 - len(done)
    assert all("may cost up to 27 (estimated 5)" in f.reason for f in skipped)


def test_a_job_whose_cost_cannot_be_known_is_not_sent_under_a_budget(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, """
        - id: words
          model: elevenlabs/speech-to-text
          audio: https://example.com/talk.mp3
    """)
    _code, _plan, result, tally = run(manifest, sandbox.url, max_credits=1000)
    assert result.outcomes["words"] is JobOutcome.SKIPPED
    assert "the most this job can cost is unknown" in tally.failures[0].reason
    assert stats(sandbox.url)["tasks"]["total"] == 0


def test_worst_cases(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_manifest(tmp_path, f"""
        - id: auto
          model: elevenlabs/sound-effect-v2
          input: {{text: "{PROMPT}"}}
        - id: timed
          model: elevenlabs/sound-effect-v2
          input: {{text: "Door", duration_seconds: 2}}
        - id: line
          model: elevenlabs/text-to-speech-turbo-2-5
          input: {{text: "{'x' * 1500}"}}
        - id: direct_auto
          model: sound-generation
          input: {{text: "Door"}}
        - id: music
          model: stable-audio
          input: {{prompt: "Calm", steps: 10}}
    """), {})
    jobs = pipeline.jobs
    assert worst_case(jobs["auto"], DEFAULT_PRICES) == 27  # 22 s x 1.2, whole credits
    assert estimate(jobs["auto"], DEFAULT_PRICES) == 5
    assert worst_case(jobs["timed"], DEFAULT_PRICES) == 3  # the duration asked for
    assert worst_case(jobs["line"], DEFAULT_PRICES) == 18  # the characters sent
    assert worst_case(jobs["direct_auto"], DEFAULT_PRICES) == 100  # flat, per the price note
    assert worst_case(jobs["music"], DEFAULT_PRICES) == 2520


def test_a_reservation_waits_for_jobs_in_flight_to_settle() -> None:
    async def scenario() -> list[str]:
        budget = Budget(100)
        seen: list[str] = []
        assert await budget.reserve("a", 60)

        async def second() -> None:
            seen.append(f"b reserved: {await budget.reserve('b', 60)}")

        waiting = asyncio.create_task(second())
        await asyncio.sleep(0)
        seen.append(f"a settles at 20, b waiting: {not waiting.done()}")
        budget.settle("a", 20)  # 20 + 60 fits: b goes
        await waiting
        # 20 spent + 90 can never fit, whatever b costs: refused without waiting.
        seen.append(f"c reserved: {await budget.reserve('c', 90)}")
        budget.close("b")  # b ended holding its reservation: it may have been billed
        seen.append(f"spent {budget.spent:g}")
        return seen

    assert asyncio.run(scenario()) == ["a settles at 20, b waiting: True", "b reserved: True",
                                       "c reserved: False", "spent 80"]


@pytest.mark.parametrize("worst", [None, 101.0])
def test_what_can_never_fit_is_refused_at_once(worst: float | None) -> None:
    async def scenario() -> bool:
        return await Budget(100).reserve("a", worst)

    assert asyncio.run(scenario()) is False
