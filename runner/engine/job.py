"""One job against its provider: submit (or resume), wait, fetch, store.

The order of every step is the rule the design rests on: the journal records
a request before it is sent and its answer before anything else happens, so a
crash at any moment leaves a journal from which the next run continues without
sending the same request twice. Errors become decisions in one place
(`runner.engine.retry.RetryPolicy`); every request a job repeats goes through one
loop that carries them out (`runner.engine.attempts.retrying`).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from runner.audio.formats import FormatSpec
from runner.catalog.accounts import ProviderAccount
from runner.catalog.models import Kind
from runner.engine.attempts import Retrying, ready, retrying
from runner.engine.context import Account, Finish, RunContext
from runner.engine.events import Event, EventKind
from runner.engine.materialize import Produced, iso, json_bytes
from runner.engine.retry import Decision, JobOutcome, Phase, Verdict
from runner.errors import (
    GenerationFailed,
    ProviderError,
    RequestRejected,
    ResultExpired,
    RunnerError,
    TaskUnknown,
)
from runner.manifest.expansion import extension_for
from runner.manifest.types import AudioKind
from runner.plan.plan import PlannedJob
from runner.plan.pricing import worst_case
from runner.providers import download
from runner.providers.base import Request, TaskResult, TaskState, TaskStatus
from runner.store.journal import TaskRowState

T = TypeVar("T")
P = TypeVar("P")

# An upstream job's result URL is used directly by a transcription job when it
# is younger than this (kie result URLs "typically expire after 24 hours").
FRESH_RESULT_URL_S = 20 * 3600.0


def job_spec(pj: PlannedJob) -> FormatSpec | None:
    return None if pj.job.model.kind is Kind.TRANSCRIPT else FormatSpec.parse(pj.job.format)


def job_ext(pj: PlannedJob) -> str:
    return extension_for(pj.job.format)


async def produce(ctx: RunContext, pj: PlannedJob, request: Request) -> Produced:
    """Get the job's asset into the cache and the journal, resuming what a previous run began."""
    account = ctx.accounts[pj.job.provider]
    if pj.job.id in ctx.adopt:
        _adopt(ctx, account, pj, ctx.adopt[pj.job.id])
    seen = ctx.journal.has_tasks(pj.key)  # most jobs of a run are new: no lookups then
    live = ctx.journal.live_task(pj.key) if seen else None
    resubmit = pj.job.id in ctx.resubmit_uncertain or "*" in ctx.resubmit_uncertain
    if live is not None and live.state is TaskRowState.UNCERTAIN and live.task_id and \
            not resubmit and not account.adapter.synchronous:
        # A task the provider did not know within the grace period: look for it again.
        live = replace(live, state=TaskRowState.SUBMITTED)
    if live is not None and live.state in (TaskRowState.SUBMITTING, TaskRowState.UNCERTAIN):
        if not resubmit:
            raise Finish(JobOutcome.UNCERTAIN, uncertain_message(pj, live.created_at),
                         live.task_id)
        ctx.journal.set_task(live.id, TaskRowState.ABANDONED,
                             error="resubmitted on request (--resubmit-uncertain)")
        live = None
    if live is not None and account.adapter.synchronous:
        # A synchronous answer cut off after the request id: the audio is lost.
        ctx.journal.set_task(live.id, TaskRowState.UNCERTAIN, error="answer cut off")
        raise Finish(JobOutcome.UNCERTAIN, uncertain_message(pj, live.created_at), live.task_id)
    if account.adapter.synchronous:
        return await generate_sync(ctx, account, pj, request)
    generation = ctx.journal.failed_generations(pj.key) if seen else 0
    while True:
        async with account.limiter.in_flight:
            if live is not None and live.task_id:
                # Resumed: the grace counts from when its request was sent.
                row_id, task_id, submitted_at = live.id, live.task_id, live.created_at
                live = None
            else:
                row_id, task_id = await submit(ctx, account, pj, request, generation)
                submitted_at = time.time()
            status = await wait_for(ctx, account, pj, task_id, row_id, submitted_at)
        if status.state is TaskState.SUCCEEDED and status.result is not None:
            # Not journaled until stored: if the run dies while downloading, the task is
            # still `submitted` and the next run polls it again (polls cost nothing).
            result = status.result
            ctx.emit(EventKind.SUCCEEDED, pj, task_id=task_id, credits=result.credits)
            return await store(ctx, account, pj, result, row_id)
        reason = f"generation failed: {status.fail_code or ''} {status.fail_message or ''}".strip()
        ctx.journal.set_task(row_id, TaskRowState.FAILED, error=reason)
        ctx.budget.release(pj.job.id)  # a failed generation is not billed
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


