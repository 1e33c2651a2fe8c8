"""One job against its provider: submit (or resume), wait, fetch, store.

The order of every step is the rule the design rests on: the journal records
a request before it is sent and its answer before anything else happens, so a
crash at any moment leaves a journal from which the next run continues without
sending the same request twice. Errors become decisions in one place
(`runner.retry.RetryPolicy`); this module only carries them out.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from runner import download
from runner.accounts import ProviderAccount
from runner.audioformat import FormatSpec
from runner.budget import Budget
from runner.errors import (
    GenerationFailed,
    ProviderError,
    RequestRejected,
    RunnerError,
    TransportError,
)
from runner.events import Bus, Event, EventKind
from runner.expand import extension_for
from runner.layout import BuildLayout
from runner.manifest import AudioKind
from runner.models import Kind
from runner.plan import PlannedJob
from runner.providers.base import Adapter, Request, TaskResult, TaskState, TaskStatus
from runner.results import iso, json_blob
from runner.retry import Decision, JobOutcome, Phase, RetryPolicy, Verdict
from runner.store.cache import ContentCache
from runner.store.journal import AssetRow, Journal, TaskRowState

if TYPE_CHECKING:
    from runner.limits import Slot
    from runner.team.claims import Claims
    from runner.team.remote_cache import RemoteCache

# An upstream job's result URL is used directly by a transcription job when it
# is younger than this (kie result URLs "typically expire after 24 hours").
FRESH_RESULT_URL_S = 20 * 3600.0


class Finish(Exception):
    """Ends a job with its one outcome (control flow inside the engine, not an error)."""

    def __init__(self, outcome: JobOutcome, message: str, task_id: str | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.task_id = task_id


class LatencyEstimate:
    """How long this account's tasks take (EWMA): the first poll goes when the
    result is likely ready instead of on a fixed schedule.

    Until the first task finishes nothing is known, and every task of the first
    wave would sleep the provider's initial interval (2 s on the market API). So
    one task, the prober, polls quickly (0.1 s, growing) while the others wait for
    what it learns; polls stay at about one per task.
    """

    def __init__(self) -> None:
        self.mean_s: float | None = None
        self.spread_s = 0.0  # EWMA of |observed - mean|: how much to wait beyond the mean
        self.probing = False
        self._learned: asyncio.Event | None = None

    def observe(self, seconds: float) -> None:
        if self.mean_s is None:
            self.mean_s = seconds
        else:
            self.spread_s = 0.8 * self.spread_s + 0.2 * abs(seconds - self.mean_s)
            self.mean_s = 0.8 * self.mean_s + 0.2 * seconds
        if self._learned is not None:
            self._learned.set()

    async def learned_within(self, timeout_s: float) -> bool:
        """Wait until a first latency is known, at most `timeout_s`; True if it is."""
        if self.mean_s is not None:
            return True
        if self._learned is None:
            self._learned = asyncio.Event()
        try:
            await asyncio.wait_for(self._learned.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


@dataclass
class Account:
    """A provider account at run time: its adapter and limiter, shared by all its jobs."""

    config: ProviderAccount
    adapter: Adapter
    limiter: Any  # runner.limits.AccountLimiter
    latency: LatencyEstimate = field(default_factory=LatencyEstimate)
    stopped: str | None = None  # why no more requests are sent to it
    # Since when every request has failed to connect (None: the last one got an answer).
    unreachable_since: float | None = None
    connect_failures: int = 0


@dataclass
class RunContext:
    client: httpx.AsyncClient
    journal: Journal
    cache: ContentCache
    layout: BuildLayout
    accounts: dict[str, Account]
    policy: RetryPolicy
    budget: Budget
    bus: Bus
    stopping: asyncio.Event
    resubmit_uncertain: set[str] = field(default_factory=set)
    adopt: dict[str, str] = field(default_factory=dict)  # job id -> task id (--adopt-task)
    max_download_bytes: int = download.DEFAULT_MAX_BYTES
    callbacks: Any = None  # runner.callbacks.CallbackHub when callbacks are on
    clock: Callable[[], float] = field(default_factory=lambda: asyncio.get_running_loop().time)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    budget_stopped: bool = False
    # Assets of finished jobs by job id: what dependent jobs (transcriptions) hear.
    assets: dict[str, AssetRow] = field(default_factory=dict)
    # Up-to-date jobs' cache keys: their assets are looked up only if a job needs one.
    locked_keys: dict[str, str] = field(default_factory=dict)
    remote: RemoteCache | None = None  # the team's remote cache, when one is configured
    claims: Claims | None = None  # the team's ledger of requests (RUNNER_COORDINATOR)

    def asset_of(self, job_id: str) -> AssetRow | None:
        """The asset a job holds now: built in this run, or kept from before."""
        asset = self.assets.get(job_id)
        if asset is None and job_id in self.locked_keys:
            asset = self.journal.asset(self.locked_keys[job_id])
            if asset is not None:
                self.assets[job_id] = asset
        return asset

    def emit(self, kind: EventKind, pj: PlannedJob, **fields: Any) -> None:
        self.bus.emit(Event(kind, pj.job.id, pj.job.provider, **fields))


def job_spec(pj: PlannedJob) -> FormatSpec | None:
    return None if pj.job.model.kind is Kind.TRANSCRIPT else FormatSpec.parse(pj.job.format)


def job_ext(pj: PlannedJob) -> str:
    return extension_for(pj.job.format)


async def produce(ctx: RunContext, pj: PlannedJob, request: Request) -> AssetRow:
    """Get the job's asset into the cache and the journal, resuming what a previous run began."""
    account = ctx.accounts[pj.job.provider]
    if pj.job.id in ctx.adopt:
        _adopt(ctx, account, pj, ctx.adopt[pj.job.id])
    seen = ctx.journal.has_tasks(pj.key)  # most jobs of a run are new: no lookups then
    live = ctx.journal.live_task(pj.key) if seen else None
    if live is not None and live.state in (TaskRowState.SUBMITTING, TaskRowState.UNCERTAIN):
        if pj.job.id not in ctx.resubmit_uncertain and "*" not in ctx.resubmit_uncertain:
            raise Finish(JobOutcome.UNCERTAIN, uncertain_message(pj, live.created_at),
                         live.task_id)
        ctx.journal.set_task(live.id, TaskRowState.ABANDONED,
                             error="resubmitted on request (--resubmit-uncertain)")
        live = None
    if live is not None and account.adapter.synchronous:
        # A synchronous answer cut off after the request id: the audio is lost.
        ctx.journal.set_task(live.id, TaskRowState.UNCERTAIN, error="answer cut off")
        raise Finish(JobOutcome.UNCERTAIN, uncertain_message(pj, live.created_at), live.task_id)
    if live is not None and live.state is TaskRowState.SUCCEEDED and live.result:
        result = TaskResult(live.task_id or "", tuple(live.result.get("urls", ())),
                            live.result.get("payload"), live.result.get("credits"))
        return await store(ctx, account, pj, result, live.id)
    if account.adapter.synchronous:
        return await generate_sync(ctx, account, pj, request)
    generation = ctx.journal.failed_generations(pj.key) if seen else 0
    while True:
        async with account.limiter.in_flight:
            if live is not None and live.task_id:
                row_id, task_id = live.id, live.task_id
                live = None
            else:
                row_id, task_id = await submit(ctx, account, pj, request, generation)
            status = await wait_for(ctx, account, pj, task_id, row_id)
        if status.state is TaskState.SUCCEEDED and status.result is not None:
            # Not journaled until stored: if the run dies while downloading, the task is
            # still `submitted` and the next run polls it again (polls cost nothing).
            result = status.result
            ctx.emit(EventKind.SUCCEEDED, pj, task_id=task_id, credits=result.credits)
            return await store(ctx, account, pj, result, row_id)
        reason = f"generation failed: {status.fail_code or ''} {status.fail_message or ''}".strip()
        ctx.journal.set_task(row_id, TaskRowState.FAILED, error=reason)
        error = GenerationFailed(reason, provider=account.config.name, job_id=pj.job.id,
                                 task_id=task_id)
        decision = ctx.policy.decide(error, Phase.POLL, 0, generation)
        if decision.verdict is not Verdict.REGENERATE:
            raise Finish(JobOutcome.FAILED, reason, task_id)
        generation += 1
        ctx.emit(EventKind.RETRY, pj, task_id=task_id, message=f"{reason}; new task",
                 delay_s=0.0)


