"""The scheduler: every job that needs work, concurrently, in dependency order.

Each job runs as one asyncio task that waits for the jobs it depends on, then
restores its asset from the cache or produces it (engine/job.py), then writes its
output. Concurrency is bounded by each account's limiter (rate window,
in-flight cap) and optionally by `-j`. Every job ends in exactly one outcome,
emitted once as a FINISHED event.

Interrupting (Ctrl-C) stops new submissions at once; tasks already at the
provider are still collected for a grace period, then cancelled. Their journal
rows stay `submitted`, so the next run polls them instead of paying again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from runner.catalog.models import Family
from runner.engine.context import Finish, RunContext
from runner.engine.events import Event, EventKind
from runner.engine.job import prepare_audio, produce
from runner.engine.materialize import Produced, record, write_outputs
from runner.engine.retry import JobOutcome
from runner.errors import RunnerError
from runner.manifest.types import JobKind
from runner.plan.plan import Plan, PlannedJob
from runner.providers.base import Request
from runner.store.journal import AssetRow
from runner.store.lockfile import LockEntry

GOOD = (JobOutcome.DONE, JobOutcome.CACHED)
# ElevenLabs accepts request ids for stitching only if they are this recent
# (docs/providers.md, "ElevenLabs: request stitching"), with a margin for the time the
# request spends queued.
REQUEST_ID_MAX_AGE_S = 2 * 3600.0 - 300.0


@dataclass
class RunResult:
    outcomes: dict[str, JobOutcome] = field(default_factory=dict)
    lock_entries: dict[str, LockEntry] = field(default_factory=dict)
    interrupted: bool = False


def select(plan: Plan, only: Iterable[str] | None) -> list[PlannedJob]:
    """The jobs of `--only ID...` (a base id selects its variants and segments) and
    everything they depend on; all jobs without `--only`."""
    if not only:
        return list(plan.jobs)
    wanted = set(only)
    by_id = {p.job.id: p for p in plan.jobs}
    chosen: set[str] = set()
    stack = [p.job.id for p in plan.jobs
             if p.job.id in wanted or p.job.base_id in wanted
             or (p.job.segment is not None and p.job.segment.parent in wanted)]
    while stack:
        job_id = stack.pop()
        if job_id in chosen:
            continue
        chosen.add(job_id)
        stack.extend(by_id[job_id].job.depends_on)
    return [p for p in plan.jobs if p.job.id in chosen]


class Engine:
    def __init__(self, plan: Plan, ctx: RunContext, *, only: Iterable[str] | None = None,
                 fail_fast: bool = False, max_active_jobs: int | None = None,
                 grace_s: float = 30.0) -> None:
        self.plan = plan
        self.ctx = ctx
        self.jobs = select(plan, only)
        self.fail_fast = fail_fast
        self.grace_s = grace_s
        self.active = asyncio.Semaphore(max_active_jobs) if max_active_jobs else None
        self.done = {p.job.id: asyncio.Event() for p in self.jobs}
        self.result = RunResult()
        self.tasks: list[asyncio.Task[None]] = []
        # Cache key -> (job id, its asset to come): identical requests are sent once.
        self.producing: dict[str, tuple[str, asyncio.Future[AssetRow]]] = {}
        self._interrupts = 0

    async def run(self) -> RunResult:
        self.ctx.bus.emit(Event(EventKind.RUN_STARTED, message=self.plan.pipeline.name,
                                total=sum(1 for p in self.jobs if p.state.needs_work)))
        for p in self.jobs:
            if not p.state.needs_work:
                # Up to date or frozen: no task; dependents fetch its asset if they need it.
                if p.locked is not None:
                    self.ctx.locked_keys[p.job.id] = p.locked.key
                self.done[p.job.id].set()
        self.tasks = [asyncio.create_task(self._job(p), name=p.job.id)
                      for p in self.jobs if p.state.needs_work]
        await asyncio.gather(*self.tasks)
        self.ctx.bus.emit(Event(EventKind.RUN_FINISHED))
        return self.result

    def interrupt(self) -> None:
        """First call: stop submitting, collect what is in flight for `grace_s`.
        Second call (or the grace period ends): cancel everything now."""
        self._interrupts += 1
        self.result.interrupted = True
        self.ctx.stop(JobOutcome.INTERRUPTED, "not submitted: the run was interrupted")
        if self._interrupts == 1:
            asyncio.get_running_loop().call_later(self.grace_s, self._cancel_all)
        else:
            self._cancel_all()

    def _cancel_all(self) -> None:
        for task in self.tasks:
            task.cancel()

    async def _job(self, pj: PlannedJob) -> None:
        job = pj.job
        outcome: JobOutcome | None = None
        message = ""
        task_id: str | None = None
        recorded = False
        try:
            for dep in job.depends_on:
                if dep in self.done:
                    await self.done[dep].wait()
                    if self.result.outcomes.get(dep, JobOutcome.DONE) not in GOOD:
                        raise Finish(JobOutcome.SKIPPED, f"its input '{dep}' was not built "
                                                         f"({self.result.outcomes[dep].value})")
            self.ctx.emit(EventKind.QUEUED, pj)
            async with self.active or contextlib.nullcontext():
                outcome = await self._build(pj)  # journals the outcome with the output
            asset = self.ctx.assets.get(job.id)
            task_id = asset.task_id if asset is not None else None
            recorded = True
        except Finish as finish:
            outcome, message, task_id = finish.outcome, finish.message, finish.task_id
        except asyncio.CancelledError:
            outcome, message = JobOutcome.INTERRUPTED, "interrupted"
        except RunnerError as error:  # e.g. a StoreError: this job cannot continue
            outcome, message = JobOutcome.FAILED, str(error)
        finally:
            self.ctx.budget.close(job.id)
            if outcome is not None:
                self.result.outcomes[job.id] = outcome
                if not recorded:
                    self.ctx.journal.record_outcome(job.id, pj.key, outcome.value, message,
                                                    task_id)
                self.ctx.bus.emit(Event(EventKind.FINISHED, job.id, job.provider,
                                        outcome=outcome, message=message, task_id=task_id))
                if outcome is JobOutcome.FAILED and self.fail_fast:
                    self.ctx.stop(JobOutcome.SKIPPED,
                                  f"not started (--fail-fast): job '{job.id}' failed")
            self.done[job.id].set()

    async def _build(self, pj: PlannedJob) -> JobOutcome:
        ctx = self.ctx
        # A forced job pays for a new take on purpose: the cache does not answer for it.
        asset = None if pj.state.new_take else (
            ctx.journal.asset(pj.key) or self._adopt_locked(pj))
        outcome = JobOutcome.DONE
        made = None
        if asset is not None and ctx.cache.get(asset.sha256, asset.ext) is not None:
            made, outcome = Produced(asset), JobOutcome.CACHED  # built before: no request
        elif pj.key in self.producing:
            # Another job of this run makes exactly the same request: share its asset.
            owner, future = self.producing[pj.key]
            try:
                made = Produced(await asyncio.shield(future))
            except Finish as finish:
                raise Finish(JobOutcome.SKIPPED, f"same request as job '{owner}', which "
                             f"did not finish: {finish.message}", finish.task_id) from None
            outcome = JobOutcome.CACHED
        else:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # no warning
            self.producing[pj.key] = (pj.job.id, future)
            try:
                made, outcome = await self._produce_shared(pj)
            except BaseException as error:
                future.set_exception(error if isinstance(error, Finish) else Finish(
                    JobOutcome.FAILED, str(error) or type(error).__name__))
                raise
            future.set_result(made.asset)
        await self._finish(pj, made, outcome)
        return outcome

    async def _produce_shared(self, pj: PlannedJob) -> tuple[Produced, JobOutcome]:
        """`_produce`, with the team (runner.team) when it is configured: its remote
        cache looked in before any request and told of the result after, and the
        request claimed in its ledger so that no two machines buy it. The engine knows
        both only as Protocols (`SharedResults`, `SharedClaims`); without them,
        `_produce` alone."""
        ctx = self.ctx
        remote, claims = ctx.remote, ctx.claims
        if remote is not None:
            asset = await remote.restore(ctx, pj)
            if asset is not None:
                return Produced(asset), JobOutcome.CACHED
        built: list[Produced] = []  # what this machine made, with the bytes in hand

        async def build(job: PlannedJob) -> AssetRow:
            made = await self._produce(job)
            built.append(made)
            return made.asset if remote is None else await remote.record(ctx, job, made.asset)

        def handed(asset: AssetRow) -> Produced:
            # The team's take may replace this one: the bytes in hand are this one's.
            same = [m for m in built if m.asset.sha256 == asset.sha256 and m.asset.ext == asset.ext]
            return Produced(asset, same[0].data if same else None)

        if claims is None or not claims.applies(pj):
            return handed(await build(pj)), JobOutcome.DONE

        async def take(job: PlannedJob) -> AssetRow | None:
            return None if remote is None else await remote.restore(ctx, job)

        asset, outcome = await claims.produce(ctx, pj, build, take)
        return handed(asset), outcome

    def _adopt_locked(self, pj: PlannedJob) -> AssetRow | None:
        """The lockfile names this request's file and a cache holds it (a shared
        RUNNER_CACHE_DIR, or a journal lost): record it so it is restored, not bought."""
        entry = pj.locked
        if entry is None or entry.key != pj.key:
            return None
        ext = entry.output.rsplit(".", 1)[-1]
        if self.ctx.cache.get(entry.sha256, ext) is None:
            return None
        made = dt.datetime.strptime(entry.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=dt.UTC).timestamp()  # the take keeps its own date
        return self.ctx.journal.record_asset(
            pj.key, sha256=entry.sha256, size=entry.size, ext=ext, duration_s=entry.duration_s,
            credits=entry.credits, task_id=entry.task_id, result_url=entry.result_url,
            created_at=made)

    async def _produce(self, pj: PlannedJob) -> Produced:
        if pj.job.kind is JobKind.STITCH:
            from runner.engine.narrate import stitch_job

            return Produced(await stitch_job(self.ctx, pj, self.plan))
        if pj.raw_key is not None:  # post-processed: the provider's take, then the steps
            from runner.engine.postprocess import produce_processed

            async def raw(raw_pj: PlannedJob) -> AssetRow:
                return (await self._generate(raw_pj)).asset  # read back as a file by ffmpeg

            return Produced(await produce_processed(self.ctx, pj, raw))
        return await self._generate(pj)

    async def _generate(self, pj: PlannedJob) -> Produced:
        request = await self._request(pj)
        try:
            return await produce(self.ctx, pj, request)
        except Finish as finish:
            if "previous_request_ids" not in request.input or "request id" not in finish.message:
                raise
            # The provider no longer accepts the earlier requests' ids (too old, or
            # made elsewhere): nothing was generated; the neighbours' text still applies.
            self.ctx.emit(EventKind.RETRY, pj, message=f"{finish.message}; retrying with the "
                          "neighbours' text only", delay_s=0.0)
            payload = {k: v for k, v in request.input.items() if k != "previous_request_ids"}
            return await produce(self.ctx, pj, Request(request.job_id, request.model, payload,
                                                       request.callback_url, request.audio_file))

    async def _request(self, pj: PlannedJob) -> Request:
        job = pj.job
        account = self.ctx.accounts[job.provider]
        callback = None
        if self.ctx.callbacks is not None and account.config.family is Family.MARKET:
            callback = self.ctx.callbacks.url
        payload = dict(job.input)
        request_ids = self._request_ids(job.context_from)
        if request_ids:
            payload["previous_request_ids"] = request_ids
        request = Request(job.id, job.model, payload, callback)
        return await prepare_audio(self.ctx, pj, request)

    def _request_ids(self, previous: tuple[str, ...]) -> list[str]:
        """ElevenLabs request stitching: the request ids of the segments before this
        one, if fresh enough (younger than 2 hours); else the text context applies."""
        ids = []
        for job_id in previous:
            asset = self.ctx.asset_of(job_id)
            if asset is not None and asset.task_id and \
                    time.time() - asset.created_at < REQUEST_ID_MAX_AGE_S:
                ids.append(asset.task_id)
        return ids[-3:]

    async def _finish(self, pj: PlannedJob, made: Produced, outcome: JobOutcome) -> None:
        ctx = self.ctx
        asset = made.asset
        written = await write_outputs(pj, asset, ctx.cache, ctx.layout, made.data)
        self.result.lock_entries[pj.job.id] = record(pj, asset, written, ctx.journal)
        ctx.journal.record_outcome(pj.job.id, pj.key, outcome.value, "", asset.task_id)
        ctx.assets[pj.job.id] = asset