def _check_can_submit(ctx: RunContext, account: Account, pj: PlannedJob) -> None:
    if account.stopped is not None:
        raise Finish(JobOutcome.SKIPPED, f"not submitted: account '{account.config.name}' was "
                                         f"stopped ({account.stopped})")
    if ctx.stopping.is_set():
        raise Finish(*ctx.stop_outcome)


def job_worst_case(ctx: RunContext, pj: PlannedJob) -> float | None:
    """The most the job's request can cost (plan.pricing.worst_case): what a budget
    reserves for it, here (`--max-credits`) or in the team's ledger (`--budget`)."""
    return worst_case(pj.job, ctx.prices, _source_duration(ctx, pj))


async def _reserve(ctx: RunContext, pj: PlannedJob) -> None:
    """Reserve the most the job's request can cost (`--max-credits`), or end the job."""
    budget = ctx.budget
    if budget.limit is None:
        return
    worst = job_worst_case(ctx, pj)
    if await budget.reserve(pj.job.id, worst, ctx.stopping):
        return
    _check_can_submit(ctx, ctx.accounts[pj.job.provider], pj)  # stopped while waiting
    if worst is None:
        raise Finish(JobOutcome.SKIPPED, f"not submitted: {budget.describe()}, and the most "
                     f"this job can cost is unknown (no price for {pj.job.model.id}, or the "
                     "length of its audio); set `prices:` in the manifest or run without "
                     "--max-credits")
    if not ctx.budget_stopped:
        ctx.budget_stopped = True
        ctx.bus.emit(Event(EventKind.BUDGET_STOPPED, message=budget.describe()))
    raise Finish(JobOutcome.SKIPPED, f"not submitted: {budget.describe()}; this job may cost "
                 f"up to {worst:g} (estimated {pj.cost or 0:g})")


async def _send(ctx: RunContext, account: Account, pj: PlannedJob, generation: int,
                call: Callable[[], Awaitable[T]]) -> tuple[int, T]:
    """Send one generation request through the account's window, journaled first.

    Returns (journal row id, the adapter's answer)."""

    async def prepare(attempt: int) -> tuple[Any, int, int]:
        _check_can_submit(ctx, account, pj)
        await _reserve(ctx, pj)
        slot = await account.limiter.submit.acquire()
        if account.stopped is not None or ctx.stopping.is_set():
            slot.unsent()  # stopped while this job waited for its turn
            ctx.budget.release(pj.job.id)
            _check_can_submit(ctx, account, pj)
        if ctx.claims is not None:
            try:
                await ctx.claims.sending(pj)  # the team's ledger, before the network
            except BaseException:
                slot.unsent()  # nothing left: the window's slot and the budget go back
                ctx.budget.release(pj.job.id)
                raise
        row_id = ctx.journal.begin_submit(pj.key, pj.job.id, account.config.name, generation)
        await ctx.journal.durable()  # journal before network
        return slot, row_id, attempt

    async def send(sending: tuple[Any, int, int]) -> tuple[int, T]:
        slot, row_id, attempt = sending
        with slot:  # resolves the rate window from how the call ended (a 429 or not)
            answer = await call()
        account.limiter.succeeded(was_retry=attempt > 0)
        return row_id, answer

    def failed(error: RunnerError, decision: Decision, sending: tuple[Any, int, int]) -> None:
        row_id = sending[1]
        if decision.verdict is Verdict.UNCERTAIN:
            ctx.journal.set_task(row_id, TaskRowState.UNCERTAIN, error=str(error))
            raise Finish(JobOutcome.UNCERTAIN, f"{error}: the request may have reached "
                         "the provider and been billed; check the provider's task log, then "
                         f"run with --resubmit-uncertain {pj.job.id} to send it again"
                         ) from error
        ctx.journal.set_task(row_id, TaskRowState.FAILED, error=f"not created: {error}")
        ctx.budget.release(pj.job.id)

    phase = Phase.GENERATE if account.adapter.synchronous else Phase.SUBMIT
    how = Retrying(phase, generation=generation, before_task=True, holds_permit=True)
    return await retrying(ctx, account, pj, how, send, prepare=prepare, failed=failed)


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
    return isinstance(error, TaskUnknown) or (
        isinstance(error, RequestRejected) and 404 in (error.status, error.code))