def _adopt(ctx: RunContext, account: Account, pj: PlannedJob, task_id: str) -> None:
    """`--adopt-task JOB=TASK`: a person found the task of an unanswered request in the
    provider's log; collect it instead of sending the request again."""
    if account.adapter.synchronous:
        raise Finish(JobOutcome.FAILED, f"--adopt-task: {account.config.name} answers at once; "
                     "it has no task to collect")
    live = ctx.journal.live_task(pj.key) if ctx.journal.has_tasks(pj.key) else None
    if live is not None and live.state is TaskRowState.SUBMITTED and live.task_id != task_id:
        raise Finish(JobOutcome.FAILED, f"--adopt-task: the journal already holds task "
                     f"{live.task_id} for this job", live.task_id)
    row_id = live.id if live is not None else ctx.journal.begin_submit(
        pj.key, pj.job.id, account.config.name, 0)
    ctx.journal.set_task(row_id, TaskRowState.SUBMITTED, task_id=task_id,
                         error="adopted on request (--adopt-task)")


def uncertain_message(pj: PlannedJob, sent_at: float) -> str:
    return (f"a request for this job was sent at {iso(sent_at)} but its answer was never "
            "recorded, so the provider may have created (and billed) a task. Check the "
            "provider's task log: if the task is there, run with --adopt-task "
            f"{pj.job.id}=TASK_ID to collect it; if not, with --resubmit-uncertain {pj.job.id} "
            "to send it again")


