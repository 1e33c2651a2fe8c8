"""The command line of the team's ledger: `runner run --budget` and what `runner status`
shows of other machines.

Kept apart from runner/cli/main.py (as cache.py is): building the parser imports
nothing but argparse; psycopg loads only when RUNNER_COORDINATOR is set.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.team.coordinator import Claim
    from runner.team.status import TeamStatus


def add_run_option(run: argparse.ArgumentParser) -> None:
    """Add `--budget NAME[=CAP]` to `runner run`."""
    run.add_argument("--budget", metavar="NAME[=CAP]", default=None,
                     help="reserve each request's worst case in a credit budget shared by "
                          "every machine and run that names it (needs RUNNER_COORDINATOR); "
                          "CAP creates it or changes its cap, NAME alone joins it as it is "
                          "(or with --max-credits as its cap)")


def team_status(manifest: Path, *, sandbox: bool, env: Mapping[str, str]) -> TeamStatus | None:
    """What every machine holds for this pipeline now; None without RUNNER_COORDINATOR."""
    from runner.team.coordinator import resolve_url

    url = resolve_url(env)
    if url is None:
        return None
    import asyncio

    from runner.manifest.load import load_pipeline
    from runner.team.coordinator import lease_s
    from runner.team.status import read_status

    pipeline = load_pipeline(manifest, env)
    return asyncio.run(read_status(url, lease_s=lease_s(env), pipeline=pipeline.name,
                                   target="sandbox" if sandbox else "live"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lease(claim: Claim) -> str:
    if claim.lease_left_s > 0:
        return f"lease {claim.lease_left_s:.0f} s left"
    return f"lease ran out {-claim.lease_left_s:.0f} s ago: the next run adopts it"


def describe_claim(claim: Claim) -> str:
    """One claim as `runner status` says it: what, who, since when."""
    from runner.team.coordinator import ClaimState

    since = _iso(claim.claimed_at)
    if claim.state is ClaimState.UNCERTAIN or (claim.state is ClaimState.SENDING
                                               and claim.expired):
        return (f"sent by {claim.holder} at {_iso(claim.updated_at)}, its answer never "
                "recorded: check the provider's task log, then --adopt-task or "
                "--resubmit-uncertain")
    if claim.state is ClaimState.FAILED:
        return f"failed on {claim.holder} at {_iso(claim.updated_at)}: {claim.message or ''}"
    what = {ClaimState.CLAIMED: "waiting to send", ClaimState.SENDING: "sending",
            ClaimState.SUBMITTED: "submitted, collecting"}[claim.state]
    adopted = f" (adopted from {claim.previous_holder})" if claim.adopted_from else ""
    return f"{what}: held by {claim.holder}{adopted} since {since}, {_lease(claim)}"


def render_team_status(status: TeamStatus) -> str:
    lines = [f"team ({status.where}): {len(status.claims)} open claim(s) of this build"]
    width = max((len(c.job_id) for c in status.claims), default=2)
    for claim in status.claims:
        task = f"task {claim.task_id}" if claim.task_id else "-"
        lines.append(f"  {claim.job_id.ljust(width)}  {claim.state.value.ljust(9)}  {task}  "
                     f"{describe_claim(claim)}")
    for budget in status.budgets:
        lines.append(f"  {budget.describe()}")
    return "\n".join(lines)


def claims_json(status: TeamStatus) -> dict[str, dict[str, Any]]:
    """Each open claim by job id, for `runner status --json`."""
    return {c.job_id: {"state": c.state.value, "host": c.host, "pid": c.pid,
                       "since": _iso(c.claimed_at), "lease_left_s": round(c.lease_left_s, 1),
                       "task_id": c.task_id, "detail": describe_claim(c)}
            for c in status.claims}
