"""The one place where an error becomes a decision: retry, stop, fail or resubmit.

Adapters raise the `ProviderError` that says what an answer means
(runner.errors), and the engine asks `RetryPolicy.decide` what to do next.
Nothing else retries. The HTTP client's transport retries nothing, because
only this policy knows whether repeating a request can cost money twice.

    error                                 submit / generate       poll / download / upload
    TransportError(request_sent=False)    retry                   retry
    TransportError(request_sent=True)     uncertain               retry
    RateLimited, ProviderUnavailable      retry, >= Retry-After   retry, >= Retry-After
    DownloadRefused (scheme, address)     fail                    fail
    DownloadError                         retry                   retry
    AccountRefused                        stop_account            stop_account
    RequestRejected                       fail                    fail
    GenerationFailed                      regenerate, then fail   regenerate, then fail
    anything else                         fail                    fail

An uncertain submission is never blindly repeated. The task may exist and be
billed, so the engine must first find out. Polls, downloads and uploads are
safe to repeat. A retry past the phase's `max_attempts` fails the job with the
last reason. Delays are capped exponential backoff with full jitter (AWS
"Exponential Backoff and Jitter"). They are never shorter than the provider's
Retry-After.

Every job attempt ends in exactly one `JobOutcome`. The engine records,
counts and logs it once, and builds the end-of-run summary from those counts.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from runner.errors import (
    AccountRefused,
    DownloadError,
    DownloadRefused,
    GenerationFailed,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    RunnerError,
    TransportError,
)


class Phase(StrEnum):
    SUBMIT = "submit"  # createTask / POST /v2/generate/audio: creates a billed task
    POLL = "poll"
    DOWNLOAD = "download"
    UPLOAD = "upload"  # a local file sent for transcription
    GENERATE = "generate"  # synchronous ElevenLabs call that returns the audio: billed


class Verdict(StrEnum):
    RETRY = "retry"  # repeat the same request after `delay_s`
    UNCERTAIN = "uncertain"  # it may have been done: find out, never blindly repeat
    STOP_ACCOUNT = "stop_account"  # no new submissions to this account; collect what runs
    FAIL = "fail"  # this job fails with `reason`
    REGENERATE = "regenerate"  # the task ran and failed: submit a new one


class JobOutcome(StrEnum):
    """How one attempt at a job ended; each is counted once for the summary."""

    DONE = "done"  # generated and stored
    CACHED = "cached"  # already in the cache: nothing sent
    FAILED = "failed"
    SKIPPED = "skipped"  # not attempted (upstream failed, account stopped, budget)
    UNCERTAIN = "uncertain"  # a submission whose fate is unknown; resolved on resume
    INTERRUPTED = "interrupted"  # the run stopped first; the journal resumes it


# Phases whose request creates billed work: a lost answer makes them uncertain.
BILLED_PHASES = frozenset({Phase.SUBMIT, Phase.GENERATE})

DEFAULT_MAX_ATTEMPTS: Mapping[Phase, int] = MappingProxyType({
    Phase.SUBMIT: 10,  # nothing was created when these are retried; ~10 min at the cap
    Phase.GENERATE: 10,
    Phase.POLL: 20,  # consecutive failed polls of one task; free to repeat
    Phase.DOWNLOAD: 6,
    Phase.UPLOAD: 6,
})


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an error. `delay_s` is for `retry` only. `spend_budget`
    says the retry must first take a token from the account's `RetryBudget`:
    true for retried failures of billed or upload requests, false for 429s
    (the rate window paces those) and for polls and downloads."""

    verdict: Verdict
    delay_s: float
    reason: str
    spend_budget: bool = False


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Error classification and backoff. `random` returns a float in [0, 1)
    (injected so tests can pin the jitter)."""

    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_attempts: Mapping[Phase, int] = field(default_factory=lambda: DEFAULT_MAX_ATTEMPTS)
    generation_retries: int = 2
    random: Callable[[], float] = _random.random
    # An account whose every request fails to connect for this long is stopped and
    # reported unreachable (runner.engine.attempts.reachability), and the run ends within
    # 30 s (jobs waiting for the rate window then see it), not after minutes.
    unreachable_after_s: float = 20.0

    def decide(self, error: RunnerError, phase: Phase, attempt: int,
               generation_attempt: int = 0) -> Decision:
        """`attempt` is the failed attempt's index: 0 when the first try failed, 1
        when the first retry did. `generation_attempt` counts the tasks already
        resubmitted after a failed generation."""
        reason = str(error)
        match error:
            case TransportError(request_sent=True) if phase in BILLED_PHASES:
                return Decision(Verdict.UNCERTAIN, 0.0,
                                f"{reason}; the task may have been created")
            case AccountRefused():
                return Decision(Verdict.STOP_ACCOUNT, 0.0, reason)
            case RequestRejected() | DownloadRefused():
                return Decision(Verdict.FAIL, 0.0, reason)
            case GenerationFailed():
                if generation_attempt < self.generation_retries:
                    return Decision(Verdict.REGENERATE, 0.0, reason)
                tries = generation_attempt + 1
                return Decision(Verdict.FAIL, 0.0,
                                f"{reason} (generation failed {tries} time{'s' * (tries > 1)})")
            case TransportError() | RateLimited() | ProviderUnavailable() | DownloadError():
                return self._retry(error, reason, phase, attempt)
            case _:
                return Decision(Verdict.FAIL, 0.0, reason)

    def backoff_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)], but never below
        the provider's Retry-After."""
        exponent = min(max(attempt, 0), 62)  # 2**62 s is past any cap; no overflow
        ceiling_s = min(self.max_delay_s, self.base_delay_s * 2.0 ** exponent)
        delay_s = self.random() * ceiling_s
        return max(delay_s, retry_after_s or 0.0)

    def _retry(self, error: RunnerError, reason: str, phase: Phase, attempt: int) -> Decision:
        made = attempt + 1
        if made >= self.max_attempts.get(phase, 1):
            return Decision(Verdict.FAIL, 0.0,
                            f"{reason} (gave up after {made} attempt{'s' * (made > 1)})")
        retry_after_s = error.retry_after_s if isinstance(error, ProviderError) else None
        spend = (not isinstance(error, RateLimited)
                 and phase in (Phase.SUBMIT, Phase.GENERATE, Phase.UPLOAD))
        return Decision(Verdict.RETRY, self.backoff_s(attempt, retry_after_s), reason, spend)