def _result_json(result: TaskResult) -> dict[str, Any]:
    return {"urls": list(result.urls), "payload": result.payload, "credits": result.credits}


async def _backoff(ctx: RunContext, account: Account, pj: PlannedJob, decision: Decision,
                   error: RunnerError) -> None:
    ctx.emit(EventKind.RETRY, pj, message=str(error), delay_s=round(decision.delay_s, 3))
    if decision.spend_budget:  # a failing provider is not hammered (runner.limits)
        await account.limiter.retry_budget.spend()
    await ctx.sleep(decision.delay_s)


def _stop_account(ctx: RunContext, account: Account, error: ProviderError) -> None:
    if account.stopped is None:
        account.stopped = str(error)
        ctx.bus.emit(Event(EventKind.ACCOUNT_STOPPED, provider=account.config.name,
                           message=str(error)))


def _check_can_submit(ctx: RunContext, account: Account, pj: PlannedJob) -> None:
    if account.stopped is not None:
        raise Finish(JobOutcome.SKIPPED, f"not submitted: account '{account.config.name}' was "
                                         f"stopped ({account.stopped})")
    if ctx.stopping.is_set():
        raise Finish(JobOutcome.INTERRUPTED, "not submitted: the run was interrupted")


async def _send(ctx: RunContext, account: Account, pj: PlannedJob, generation: int,
                call: Callable[[], Awaitable[Any]]) -> tuple[int, Any]:
    """Send one generation request through the account's window, journaled first.

    Returns (journal row id, the adapter's answer). Decides retries here.
    """
    attempt = 0
    while True:
        _check_can_submit(ctx, account, pj)
        if not ctx.budget.reserve(pj.job.id, pj.cost):
            if not ctx.budget_stopped:
                ctx.budget_stopped = True
                ctx.bus.emit(Event(EventKind.BUDGET_STOPPED, message=ctx.budget.describe()))
            raise Finish(JobOutcome.SKIPPED, f"not submitted: {ctx.budget.describe()}; "
                                             f"this job would add {pj.cost or 0:g}")
        slot = await account.limiter.submit.acquire()
        if account.stopped is not None or ctx.stopping.is_set():
            slot.unsent()  # stopped while this job waited for its turn
            ctx.budget.release(pj.job.id)
            _check_can_submit(ctx, account, pj)
        if ctx.claims is not None:
            await _claim_sending(ctx, pj, slot)
        row_id = ctx.journal.begin_submit(pj.key, pj.job.id, account.config.name, generation)
        await ctx.journal.durable()  # journal before network
        sent_at = ctx.clock()
        try:
            with slot:  # resolves the rate window from how the call ended (a 429 or not)
                answer = await call()
        except ProviderError as error:
            phase = Phase.GENERATE if account.adapter.synchronous else Phase.SUBMIT
            decision = reachability(ctx, account, error, sent_at,
                                    ctx.policy.decide(error, phase, attempt, generation))
            if decision.verdict is Verdict.UNCERTAIN:
                ctx.journal.set_task(row_id, TaskRowState.UNCERTAIN, error=str(error))
                raise Finish(JobOutcome.UNCERTAIN, f"{error}: the request may have reached "
                             "the provider and been billed; check the provider's task log, then "
                             f"run with --resubmit-uncertain {pj.job.id} to send it again"
                             ) from error
            ctx.journal.set_task(row_id, TaskRowState.FAILED, error=f"not created: {error}")
            ctx.budget.release(pj.job.id)
            if decision.verdict is Verdict.STOP_ACCOUNT:
                # The job is not at fault: it runs once the account is fixed.
                _stop_account(ctx, account, error)
                why = decision.reason if account.unreachable_since is not None \
                    else f"refused it ({error.message})"
                raise Finish(JobOutcome.SKIPPED, f"not run: account '{account.config.name}' "
                             f"{why}") from error
            if decision.verdict is not Verdict.RETRY:
                raise Finish(JobOutcome.FAILED, decision.reason or str(error)) from error
            await _backoff(ctx, account, pj, decision, error)
            attempt += 1
            continue
        account.limiter.succeeded(was_retry=attempt > 0)
        account.unreachable_since = None
        return row_id, answer


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