def _unknown_task(ctx: RunContext, account: Account, pj: PlannedJob, task_id: str,
                  row_id: int, seen: bool, error: ProviderError) -> Finish:
    """The provider has no record of a task past the grace period: the outcome."""
    if seen:
        # It answered for this task before: the record is gone (expired, or made by
        # another sandbox), nothing is left to collect, and a new request may be sent.
        ctx.journal.set_task(row_id, TaskRowState.FAILED,
                             error=f"task not found at the provider: {error}")
        return Finish(JobOutcome.FAILED, f"task {task_id} is no longer known to the provider "
                      "(expired, or made by another sandbox); run again to send a new request",
                      task_id)
    # Never seen: it may still appear, and it may be billed. Kept (with its id) so that
    # the next run looks for it again; never resent unless a person says so.
    grace_s = account.config.poll.visibility_grace_s
    ctx.journal.set_task(row_id, TaskRowState.UNCERTAIN,
                         error=f"no record of the task after {grace_s:g} s: {error}")
    return Finish(JobOutcome.UNCERTAIN, f"task {task_id} was created, but the provider still "
                  f"has no record of it {grace_s:g} s later ({error.message}). Check the "
                  "provider's task log: if the task is there, run again to collect it; if "
                  f"it is not, run with --resubmit-uncertain {pj.job.id} to send a new request",
                  task_id)


