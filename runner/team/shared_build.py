"""What a run shares with the team, set up in one place.

    team = await connect(pipeline, env, options...)   cli/run.py, before anything is journaled
    team.account_limiter(config, api_key)             cli/run.py, one per provider account
    RunContext(remote=team.remote, claims=team.claims)  cli/run.py: the engine's two ports
    await team.close()                                cli/run.py, when the run ends

`connect` opens what the environment configures and checks that it answers, so
that a wrong URL or password stops the run before anything is bought:

    RUNNER_REMOTE_CACHE=s3://...       results (remote_cache.py)
    RUNNER_COORDINATOR=postgresql://   claims of requests and shared budgets (claims.py)
    RUNNER_LIMITER=redis://...         each account's rate window and in-flight cap
                                       (shared_limiter.py)

The engine knows the remote cache and the claims only as Protocols
(runner.engine.context: `SharedResults`, `SharedClaims`; the scheduler's
`_produce_shared` uses them), and a shared account limiter as the
`AccountLimiter` it extends. With none of them set, both ports are None and
every account keeps the in-process limiter: the run is exactly what it is on one
machine alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runner.catalog.accounts import ProviderAccount
from runner.engine.events import Event, EventKind
from runner.engine.limits import AccountLimiter
from runner.errors import UsageError
from runner.manifest.types import Pipeline

if TYPE_CHECKING:
    from runner.team.claims import Claims
    from runner.team.remote_cache import RemoteCache
    from runner.team.shared_limiter import SharedLimiter

_BUDGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


@dataclass(frozen=True, slots=True)
class BudgetOption:
    """`--budget NAME[=CAP]`: a budget shared by every run that names it."""

    name: str
    cap: float | None  # None: join the budget as it is (or --max-credits is its cap)


def parse_budget(text: str) -> BudgetOption:
    name, sep, cap_text = text.partition("=")
    name = name.strip()
    if not _BUDGET_NAME.match(name):
        raise UsageError(f"--budget {text!r}: expected NAME=CAP or NAME, NAME being 1-64 "
                         "letters, digits, '.', '_' or '-' (e.g. --budget team-sfx=5000)")
    if not sep:
        return BudgetOption(name, None)
    try:
        cap = float(cap_text)
    except ValueError:
        cap = -1.0
    if not cap >= 0 or cap == float("inf"):
        raise UsageError(f"--budget {text!r}: CAP must be a number of credits >= 0, "
                         f"not {cap_text!r}")
    return BudgetOption(name, cap)


def shared_budget(budget: str | None, max_credits: float | None) -> BudgetOption | None:
    """The shared budget a run asked for: `--budget NAME=CAP`, or `--budget NAME` with
    `--max-credits CAP` (which then is the shared budget's cap, not a budget of this run's)."""
    if budget is None:
        return None
    option = parse_budget(budget)
    if max_credits is not None:
        if option.cap is not None and abs(option.cap - max_credits) > 1e-9:
            raise UsageError(f"--budget {budget} and --max-credits {max_credits:g} disagree: "
                             f"give the shared budget's cap once (--budget {option.name}=CAP)")
        option = BudgetOption(option.name, max_credits)
    return option


@dataclass
class Team:
    """The run's shared services; each None when not configured."""

    remote: RemoteCache | None = None
    claims: Claims | None = None
    limiter: SharedLimiter | None = None

    def account_limiter(self, config: ProviderAccount, api_key: str) -> AccountLimiter:
        """The account's limiter: shared with every machine when RUNNER_LIMITER is set."""
        if self.limiter is None:
            return AccountLimiter(config.limits)
        from runner.team.shared_limiter import SharedAccountLimiter

        return SharedAccountLimiter(config.limits, self.limiter.account(config, api_key))

    async def close(self) -> None:
        if self.claims is not None:
            await self.claims.close()
        if self.limiter is not None:
            await self.limiter.close()


async def connect(pipeline: Pipeline, env: Mapping[str, str], *, target: str,
                  remote_cache_mode: str | None, budget: BudgetOption | None,
                  announce: Callable[[Event], None]) -> Team:
    """Open what the environment configures (see the module docstring), or raise
    UsageError / a StoreError naming what cannot be used, before any job runs."""
    from runner.team.coordinator import lease_s
    from runner.team.coordinator import resolve_url as coordinator_url
    from runner.team.remote_cache import connect as connect_remote
    from runner.team.shared_limiter import SharedLimiterUsage
    from runner.team.shared_limiter import resolve_url as limiter_url

    team_lease_s = lease_s(env)
    ledger_url = coordinator_url(env)
    try:
        redis_url = limiter_url(env)
    except SharedLimiterUsage as error:
        raise UsageError(str(error)) from None
    if budget is not None and ledger_url is None:
        raise UsageError(f"--budget {budget.name}: a shared budget lives in the team's "
                         "coordinator: set RUNNER_COORDINATOR=postgresql://..., or use "
                         "--max-credits for a budget of this run alone")
    team = Team(remote=await connect_remote(pipeline, env, remote_cache_mode))
    try:
        if ledger_url is not None:
            team.claims = await _connect_claims(ledger_url, team_lease_s, pipeline, target,
                                                budget, announce)
        if redis_url is not None:
            from runner.team.shared_limiter import SharedLimiter

            limiter = SharedLimiter(redis_url, lease_s=team_lease_s)
            await limiter.open()
            team.limiter = limiter
    except BaseException:
        await team.close()
        raise
    return team


async def _connect_claims(url: str, lease_s: float, pipeline: Pipeline, target: str,
                          budget: BudgetOption | None,
                          announce: Callable[[Event], None]) -> Claims:
    from runner.team.claims import Claims
    from runner.team.coordinator import Coordinator

    coordinator = Coordinator(url, lease_s=lease_s)
    await coordinator.open()
    try:
        state = None
        if budget is not None:
            state, before = await coordinator.set_budget(budget.name, budget.cap)
            if before is not None:
                announce(Event(EventKind.WARNING, message=f"shared budget '{budget.name}': cap "
                               f"changed from {before:g} to {state.cap:g} by this run"))
    except BaseException:
        await coordinator.close()
        raise
    return Claims(coordinator, pipeline.name, target, state,
                  poll_s=min(0.5, lease_s / 4))