async def _claim_sending(ctx: RunContext, pj: PlannedJob, slot: Slot) -> None:
    """The team's ledger before the network, as the journal: the claim says `sending`
    before the request leaves, so that no machine sends it again (runner.team.claims)."""
    assert ctx.claims is not None
    try:
        await ctx.claims.sending(pj)
    except BaseException:
        slot.unsent()  # nothing left: the window's slot and the budget go back
        ctx.budget.release(pj.job.id)
        raise


async def submit(ctx: RunContext, account: Account, pj: PlannedJob, request: Request,
                 generation: int) -> tuple[int, str]:
    row_id, submitted = await _send(ctx, account, pj, generation,
                                    lambda: account.adapter.submit(request))
    ctx.journal.set_task(row_id, TaskRowState.SUBMITTED, task_id=submitted.task_id)
    await ctx.journal.durable()  # the task id is safe before anything else is asked
    if ctx.claims is not None:  # ... and the team's: another machine can collect it
        await ctx.claims.submitted(ctx, pj, str(submitted.task_id))
    ctx.emit(EventKind.SUBMITTED, pj, task_id=submitted.task_id)
    return row_id, str(submitted.task_id)


def poll_delay(elapsed_s: float, expected_s: float | None, account: ProviderAccount,
               jitter: float, spread_s: float = 0.0) -> float:
    """When to look next: just after the expected finish (the mean plus its usual
    spread), then the provider's advice (every few seconds at first, slower
    later), with ±10% jitter."""
    policy = account.poll
    if expected_s is not None:
        first_look_s = expected_s + spread_s + 0.01
        if elapsed_s < first_look_s:
            return max(0.01, first_look_s - elapsed_s)
    if elapsed_s < 30:
        base = policy.initial_interval_s
    elif elapsed_s < 120:
        base = min(policy.max_interval_s, policy.initial_interval_s * 3)
    else:
        base = policy.max_interval_s
    if expected_s is not None:  # learned: look again after a quarter of the usual time
        base = min(base, max(0.1, 0.25 * expected_s))
    return base * (0.9 + 0.2 * jitter)


def _task_unknown(error: ProviderError) -> bool:
    return isinstance(error, RequestRejected) and 404 in (error.status, error.code)


