"""The team's ledger during a run: claim a request before paying for it.

The engine knows this class as `runner.engine.context.SharedClaims`. Its scheduler
calls `Claims.produce` for every job that may buy something when
RUNNER_COORDINATOR is set; and engine/job.py tells the ledger, at the two
moments when the local journal is made durable around the network, what this
machine is doing with the claim it holds:

    await claims.sending(pj)              before the request leaves
    await claims.submitted(pj, task_id)   as soon as the provider gave a task id

`produce` claims the job's cache key (coordinator.py). Holding it, the job runs
as it always has, and the claim is settled from how it ended. Another machine
holding it: the job waits (one query per interval for every waiting job of the
run) and, when that machine is done, takes the result from the remote cache, or
else collects the task the ledger names (polls and the download cost nothing).
Its machine stopped (lease run out) after the provider answered: this run
collects that task, never buying it again. It stopped while sending: the
request may have been billed, so the job is uncertain until a person decides
(`--resubmit-uncertain`, `--adopt-task`), as for the local journal.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runner.engine.context import Build, Finish, RunContext, Take
from runner.engine.events import Event, EventKind
from runner.engine.job import job_worst_case
from runner.engine.retry import JobOutcome
from runner.errors import CoordinatorError
from runner.manifest.types import JobKind
from runner.plan.plan import PlannedJob
from runner.store.journal import AssetRow, TaskRowState
from runner.team.coordinator import (
    BudgetState,
    Claim,
    ClaimAnswer,
    ClaimRequest,
    ClaimState,
    Coordinator,
    Verdict,
)

if TYPE_CHECKING:
    from runner.store.journal import TaskRow



class ClaimLost(Finish):
    """This process no longer holds the claim it was about to send for (its lease ran
    out and another machine took it): nothing was sent; the job waits for that one."""

    def __init__(self) -> None:
        super().__init__(JobOutcome.SKIPPED, "not submitted: another machine took this "
                         "request over (this machine's claim had lapsed)")


@dataclass
class _Watch:
    """What a waiting job last saw, and the future that tells it something changed."""

    seen: tuple[object, ...] | None
    changed: asyncio.Future[None]


def _signature(claim: Claim | None) -> tuple[object, ...] | None:
    if claim is None:
        return None
    return (claim.state, claim.owner, claim.expired, claim.task_id)


@dataclass
class Claims:
    """The run's use of the team's ledger (see the module docstring)."""

    coordinator: Coordinator
    pipeline: str
    target: str  # live | sandbox
    budget: BudgetState | None  # the shared budget this run reserves in (--budget)
    poll_s: float = 0.5
    # Job id -> the key of the claim this process holds for it.
    held: dict[str, str] = field(default_factory=dict)
    _watches: dict[str, list[_Watch]] = field(default_factory=dict)
    _watcher: asyncio.Task[None] | None = None
    _budget_moved: asyncio.Task[None] | None = None

    def key_of(self, ctx: RunContext, pj: PlannedJob) -> str:
        """The claim's key: the request's cache key. A sandbox's requests are claimed per
        sandbox (its URL), since its tasks exist only there: two people's embedded
        sandboxes must not wait for each other. A forced job's claim is this process's
        alone (see `applies`)."""
        key = pj.key
        if self.target == "sandbox":
            account = ctx.accounts.get(pj.job.provider)
            key = f"{key}@{account.config.base_url if account is not None else '?'}"
        if pj.state.new_take:
            key = f"{key}#new-take:{self.coordinator.owner}"
        return key

    def applies(self, pj: PlannedJob) -> bool:
        """Jobs that may buy something (a stitch is local work). A forced job buys a new
        take on purpose: it is not the team's to share or to wait for, but under a
        shared budget it still reserves its worst case, through a claim nobody else
        asks for (its key names this process)."""
        if pj.job.kind is not JobKind.GENERATE:
            return False
        return not pj.state.new_take or self.budget is not None

    async def close(self) -> None:
        for task in (self._watcher, self._budget_moved):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.coordinator.close()

    # --- the engine's one call ---------------------------------------------------
    async def produce(self, ctx: RunContext, pj: PlannedJob, build: Build,
                      take: Take) -> tuple[AssetRow, JobOutcome]:
        """Build the job as the holder of its claim, or take it from the machine that
        holds it. `take` restores a result another machine recorded (the remote cache),
        or returns nothing."""
        job_id = pj.job.id
        person_said = job_id in ctx.resubmit_uncertain or "*" in ctx.resubmit_uncertain \
            or job_id in ctx.adopt
        told_waiting = False
        while True:
            answer = await self._claim(ctx, pj, take_over=person_said)
            claim = answer.claim
            if answer.verdict is Verdict.BUDGET:
                await self._wait_for_budget(ctx, pj, answer)
                continue
            if answer.verdict is Verdict.UNCERTAIN:
                assert claim is not None
                raise Finish(JobOutcome.UNCERTAIN, _uncertain_message(pj, claim),
                             claim.task_id)
            if answer.verdict is Verdict.HELD:
                assert claim is not None
                if not told_waiting:
                    told_waiting = True
                    ctx.emit(EventKind.CLAIM_HELD, pj, task_id=claim.task_id,
                             message=f"held by {claim.holder} since "
                                     f"{_iso(claim.claimed_at)}: waiting for its result")
                await self._changed(ctx, claim)
                continue
            if answer.verdict is Verdict.DONE:
                assert claim is not None
                return await self._take(ctx, pj, claim, build, take), JobOutcome.CACHED
            assert claim is not None
            try:
                return await self._own(ctx, pj, answer, build)
            except ClaimLost:
                continue  # another machine has it now: wait for it like any other

    async def _claim(self, ctx: RunContext, pj: PlannedJob, *, take_over: bool
                     ) -> ClaimAnswer:
        budget = self.budget
        worst = None
        if budget is not None:
            worst = job_worst_case(ctx, pj)
            if worst is None:
                raise Finish(JobOutcome.SKIPPED, f"not submitted: {budget.describe()}, and "
                             "the most this job can cost is unknown (no price for "
                             f"{pj.job.model.id}, or the length of its audio); set `prices:` "
                             "in the manifest or run without --budget")
        ask = ClaimRequest(key=self.key_of(ctx, pj), pipeline=self.pipeline, target=self.target,
                           job_id=pj.job.id, provider=pj.job.provider,
                           budget=budget.name if budget is not None else None, worst=worst)
        return await self.coordinator.claim(ask, take_over_uncertain=take_over)

    async def _wait_for_budget(self, ctx: RunContext, pj: PlannedJob,
                               answer: ClaimAnswer) -> None:
        """It does not fit now. Requests in flight on live machines (here or elsewhere) may
        settle below their worst case and make room; when none are, it never will."""
        state = answer.budget
        assert state is not None and self.budget is not None
        worst = job_worst_case(ctx, pj) or 0.0
        if state.settling <= 0 or not state.may_fit(worst) or ctx.stopping.is_set():
            if not ctx.budget_stopped:
                ctx.budget_stopped = True
                ctx.bus.emit(Event(EventKind.BUDGET_STOPPED, message=state.describe()))
            raise Finish(JobOutcome.SKIPPED, f"not submitted: {state.describe()}; this job "
                         f"may cost up to {worst:g} (estimated {pj.cost or 0:g})")
        if self._budget_moved is None or self._budget_moved.done():
            self._budget_moved = asyncio.create_task(self._until_budget_moves(state))
        await asyncio.shield(self._budget_moved)

    async def _until_budget_moves(self, seen: BudgetState) -> None:
        """One query per interval, whatever the number of jobs waiting for the budget."""
        while True:
            await asyncio.sleep(self.poll_s)
            if await self.coordinator.budget(seen.name) != seen:
                return

    async def _own(self, ctx: RunContext, pj: PlannedJob, answer: ClaimAnswer,
                   produce: Build) -> tuple[AssetRow, JobOutcome]:
        claim = answer.claim
        assert claim is not None
        job_id, key = pj.job.id, claim.key
        adopted = answer.verdict is Verdict.ADOPTED
        if adopted:
            assert claim.task_id is not None
            ctx.emit(EventKind.CLAIM_ADOPTED, pj, task_id=claim.task_id,
                     message=f"{claim.previous_holder} stopped after the provider "
                             "answered: collecting its task")
            ctx.adopt[job_id] = claim.task_id
        elif job_id in ctx.adopt:
            # A person named the task (--adopt-task): the team's ledger names it too.
            await self.coordinator.submitted(key, ctx.adopt[job_id])
        self.held[job_id] = key
        try:
            asset = await produce(pj)
        except ClaimLost:
            raise
        except BaseException as error:
            with contextlib.suppress(CoordinatorError):  # else its lease settles it
                await asyncio.shield(self._ended(ctx, pj, error))
            raise
        finally:
            self.held.pop(job_id, None)
            if adopted:
                ctx.adopt.pop(job_id, None)
        try:
            await self.coordinator.done(key, {"sha256": asset.sha256, "size": asset.size,
                                              "ext": asset.ext, "task_id": asset.task_id},
                                        asset.credits)
        except CoordinatorError as error:
            # Built and stored here: the job is done. Until the ledger hears of it, the
            # claim's lease runs out and another machine collects the same task (polls
            # and a download, nothing bought).
            ctx.emit(EventKind.WARNING, pj, task_id=asset.task_id,
                     message=f"the team's ledger did not record the result: {error}")
        return asset, JobOutcome.DONE

    async def _ended(self, ctx: RunContext, pj: PlannedJob, error: BaseException) -> None:
        """Settle the claim of a job that ended without a result, from what the local
        journal says became of its request."""
        key = self.key_of(ctx, pj)
        claim = (await self.coordinator.look([key])).get(key)
        if claim is None or claim.owner != self.coordinator.owner:
            return
        live = _live_tasks(ctx, pj)
        if claim.state is ClaimState.CLAIMED:
            await self.coordinator.release(key)  # nothing was sent
        elif (isinstance(error, Finish) and error.outcome is JobOutcome.UNCERTAIN) or any(
                row.state in (TaskRowState.SUBMITTING, TaskRowState.UNCERTAIN) for row in live):
            # Sent, and the answer is not recorded: it may have been billed.
            await self.coordinator.failed(key, str(error) or "interrupted", billed=None)
        elif live:
            # Its task is at the provider (a download failed, the run was stopped): any
            # machine may collect it, at once rather than after the lease.
            await self.coordinator.let_go(key)
        else:
            # Refused (nothing created) or its task failed: nothing billed; a later claim
            # may buy it.
            await self.coordinator.failed(key, str(error) or "failed", billed=False)

    async def _take(self, ctx: RunContext, pj: PlannedJob, claim: Claim, produce: Build,
                    take: Take) -> AssetRow:
        """The result of a request another machine bought."""
        asset = await take(pj)
        if asset is not None:
            ctx.emit(EventKind.CLAIM_TAKEN, pj, task_id=claim.task_id,
                     message=f"built by {claim.holder}: restored from the remote cache")
            return asset
        account = ctx.accounts.get(pj.job.provider)
        if claim.task_id is None or account is None or account.adapter.synchronous:
            raise Finish(JobOutcome.SKIPPED, f"bought by {claim.holder} at "
                         f"{_iso(claim.updated_at)}; its take is on that machine and this "
                         "provider's answers cannot be fetched again: set RUNNER_REMOTE_CACHE "
                         "so that machines share their takes, or run with --force "
                         f"{pj.job.id} to buy one for this machine")
        # The provider still has the task: collecting it (polls, a download) is free.
        ctx.emit(EventKind.CLAIM_TAKEN, pj, task_id=claim.task_id,
                 message=f"built by {claim.holder}: collecting its task")
        ctx.adopt[pj.job.id] = claim.task_id
        try:
            return await produce(pj)
        except Finish as finish:
            if finish.outcome is JobOutcome.FAILED:
                # The task cannot be collected any more (expired at the provider): the
                # ledger forgets it, and the next run buys the request anew.
                await self.coordinator.forget(claim.key, claim.task_id)
                raise Finish(JobOutcome.FAILED, f"{finish.message} (the task of {claim.holder};"
                             " the team's ledger forgot it: the next run buys it anew)",
                             finish.task_id) from finish
            raise
        finally:
            ctx.adopt.pop(pj.job.id, None)

    # --- waiting -------------------------------------------------------------------
    async def _changed(self, ctx: RunContext, claim: Claim) -> None:
        """Until the claim is no longer as it was seen: done, failed, released, taken
        over, or its lease ran out. One query per interval serves every waiting job.
        A run told to stop (Ctrl-C, --fail-fast) stops waiting at once."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._watches.setdefault(claim.key, []).append(_Watch(_signature(claim), future))
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch(), name="runner-claims-watcher")
        stopping = asyncio.ensure_future(ctx.stopping.wait())
        try:
            await asyncio.wait((future, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not future.done():
                future.cancel()  # the watcher drops it
        if future.done() and not future.cancelled():
            future.result()  # raises the watcher's error, if it met one
        if ctx.stopping.is_set():
            raise Finish(ctx.stop_outcome[0], f"not built: the run stopped while "
                         f"{claim.holder} held this request")

    async def _watch(self) -> None:
        while self._watches:
            await asyncio.sleep(self.poll_s)
            keys = list(self._watches)
            try:
                found = await self.coordinator.look(keys)
            except Exception as error:  # noqa: BLE001  (handed to every waiter)
                for watches in self._watches.values():
                    for watch in watches:
                        if not watch.changed.done():
                            watch.changed.set_exception(error)
                self._watches.clear()
                return
            for key in keys:
                now = _signature(found.get(key))
                keep = []
                for watch in self._watches.get(key, []):
                    if watch.changed.done():
                        continue
                    if watch.seen != now:
                        watch.changed.set_result(None)
                    else:
                        keep.append(watch)
                if keep:
                    self._watches[key] = keep
                else:
                    self._watches.pop(key, None)

    # --- engine/job.py's two calls ------------------------------------------------------
    async def sending(self, pj: PlannedJob) -> None:
        """Before the request of a job whose claim this process holds leaves: the ledger
        says `sending`, so that nobody sends it again if this process dies. Raises
        ClaimLost (nothing may be sent) when the claim is no longer this process's."""
        key = self.held.get(pj.job.id)
        if key is not None and not await self.coordinator.sending(key):
            raise ClaimLost

    async def submitted(self, ctx: RunContext, pj: PlannedJob, task_id: str) -> None:
        """The provider gave a task id: any machine can collect it from now on."""
        key = self.held.get(pj.job.id)
        if key is None:
            return
        try:
            await self.coordinator.submitted(key, task_id)
        except CoordinatorError as error:
            # Bought and journaled here: this run collects it. Until the ledger hears of
            # it, another machine sees a request sent without an answer (uncertain),
            # which it does not send again.
            ctx.emit(EventKind.WARNING, pj, task_id=task_id,
                     message=f"the team's ledger did not record the task: {error}")


def _live_tasks(ctx: RunContext, pj: PlannedJob) -> list[TaskRow]:
    """The journal's live task rows of the job's request (and of its raw take, for a job
    with post-processing): sent and not finished, or finished and not stored."""
    rows = []
    for key in {pj.key, *((pj.raw_key,) if pj.raw_key else ())}:
        live = ctx.journal.live_task(key) if ctx.journal.has_tasks(key) else None
        if live is not None:
            rows.append(live)
    return rows


def _uncertain_message(pj: PlannedJob, claim: Claim) -> str:
    who = claim.holder
    return (f"{who} sent (or was about to send) this request at {_iso(claim.updated_at)} and "
            "stopped before it recorded the provider's answer, so the provider may have "
            "created (and billed) a task. Check the provider's task log: if the task is "
            f"there, run with --adopt-task {pj.job.id}=TASK_ID to collect it; if not, with "
            f"--resubmit-uncertain {pj.job.id} to send it again")


def _iso(moment: object) -> str:
    from datetime import UTC, datetime

    if isinstance(moment, datetime):
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(moment)