async def wait_for(ctx: RunContext, account: Account, pj: PlannedJob, task_id: str,
                   row_id: int, submitted_at: float | None = None) -> TaskStatus:
    """Poll (or wait for a callback, polling slowly as a safety net) until the task is final.

    `submitted_at` (seconds since the epoch) is when the provider gave the task id: until
    `visibility_grace_s` after it, a provider that does not know the task yet (the
    market's "recordInfo is null") is asked again, not believed."""
    started = ctx.clock()
    submitted_at = time.time() if submitted_at is None else submitted_at
    seen = False  # the provider answered with the task's record at least once
    deadline = started + account.config.poll.deadline_s
    waiter = ctx.callbacks.waiter(task_id, account.adapter) \
        if ctx.callbacks is not None else None
    latency = account.latency
    prober, probes = False, 0

    async def when_due(attempt: int) -> Any:
        """Wait until the next look is due (after a failed one too), then take a place
        in the account's poll rate."""
        nonlocal prober, probes
        while True:
            elapsed = ctx.clock() - started
            delay = poll_delay(elapsed, latency.mean_s, account.config, random.random(),
                               latency.spread_s)
            if latency.mean_s is None and not latency.probing and waiter is None:
                latency.probing = prober = True
            if waiter is not None:
                # A callback only says "look now"; what is recorded is what the provider
                # answers to the poll below (anyone who knows the URL can call it).
                await waiter.wait(max(delay, account.config.poll.max_interval_s))
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
            break
        if ctx.clock() > deadline:
            raise Finish(JobOutcome.FAILED, f"task {task_id} is not finished after "
                         f"{account.config.poll.deadline_s:g} s; it stays in the journal: run "
                         "again to collect it", task_id)
        return await account.limiter.polls.acquire()

    async def look(slot: Any) -> TaskStatus:
        with slot:
            return await account.adapter.status(task_id)

    async def not_visible_yet(error: RunnerError) -> bool:
        if not isinstance(error, ProviderError) or not _task_unknown(error):
            return False
        if not seen and time.time() - submitted_at < account.config.poll.visibility_grace_s:
            ctx.emit(EventKind.POLLED, pj, task_id=task_id, message="not visible yet")
            return True  # created moments ago: its record is not visible yet
        raise _unknown_task(ctx, account, pj, task_id, row_id, seen, error) from error

    # Its attempts count the failed polls in a row: each answer starts them again. A
    # failed look waits its backoff and then, like every look, until the next is due.
    how = Retrying(Phase.POLL, f"while waiting for task {task_id}", task_id)
    try:
        while True:
            status = await retrying(ctx, account, pj, how, look, prepare=when_due,
                                    intercept=not_visible_yet)
            seen = True
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
                row_id: int) -> Produced:
    """Fetch or serialise the task's result into the cache; record it as the job's asset."""
    url: str | None = None
    duration_s: float | None = None
    data: bytes | None  # the stored bytes, when in memory: the output is written from them
    if pj.job.model.kind is Kind.TRANSCRIPT:
        payload = result.payload
        if payload is None and result.urls:
            payload = await _fetch_json(ctx, account, pj, result.urls[0], result.task_id)
        if payload is None:
            raise Finish(JobOutcome.FAILED, "the provider returned no transcript", result.task_id)
        text = json_bytes(payload)
        blob, data = await ctx.cache.put_bytes(text, "json"), text
        upstream = pj.job.audio
        duration_s = _source_duration(ctx, pj) if upstream is not None else None
    else:
        if not result.urls:
            raise Finish(JobOutcome.FAILED, "the task succeeded but returned no result URL",
                         result.task_id)
        url = result.urls[0]
        fetched = await fetch_result(ctx, account, pj, url, result.task_id)
        blob, data = fetched.blob, fetched.data
        duration_s = fetched.info.duration_s if fetched.info else None
    asset = ctx.journal.record_asset(
        pj.key, sha256=blob.sha256, size=blob.size, ext=blob.ext, duration_s=duration_s,
        credits=result.credits, task_id=result.task_id, result_url=url,
        payload=result.payload if pj.job.model.kind is not Kind.TRANSCRIPT else None)
    ctx.journal.set_task(row_id, TaskRowState.MATERIALIZED, result=_result_json(result),
                         credits=result.credits)
    ctx.journal.commit_soon()  # paid for and stored: a kill must not cost a second download
    ctx.budget.settle(pj.job.id, result.credits)
    ctx.emit(EventKind.STORED, pj, task_id=result.task_id)
    return Produced(asset, data)