async def wait_for(ctx: RunContext, account: Account, pj: PlannedJob, task_id: str,
                   row_id: int) -> TaskStatus:
    """Poll (or wait for a callback, polling slowly as a safety net) until the task is final."""
    started = ctx.clock()
    deadline = started + account.config.poll.deadline_s
    waiter = ctx.callbacks.waiter(task_id) if ctx.callbacks is not None else None
    attempt = 0
    latency = account.latency
    prober, probes = False, 0
    try:
        while True:
            elapsed = ctx.clock() - started
            delay = poll_delay(elapsed, latency.mean_s, account.config, random.random(),
                               latency.spread_s)
            if latency.mean_s is None and not latency.probing and waiter is None:
                latency.probing = prober = True
            if waiter is not None:
                delay = max(delay, account.config.poll.max_interval_s)
                status = await waiter.wait(delay)
                if status is not None and status.state is not TaskState.PENDING:
                    return _finished(account, status, ctx.clock() - started)
            elif prober and latency.mean_s is None:
                # Fine steps: the whole first wave waits for what the prober sees, so
                # each step it overshoots the first finish costs every waiting task.
                await ctx.sleep(min(delay, 0.1 * 1.25 ** probes))
                probes += 1
            elif latency.mean_s is None:
                if await latency.learned_within(delay) and \
                        ctx.clock() - started < (latency.mean_s or 0.0) + latency.spread_s:
                    continue  # the prober learnt how long tasks take: plan again with that
                # (else the delay ran out, or this task already waited past the usual
                # finish: look now)
            else:
                await ctx.sleep(delay)
            if ctx.clock() > deadline:
                raise Finish(JobOutcome.FAILED, f"task {task_id} is not finished after "
                             f"{account.config.poll.deadline_s:g} s; it stays in the journal: run "
                             "again to collect it", task_id)
            slot = await account.limiter.polls.acquire()
            try:
                with slot:
                    status = await account.adapter.status(task_id)
            except ProviderError as error:
                decision = ctx.policy.decide(error, Phase.POLL, attempt)
                if decision.verdict is Verdict.STOP_ACCOUNT:
                    _stop_account(ctx, account, error)
                if _task_unknown(error):
                    # Gone at the provider (records expire): nothing left to collect, so
                    # the next run may send a new request.
                    ctx.journal.set_task(row_id, TaskRowState.FAILED,
                                         error=f"task not found at the provider: {error}")
                    raise Finish(JobOutcome.FAILED, f"task {task_id} is unknown to the "
                                 "provider (expired, or made by another sandbox); run again to "
                                 "send a new request", task_id) from error
                if decision.verdict is not Verdict.RETRY:
                    raise Finish(JobOutcome.FAILED, f"while waiting for task {task_id}: "
                                                    f"{error}", task_id) from error
                ctx.emit(EventKind.RETRY, pj, task_id=task_id, message=str(error),
                         delay_s=round(decision.delay_s, 3))
                await ctx.sleep(decision.delay_s)
                attempt += 1
                continue
            attempt = 0
            ctx.emit(EventKind.POLLED, pj, task_id=task_id, message=status.provider_state)
            if status.state is not TaskState.PENDING:
                return _finished(account, status, ctx.clock() - started)
    finally:
        if prober:
            latency.probing = False  # another waiting task takes over if nothing was learnt
        if waiter is not None:
            waiter.close()


def _finished(account: Account, status: TaskStatus, waited_s: float) -> TaskStatus:
    if status.state is TaskState.SUCCEEDED:
        account.latency.observe(status.run_time_s if status.run_time_s is not None else waited_s)
    return status


