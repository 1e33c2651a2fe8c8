"""The one retry skeleton: `retrying` sends a request until it succeeds or a decision
ends the job. Submit, poll, download and upload all go through it (runner.engine.job);
only what differs between them is handed in (`Retrying`, `prepare`, `intercept`,
`failed`). Errors become decisions in runner.engine.retry; this module carries them
out: the wait before a retry, lending an in-flight place meanwhile, stopping an
account nobody can reach.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from runner.engine.context import Account, Finish, RunContext
from runner.engine.events import Event, EventKind
from runner.engine.retry import Decision, JobOutcome, Phase, Verdict
from runner.errors import ProviderError, RunnerError, TransportError
from runner.plan.plan import PlannedJob

T = TypeVar("T")
P = TypeVar("P")


async def backoff(ctx: RunContext, account: Account, pj: PlannedJob, decision: Decision,
                  error: RunnerError, *, holds_permit: bool = False,
                  task_id: str | None = None) -> None:
    """Wait before a retry. A job that `holds_permit` (an in-flight place, taken before
    its request) has nothing at the provider while it waits, so it lends its place to
    another job meanwhile: after a burst of 429s, dozens of jobs backing off would
    otherwise hold the places the recovered rate needs (bench_429)."""
    ctx.emit(EventKind.RETRY, pj, task_id=task_id, message=str(error),
             delay_s=round(decision.delay_s, 3))
    lent = account.limiter.in_flight.lent() if holds_permit else contextlib.nullcontext()
    async with lent:
        if decision.spend_budget:  # a failing provider is not hammered (runner.engine.limits)
            await account.limiter.retry_budget.spend()
        await ctx.sleep(decision.delay_s)


def stop_account(ctx: RunContext, account: Account, error: RunnerError) -> None:
    if account.stopped is None:
        account.stopped = str(error)
        ctx.bus.emit(Event(EventKind.ACCOUNT_STOPPED, provider=account.config.name,
                           message=str(error)))


@dataclass(frozen=True, slots=True)
class Retrying:
    """What differs between the requests a job repeats; `retrying` is the one loop.

    `failure` opens the job's message when the request is given up ("upload of a.wav"),
    and `task_id` is named in its retry events and its outcome."""

    phase: Phase
    failure: str = ""
    task_id: str | None = None
    generation: int = 0  # tasks already replaced after failed generations (submit)
    # What counts as a failed attempt. Adapters raise ProviderError; a download's own
    # checks (the size cap, audio that is not what was asked for, the cache) raise other
    # RunnerErrors, and a download may be repeated whatever went wrong.
    errors: tuple[type[RunnerError], ...] = (ProviderError,)
    # Sent before the job has a task (submit, upload): connect failures count toward
    # stopping an account nobody can reach (`reachability`), any answer shows it is
    # reachable, and an account that stops skips the job (nothing was bought; it runs
    # once the account is fixed). A poll or a download serves a task already paid for:
    # it keeps to its own attempts whatever other requests meet (a result URL is often
    # another host), and a stop fails it with the reason; its task stays journaled.
    before_task: bool = False
    # The job holds an in-flight place with nothing at the provider (submit): it lends
    # the place while it backs off. A poll holds one too, but for its task.
    holds_permit: bool = False


async def ready(attempt: int) -> None:
    """`retrying`'s `prepare` for a request that needs nothing first."""


async def retrying(ctx: RunContext, account: Account, pj: PlannedJob, how: Retrying,
                   send: Callable[[P], Awaitable[T]], *,
                   prepare: Callable[[int], Awaitable[P]],
                   intercept: Callable[[RunnerError], Awaitable[bool]] | None = None,
                   failed: Callable[[RunnerError, Decision, P], None] | None = None) -> T:
    """Send one request until it succeeds, or a decision ends the job (`Finish`): the
    retry skeleton of submit, poll, download and upload.

    Each attempt is `prepare(attempt)`, what must hold before the request is sent (the
    account not stopped, the budget reserved, a rate-window slot, the journal written;
    it may end the job), then `send(prepared)`. An error of `how.errors` is offered to
    `intercept` first, for the answers one request reads its own way (a task not visible
    yet, an expired result URL): True sends again at once, the attempt not counted.
    Otherwise the policy decides (with `reachability` before a task), `failed` records
    the failed attempt (the journal; it may end the job), a stopped account or a request
    given up ends the job, and a retry waits (`backoff`) and counts."""
    attempt = 0
    while True:
        prepared = await prepare(attempt)
        sent_at = ctx.clock()
        try:
            value = await send(prepared)
        except how.errors as error:
            if intercept is not None and await intercept(error):
                continue
            decision = ctx.policy.decide(error, how.phase, attempt, how.generation)
            if how.before_task and isinstance(error, ProviderError):
                decision = reachability(ctx, account, error, sent_at, decision)
            if failed is not None:
                failed(error, decision, prepared)
            if decision.verdict is Verdict.STOP_ACCOUNT:
                stop_account(ctx, account, error)
                if how.before_task:
                    said = error.message if isinstance(error, ProviderError) else error
                    why = decision.reason if account.unreachable_since is not None else \
                        f"refused it ({said})"
                    raise Finish(JobOutcome.SKIPPED, f"not run: account "
                                 f"'{account.config.name}' {why}") from error
            if decision.verdict is not Verdict.RETRY:
                raise Finish(JobOutcome.FAILED, f"{how.failure}: {decision.reason}"
                             if how.failure else decision.reason, how.task_id) from error
            await backoff(ctx, account, pj, decision, error, holds_permit=how.holds_permit,
                           task_id=how.task_id)
            attempt += 1
            continue
        if how.before_task:
            account.unreachable_since = None
        return value


def reachability(ctx: RunContext, account: Account, error: ProviderError, sent_at: float,
                 decision: Decision) -> Decision:
    """An account that no request can connect to (a name that does not resolve, a
    connection refused, no network) is stopped after `policy.unreachable_after_s`
    with what was tried, instead of each job retrying for minutes. Any answer
    from the provider, even an error, shows it is reachable."""
    if not isinstance(error, TransportError) or error.request_sent:
        account.unreachable_since = None
        return decision
    if account.unreachable_since is None:
        account.unreachable_since, account.connect_failures = sent_at, 0
    account.connect_failures += 1
    waited_s = ctx.clock() - account.unreachable_since
    window_s = ctx.policy.unreachable_after_s
    if waited_s < window_s:
        if decision.verdict is Verdict.RETRY:
            # The next try comes before the verdict is due. A connection never made
            # hammers nobody: no retry token is spent (tokens queue, and would keep
            # jobs waiting long after the verdict).
            return replace(decision, delay_s=min(decision.delay_s, window_s - waited_s),
                           spend_budget=False)
        return decision
    reason = (f"is unreachable: {account.connect_failures} request(s) to "
              f"{account.config.base_url} over {waited_s:.0f} s could not connect "
              f"(last: {error.message}); check the network and the base URL")
    if account.stopped is None:
        account.stopped = reason
        ctx.bus.emit(Event(EventKind.ACCOUNT_STOPPED, provider=account.config.name,
                           message=reason))
    return Decision(Verdict.STOP_ACCOUNT, 0.0, reason)