async def _fetch_json(ctx: RunContext, account: Account, pj: PlannedJob, url: str,
                      task_id: str) -> Any:
    """A transcript delivered as a file instead of inline (a shape some clients meet)."""
    fetched = await fetch_result(ctx, account, pj, url, task_id)
    try:
        return json.loads(fetched.data if fetched.data is not None
                          else ctx.cache.read_bytes(fetched.blob))
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
    # Every task the provider finished may queue here for one of the account's download
    # places: thousands in a large run. Each waits in this frame alone, before the retry
    # loop and its closures exist (bench_scale's peak memory), and its first attempt uses
    # the place it waited for; a retry waits for one again (none is held while backing off).
    places = account.limiter.downloads
    await places.acquire()
    held, refreshed = True, False

    async def get(_: None) -> download.Fetched:
        nonlocal held
        if not held:
            await places.acquire()
        held = ok = False
        try:
            fetched = await download.fetch(
                ctx.client, url, ctx.cache, spec=job_spec(pj), ext=job_ext(pj),
                provider=account.config.name, job_id=pj.job.id, task_id=task_id,
                max_bytes=ctx.max_download_bytes, allow_private=await account.allows_private(),
                progress=lambda done, total: ctx.emit(EventKind.DOWNLOAD_PROGRESS, pj,
                                                      done=done, total=total))
            ok = True
            return fetched
        finally:
            places.release(ok=ok)  # as `async with places` would: a failure is not "ok"

    async def expired(error: RunnerError) -> bool:
        nonlocal url, refreshed
        if not isinstance(error, ResultExpired):
            return False
        fresh = None if refreshed else await account.adapter.refresh_url(url)
        if fresh is None:
            raise Finish(JobOutcome.FAILED, f"the result of task {task_id} can no longer "
                         f"be downloaded ({error})", task_id) from error
        url, refreshed = fresh, True
        return True  # a fresh URL: fetched at once

    how = Retrying(Phase.DOWNLOAD, f"download of task {task_id}'s result", task_id,
                   errors=(RunnerError,))
    try:
        return await retrying(ctx, account, pj, how, get, prepare=ready, intercept=expired)
    finally:
        if held:  # ended before the first attempt took the place
            places.release(ok=False)


async def generate_sync(ctx: RunContext, account: Account, pj: PlannedJob,
                        request: Request) -> Produced:
    """ElevenLabs direct: the answer is the audio, streamed straight into the cache."""
    async with account.limiter.in_flight:

        async def call() -> tuple[Any, download.Fetched | None]:
            if pj.job.model.kind is Kind.TRANSCRIPT:
                async def discard(chunk: bytes) -> None:
                    return None
                return await account.adapter.generate(request, discard), None
            async with download.CacheWriter(ctx.cache, spec=job_spec(pj), ext=job_ext(pj),
                                            max_bytes=ctx.max_download_bytes,
                                            job_id=pj.job.id) as writer:
                answer = await account.adapter.generate(request, writer.write)
            return answer, writer.fetched

        row_id, (answer, fetched) = await _send(ctx, account, pj, 0, call)
    ctx.emit(EventKind.SUBMITTED, pj, task_id=answer.request_id)
    ctx.emit(EventKind.SUCCEEDED, pj, task_id=answer.request_id, credits=answer.credits)
    data: bytes | None  # the stored bytes, when in memory: the output is written from them
    if fetched is None:  # a transcript: the answer carries it
        if answer.payload is None:
            raise Finish(JobOutcome.FAILED, "the provider returned no transcript")
        text = json_bytes(answer.payload)
        blob, data = await ctx.cache.put_bytes(text, "json"), text
        duration_s, payload = _source_duration(ctx, pj), None
    else:
        blob, data = fetched.blob, fetched.data
        duration_s = fetched.info.duration_s if fetched.info else None
        payload = answer.payload
    asset = ctx.journal.record_asset(
        pj.key, sha256=blob.sha256, size=blob.size, ext=blob.ext, duration_s=duration_s,
        credits=answer.credits, task_id=answer.request_id, result_url=None, payload=payload)
    ctx.journal.set_task(row_id, TaskRowState.MATERIALIZED, task_id=answer.request_id,
                         credits=answer.credits)
    ctx.journal.commit_soon()
    ctx.budget.settle(pj.job.id, answer.credits)
    ctx.emit(EventKind.STORED, pj, task_id=answer.request_id)
    return Produced(asset, data)


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
    async def not_stopped(attempt: int) -> None:
        _check_can_submit(ctx, account, pj)

    async def upload(_: None) -> str:
        return await account.adapter.upload(path, name)

    how = Retrying(Phase.UPLOAD, f"upload of {name}", before_task=True)
    url = await retrying(ctx, account, pj, how, upload, prepare=not_stopped)
    ctx.emit(EventKind.UPLOADED, pj, message=name)
    return url