async def store(ctx: RunContext, account: Account, pj: PlannedJob, result: TaskResult,
                row_id: int) -> AssetRow:
    """Fetch or serialise the task's result into the cache; record it as the job's asset."""
    url: str | None = None
    duration_s: float | None = None
    if pj.job.model.kind is Kind.TRANSCRIPT:
        payload = result.payload
        if payload is None and result.urls:
            payload = await _fetch_json(ctx, account, pj, result.urls[0], result.task_id)
        if payload is None:
            raise Finish(JobOutcome.FAILED, "the provider returned no transcript", result.task_id)
        blob = await json_blob(ctx.cache, payload)
        upstream = pj.job.audio
        duration_s = _source_duration(ctx, pj) if upstream is not None else None
    else:
        if not result.urls:
            raise Finish(JobOutcome.FAILED, "the task succeeded but returned no result URL",
                         result.task_id)
        url = result.urls[0]
        fetched = await fetch_result(ctx, account, pj, url, result.task_id)
        blob, duration_s = fetched.blob, fetched.info.duration_s if fetched.info else None
    asset = ctx.journal.record_asset(
        pj.key, sha256=blob.sha256, size=blob.size, ext=blob.ext, duration_s=duration_s,
        credits=result.credits, task_id=result.task_id, result_url=url,
        payload=result.payload if pj.job.model.kind is not Kind.TRANSCRIPT else None)
    ctx.journal.set_task(row_id, TaskRowState.MATERIALIZED, result=_result_json(result),
                         credits=result.credits)
    ctx.budget.settle(pj.job.id, result.credits)
    ctx.emit(EventKind.STORED, pj, task_id=result.task_id)
    return asset


async def _fetch_json(ctx: RunContext, account: Account, pj: PlannedJob, url: str,
                      task_id: str) -> Any:
    """A transcript delivered as a file instead of inline (a shape some clients meet)."""
    fetched = await fetch_result(ctx, account, pj, url, task_id)
    try:
        return json.loads(ctx.cache.read_bytes(fetched.blob))
    except (ValueError, UnicodeDecodeError) as error:
        raise Finish(JobOutcome.FAILED, f"the transcript file of task {task_id} is not JSON",
                     task_id) from error


def _source_duration(ctx: RunContext, pj: PlannedJob) -> float | None:
    audio = pj.job.audio
    if audio is not None and audio.kind is AudioKind.FROM:
        upstream = ctx.asset_of(audio.value)
        return upstream.duration_s if upstream is not None else None
    return None


async def fetch_result(ctx: RunContext, account: Account, pj: PlannedJob, url: str,
                       task_id: str) -> download.Fetched:
    attempt = 0
    refreshed = False
    while True:
        try:
            async with account.limiter.downloads:
                return await download.fetch(
                    ctx.client, url, ctx.cache, spec=job_spec(pj), ext=job_ext(pj),
                    provider=account.config.name, job_id=pj.job.id, task_id=task_id,
                    max_bytes=ctx.max_download_bytes,
                    progress=lambda done, total: ctx.emit(EventKind.DOWNLOAD_PROGRESS, pj,
                                                          done=done, total=total))
        except download.ResultExpired as error:
            fresh = None if refreshed else await account.adapter.refresh_url(url)
            if fresh is None:
                raise Finish(JobOutcome.FAILED, f"the result of task {task_id} can no longer "
                             f"be downloaded ({error})", task_id) from error
            url, refreshed = fresh, True
        except (RunnerError, ProviderError) as error:
            decision = ctx.policy.decide(error, Phase.DOWNLOAD, attempt)
            if decision.verdict is not Verdict.RETRY:
                raise Finish(JobOutcome.FAILED, f"download of task {task_id}'s result: {error}",
                             task_id) from error
            ctx.emit(EventKind.RETRY, pj, task_id=task_id, message=str(error),
                     delay_s=round(decision.delay_s, 3))
            await ctx.sleep(decision.delay_s)
            attempt += 1


