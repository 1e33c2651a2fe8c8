"""Retry decisions: every error class in every phase, and the backoff."""

from __future__ import annotations

import random

import pytest

from runner.engine.retry import (
    DEFAULT_MAX_ATTEMPTS,
    Decision,
    JobOutcome,
    Phase,
    RetryPolicy,
    Verdict,
)
from runner.errors import (
    AccountRefused,
    DownloadError,
    GenerationFailed,
    ManifestError,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    RunnerError,
    StoreError,
    TransportError,
)

R, U, S, F, G = (Verdict.RETRY, Verdict.UNCERTAIN, Verdict.STOP_ACCOUNT, Verdict.FAIL,
                 Verdict.REGENERATE)
PHASES = (Phase.SUBMIT, Phase.GENERATE, Phase.POLL, Phase.DOWNLOAD, Phase.UPLOAD)

# error -> verdict in (submit, generate, poll, download, upload)
TABLE: list[tuple[RunnerError, tuple[Verdict, ...]]] = [
    (TransportError("connection refused", request_sent=False), (R, R, R, R, R)),
    (TransportError("read timeout", request_sent=True), (U, U, R, R, R)),
    (RateLimited("Rate limit exceeded", status=429, code=429), (R, R, R, R, R)),
    (ProviderUnavailable("maintenance", code=455), (R, R, R, R, R)),
    (ProviderUnavailable("server exception", code=500), (R, R, R, R, R)),
    (DownloadError("truncated: 812 of 4096 bytes"), (R, R, R, R, R)),
    (AccountRefused("Unauthorized", status=401), (S, S, S, S, S)),
    (AccountRefused("Insufficient credits", code=402), (S, S, S, S, S)),
    (AccountRefused("You've run out of credits", status=403), (S, S, S, S, S)),
    (RequestRejected("voice not found", status=400), (F, F, F, F, F)),
    (RequestRejected("task not found", code=404), (F, F, F, F, F)),
    (RequestRejected("prompt is required", status=422), (F, F, F, F, F)),
    (RequestRejected("model unsupported", code=505), (F, F, F, F, F)),
    (GenerationFailed("Generation Failed", code=501), (G, G, G, G, G)),
    (ManifestError("no such file"), (F, F, F, F, F)),
    (StoreError("journal locked"), (F, F, F, F, F)),
    (ProviderError("something new"), (F, F, F, F, F)),
]


@pytest.mark.parametrize(("error", "verdicts"), TABLE, ids=lambda v: repr(v)[:50])
def test_every_error_in_every_phase(error: RunnerError, verdicts: tuple[Verdict, ...]) -> None:
    policy = RetryPolicy(random=lambda: 0.5)
    for phase, expected in zip(PHASES, verdicts, strict=True):
        decision = policy.decide(error, phase, attempt=0)
        assert decision.verdict is expected, (phase, decision)
        assert str(error) in decision.reason  # the provider's message reaches the user
        if expected is not Verdict.RETRY:
            assert decision.delay_s == 0.0


def test_budget_is_spent_on_retried_failures_of_billed_requests_only() -> None:
    policy = RetryPolicy(random=lambda: 0.5)
    unavailable = ProviderUnavailable("busy", code=455)
    assert policy.decide(unavailable, Phase.SUBMIT, 0).spend_budget
    assert policy.decide(unavailable, Phase.GENERATE, 0).spend_budget
    assert policy.decide(unavailable, Phase.UPLOAD, 0).spend_budget
    assert not policy.decide(unavailable, Phase.POLL, 0).spend_budget
    assert not policy.decide(unavailable, Phase.DOWNLOAD, 0).spend_budget
    assert not policy.decide(RateLimited("slow"), Phase.SUBMIT, 0).spend_budget


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    top = RetryPolicy(base_delay_s=1.0, max_delay_s=60.0, random=lambda: 0.999999)
    ceilings = [top.backoff_s(attempt) for attempt in range(9)]
    assert ceilings == pytest.approx([1, 2, 4, 8, 16, 32, 60, 60, 60], rel=1e-5)
    assert RetryPolicy(random=lambda: 0.0).backoff_s(5) == 0.0  # full jitter reaches 0
    assert RetryPolicy(random=lambda: 0.25).backoff_s(2) == 1.0  # uniform over [0, 4)
    assert RetryPolicy(random=lambda: 0.5).backoff_s(10_000) == 30.0  # no overflow


