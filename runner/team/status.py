"""What the team's ledger holds for one build: the open claims of its pipeline (who
holds each request, since when, its task) and the budgets they reserve in.

Read for `runner status` (runner/cli/claims.py renders it); nothing here writes to
the ledger beyond what opening a `Coordinator` does (creating its tables if missing).
"""

from __future__ import annotations

from dataclasses import dataclass

from runner.team.coordinator import BudgetState, Claim, Coordinator


@dataclass(frozen=True, slots=True)
class TeamStatus:
    """The open claims of one pipeline's build in the team's ledger, and their budgets."""

    where: str  # the coordinator, as messages name it (no password)
    claims: list[Claim]
    budgets: list[BudgetState]


async def read_status(url: str, *, lease_s: float, pipeline: str, target: str) -> TeamStatus:
    """Every open claim of `pipeline`'s `target` build (live | sandbox), on any machine."""
    coordinator = Coordinator(url, lease_s=lease_s, pool_size=1)
    await coordinator.open()
    try:
        claims = await coordinator.open_claims(pipeline, target)
        budgets = []
        for name in sorted({c.budget for c in claims if c.budget is not None}):
            state = await coordinator.budget(name)
            if state is not None:
                budgets.append(state)
    finally:
        await coordinator.close()
    return TeamStatus(coordinator.where, claims, budgets)