async def generate_sync(ctx: RunContext, account: Account, pj: PlannedJob,
                        request: Request) -> AssetRow:
    """ElevenLabs direct: the answer is the audio, streamed straight into the cache."""
    async with account.limiter.in_flight:
        fetched_holder: list[Any] = []

        async def call() -> Any:
            if pj.job.model.kind is Kind.TRANSCRIPT:
                async def discard(chunk: bytes) -> None:
                    return None
                return await account.adapter.generate(request, discard)
            async with download.CacheWriter(ctx.cache, spec=job_spec(pj), ext=job_ext(pj),
                                            max_bytes=ctx.max_download_bytes,
                                            job_id=pj.job.id) as writer:
                answer = await account.adapter.generate(request, writer.write)
            fetched_holder.append(writer.fetched)
            return answer

        row_id, answer = await _send(ctx, account, pj, 0, call)
    ctx.emit(EventKind.SUBMITTED, pj, task_id=answer.request_id)
    ctx.emit(EventKind.SUCCEEDED, pj, task_id=answer.request_id, credits=answer.credits)
    if pj.job.model.kind is Kind.TRANSCRIPT:
        if answer.payload is None:
            raise Finish(JobOutcome.FAILED, "the provider returned no transcript")
        blob, duration_s = await json_blob(ctx.cache, answer.payload), _source_duration(ctx, pj)
        payload = None
    else:
        fetched = fetched_holder[0]
        blob, duration_s = fetched.blob, fetched.info.duration_s if fetched.info else None
        payload = answer.payload
    asset = ctx.journal.record_asset(
        pj.key, sha256=blob.sha256, size=blob.size, ext=blob.ext, duration_s=duration_s,
        credits=answer.credits, task_id=answer.request_id, result_url=None, payload=payload)
    ctx.journal.set_task(row_id, TaskRowState.MATERIALIZED, task_id=answer.request_id,
                         credits=answer.credits)
    ctx.budget.settle(pj.job.id, answer.credits)
    ctx.emit(EventKind.STORED, pj, task_id=answer.request_id)
    return asset


async def prepare_audio(ctx: RunContext, pj: PlannedJob, request: Request) -> Request:
    """Fill a transcription job's audio: a URL, an upload, or a file part."""
    job, account = pj.job, ctx.accounts[pj.job.provider]
    audio = job.audio
    if audio is None:
        return request
    model = job.model
    if audio.kind is AudioKind.URL:
        return _with_input(request, str(model.audio_url_field), audio.value)
    if audio.kind is AudioKind.FROM:
        upstream = ctx.asset_of(audio.value)
        if upstream is None:
            raise Finish(JobOutcome.SKIPPED, f"the audio of job '{audio.value}' is not built")
        fresh = time.time() - upstream.created_at < FRESH_RESULT_URL_S
        if fresh and model.audio_file_field is None and upstream.result_url:
            return _with_input(request, str(model.audio_url_field), upstream.result_url)
        blob = ctx.cache.get(upstream.sha256, upstream.ext)
        if blob is None:
            raise Finish(JobOutcome.FAILED, f"the audio of job '{audio.value}' is missing "
                                            "from the cache")
        path = await asyncio.to_thread(ctx.cache.file_of, blob)
        name = f"{audio.value.replace('#', '_')}.{upstream.ext}"
    else:
        path = Path(audio.value)
        name = path.name
    if model.audio_file_field is not None:
        return Request(request.job_id, request.model, request.input, request.callback_url,
                       audio_file=path)
    url = await _upload(ctx, account, pj, path, name)
    return _with_input(request, str(model.audio_url_field), url)


def _with_input(request: Request, field_name: str, value: str) -> Request:
    return Request(request.job_id, request.model, {**request.input, field_name: value},
                   request.callback_url, request.audio_file)


async def _upload(ctx: RunContext, account: Account, pj: PlannedJob, path: Path,
                  name: str) -> str:
    attempt = 0
    while True:
        _check_can_submit(ctx, account, pj)
        sent_at = ctx.clock()
        try:
            url = await account.adapter.upload(path, name)
        except ProviderError as error:
            decision = reachability(ctx, account, error, sent_at,
                                    ctx.policy.decide(error, Phase.UPLOAD, attempt))
            if decision.verdict is Verdict.STOP_ACCOUNT:
                _stop_account(ctx, account, error)
            if decision.verdict is not Verdict.RETRY:
                raise Finish(JobOutcome.FAILED, f"upload of {name}: {error}") from error
            await _backoff(ctx, account, pj, decision, error)
            attempt += 1
            continue
        account.unreachable_since = None
        ctx.emit(EventKind.UPLOADED, pj, message=name)
        return url