def test_backoff_is_never_below_retry_after() -> None:
    policy = RetryPolicy(random=lambda: 0.1)
    limited = RateLimited("slow down", retry_after_s=7.5)
    assert policy.decide(limited, Phase.SUBMIT, attempt=0).delay_s == 7.5
    busy = ProviderUnavailable("maintenance", retry_after_s=120.0)
    assert policy.decide(busy, Phase.POLL, attempt=8).delay_s == 120.0  # above the cap too
    late = RetryPolicy(random=lambda: 0.9).decide(limited, Phase.SUBMIT, attempt=5)
    assert late.delay_s == pytest.approx(0.9 * 32)  # jitter above Retry-After stands


def test_delays_are_spread_not_synchronised() -> None:
    policy = RetryPolicy(random=random.Random(1).random)
    delays = [policy.decide(RateLimited("x"), Phase.SUBMIT, 3).delay_s for _ in range(1000)]
    assert min(delays) < 0.5 and max(delays) > 7.5 and all(0 <= d < 8 for d in delays)


def test_attempts_beyond_the_phase_maximum_fail_with_the_last_reason() -> None:
    policy = RetryPolicy(max_attempts={Phase.SUBMIT: 3, Phase.POLL: 5}, random=lambda: 0.5)
    error = ProviderUnavailable("server exception", provider="kie", job_id="boom", code=500)
    assert policy.decide(error, Phase.SUBMIT, 1).verdict is Verdict.RETRY
    final = policy.decide(error, Phase.SUBMIT, 2)  # the third attempt failed
    assert final.verdict is Verdict.FAIL
    assert final.reason == "kie/boom: server exception [500] (gave up after 3 attempts)"
    assert policy.decide(error, Phase.POLL, 3).verdict is Verdict.RETRY
    assert policy.decide(error, Phase.DOWNLOAD, 0).verdict is Verdict.FAIL  # not listed: 1 try


def test_default_attempts_cover_every_phase() -> None:
    assert set(DEFAULT_MAX_ATTEMPTS) == set(Phase)
    policy = RetryPolicy()
    for phase in Phase:
        last = DEFAULT_MAX_ATTEMPTS[phase]
        error = TransportError("refused", request_sent=False)
        assert policy.decide(error, phase, last - 2).verdict is Verdict.RETRY or last == 1
        assert policy.decide(error, phase, last - 1).verdict is Verdict.FAIL


def test_generation_failures_are_resubmitted_a_configurable_number_of_times() -> None:
    policy = RetryPolicy(generation_retries=2)
    failed = GenerationFailed("Generation Failed", code=501, task_id="t1")
    assert [policy.decide(failed, Phase.POLL, 0, generation_attempt=g).verdict
            for g in range(4)] == [G, G, F, F]
    final = policy.decide(failed, Phase.POLL, 0, generation_attempt=2)
    assert final.reason == "Generation Failed [501] (task t1) (generation failed 3 times)"
    assert RetryPolicy(generation_retries=0).decide(failed, Phase.POLL, 0).verdict is F


def test_uncertain_reason_says_the_task_may_exist() -> None:
    error = TransportError("timed out after sending", request_sent=True, provider="kie")
    decision = RetryPolicy().decide(error, Phase.SUBMIT, 0)
    assert decision == Decision(Verdict.UNCERTAIN, 0.0,
                                "kie: timed out after sending; the task may have been created")


def test_outcomes_and_verdicts_are_named_strings() -> None:
    assert [o.value for o in JobOutcome] == [
        "done", "cached", "failed", "skipped", "uncertain", "interrupted"]
    assert {v.value for v in Verdict} == {
        "retry", "uncertain", "stop_account", "fail", "regenerate"}
    assert Phase("generate") is Phase.GENERATE
