"""What every job of a run shares: the run's context, its accounts, and how a job ends.

`RunContext` holds the run's client, journal, cache, accounts, policy, budget and
event bus; `Account` one provider account at run time (adapter, limiter, what its
tasks take); `Finish` ends a job with its one outcome. The team's shared results
and claims are known here only as Protocols (`SharedResults`, `SharedClaims`):
runner.team implements them, and the command that assembles a run hands them in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from runner.catalog.accounts import ProviderAccount
from runner.engine.budget import Budget
from runner.engine.events import Bus, Event, EventKind
from runner.engine.retry import JobOutcome, RetryPolicy
from runner.plan.plan import PlannedJob
from runner.plan.pricing import Price
from runner.providers import download
from runner.providers.base import Adapter
from runner.store.cache import ContentCache
from runner.store.journal import AssetRow, Journal
from runner.store.layout import BuildLayout


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
    limiter: Any  # runner.engine.limits.AccountLimiter
    latency: LatencyEstimate = field(default_factory=LatencyEstimate)
    stopped: str | None = None  # why no more requests are sent to it
    # Since when every request has failed to connect (None: the last one got an answer).
    unreachable_since: float | None = None
    connect_failures: int = 0
    # Its base URL is in private address space (the sandbox on loopback): its result
    # URLs may redirect there too. None until first asked (`allows_private`).
    private_base: bool | None = None

    async def allows_private(self) -> bool:
        if self.private_base is None:
            self.private_base = await download.is_private(self.config.base_url)
        return self.private_base


class SharedResults(Protocol):
    """Results shared with other machines (runner.team's remote cache): looked in before
    any request, told of every result after. The engine knows only this interface; the
    command that assembles a run hands it an implementation."""

    async def restore(self, ctx: RunContext, pj: PlannedJob) -> AssetRow | None:
        """The team's take of this request, stored locally; None when there is none."""

    async def record(self, ctx: RunContext, pj: PlannedJob, asset: AssetRow) -> AssetRow:
        """Share a result this machine made; returns the take to keep (the team's first)."""


Build = Callable[[PlannedJob], Awaitable[AssetRow]]


Take = Callable[[PlannedJob], Awaitable[AssetRow | None]]


class SharedClaims(Protocol):
    """The team's ledger of requests (runner.team.claims): machines sharing an account
    claim each request before paying for it, so that no two of them buy it. The engine
    knows only this interface; the command that assembles a run hands it an
    implementation, and the shared budget (`--budget`) lives behind it."""

    def applies(self, pj: PlannedJob) -> bool:
        """Whether the job's request is the team's to claim (it may buy something)."""

    async def produce(self, ctx: RunContext, pj: PlannedJob, build: Build,
                      take: Take) -> tuple[AssetRow, JobOutcome]:
        """Build the job as the holder of its claim (`build`), or take what another
        machine bought (`take`: the team's remote cache, or nothing)."""

    async def sending(self, pj: PlannedJob) -> None:
        """Before the request leaves (journal before network, and the team's ledger too).
        Raises `Finish` when this process no longer holds the claim: nothing is sent."""

    async def submitted(self, ctx: RunContext, pj: PlannedJob, task_id: str) -> None:
        """The provider gave a task id: any machine can collect it from now on."""


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
    stopping: asyncio.Event  # set: submit nothing more (see `stop`)
    resubmit_uncertain: set[str] = field(default_factory=set)
    adopt: dict[str, str] = field(default_factory=dict)  # job id -> task id (--adopt-task)
    max_download_bytes: int = download.DEFAULT_MAX_BYTES
    callbacks: Any = None  # runner.engine.callbacks.CallbackHub when callbacks are on
    prices: Mapping[str, Price] = field(default_factory=dict)  # what --max-credits reserves
    clock: Callable[[], float] = field(default_factory=lambda: asyncio.get_running_loop().time)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    budget_stopped: bool = False
    # Assets of finished jobs by job id: what dependent jobs (transcriptions) hear.
    assets: dict[str, AssetRow] = field(default_factory=dict)
    # Up-to-date jobs' cache keys: their assets are looked up only if a job needs one.
    locked_keys: dict[str, str] = field(default_factory=dict)
    remote: SharedResults | None = None  # the team's remote cache, when one is configured
    claims: SharedClaims | None = None  # the team's ledger of requests (RUNNER_COORDINATOR)
    # What a job that is not submitted because of `stopping` ends as, and why.
    stop_outcome: tuple[JobOutcome, str] = (JobOutcome.INTERRUPTED,
                                            "not submitted: the run was interrupted")

    def stop(self, outcome: JobOutcome, why: str) -> None:
        """Submit nothing more; jobs not yet sent end as `outcome` with `why`. An
        interruption overrides an earlier stop's reason (a person pressed Ctrl-C)."""
        if not self.stopping.is_set() or outcome is JobOutcome.INTERRUPTED:
            self.stop_outcome = (outcome, why)
        self.stopping.set()

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
