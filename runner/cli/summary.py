"""The end-of-run summary: counts, credits, time, failures by cause, what to do next."""

from __future__ import annotations

import os
import shlex
from collections import defaultdict
from pathlib import Path
from typing import Any

from runner.engine.events import RemoteTally, Tally, TeamTally
from runner.engine.retry import JobOutcome
from runner.engine.scheduler import RunResult
from runner.plan.plan import Plan, State

_ORDER = [JobOutcome.DONE, JobOutcome.CACHED, JobOutcome.FAILED, JobOutcome.UNCERTAIN,
          JobOutcome.SKIPPED, JobOutcome.INTERRUPTED]


def _cause(message: str) -> str:
    """Failures grouped by what went wrong, not by their task ids."""
    head = message.split(" (task ", 1)[0]
    return head if len(head) <= 160 else head[:157] + "..."


def target_options(options: Any) -> list[str]:
    """The options that chose where the run went: a hint to run again must repeat them,
    or copying it would send the requests to the live API."""
    if getattr(options, "sandbox_url", None):
        return ["--sandbox-url", str(options.sandbox_url)]
    if getattr(options, "sandbox", False):
        return ["--sandbox"]
    return []


def _kept_edits(plan: Plan, options: Any) -> list[str]:
    """Outputs edited by hand are kept; say so, and how to replace them."""
    kept = [p.job for p in plan.jobs if p.state is State.MODIFIED]
    if not kept:
        return []
    ids = sorted({job.segment.parent if job.segment else job.base_id for job in kept})
    base = ["runner", "run", os.path.relpath(plan.pipeline.path), *target_options(options)]
    shown = ", ".join(job.output for job in kept[:5]) + (
        f" and {len(kept) - 5} more" if len(kept) > 5 else "")
    return [f"warning: kept {len(kept)} output(s) edited by hand: {shown}",
            "  to put the generated take back: " + shlex.join([*base, "--restore", *ids[:50]]),
            "  to pay for a new take over it: " + shlex.join([*base, "--force", *ids[:50]])]


def render_summary(plan: Plan, result: RunResult, tally: Tally, manifest: Path,
                   options: Any) -> str:
    up_to_date = sum(1 for p in plan.jobs if p.state in (State.UP_TO_DATE, State.FROZEN))
    parts = [f"{tally.outcomes[o]} {o.value}" for o in _ORDER if tally.outcomes[o]]
    if up_to_date:
        parts.append(f"{up_to_date} up to date")
    lines = [(f"{plan.pipeline.name}: {len(plan.jobs)} jobs: "
              f"{', '.join(parts) or 'nothing to do'} in {tally.elapsed_s:.1f} s; "
              f"{tally.requests_submitted} requests, {tally.retries} retries, "
              f"{tally.credits:g} credits")]
    lines.append(f"outputs in {os.path.relpath(plan.layout.output_dir)}, "
                 f"lockfile {os.path.relpath(plan.layout.lockfile)}")
    if tally.remote is not None:
        lines.append(remote_line(tally.remote))
    if tally.team is not None:
        lines.append(team_line(tally.team))
    for account, reason in tally.stopped_accounts.items():
        lines.append(f"account '{account}' stopped: {reason}")
    if tally.budget_stop:
        lines.append(f"budget stopped the run: {tally.budget_stop}")
    for warning in tally.warnings:
        lines.append(f"warning: {warning}")
    lines += _kept_edits(plan, options)
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for failure in tally.failures:
        outcome = result.outcomes.get(failure.job_id, JobOutcome.FAILED).value
        groups[(outcome, _cause(failure.reason))].append(failure)
    for (outcome, cause), failures in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"{outcome} ({len(failures)}): {cause}")
        for failure in failures[:5]:
            task = f", task {failure.task_id}" if failure.task_id else ""
            lines.append(f"  {failure.job_id} ({failure.provider}{task})")
        if len(failures) > 5:
            lines.append(f"  ... and {len(failures) - 5} more")
    retry = [f.job_id for f in tally.failures
             if result.outcomes.get(f.job_id) in (JobOutcome.FAILED, JobOutcome.SKIPPED,
                                                  JobOutcome.INTERRUPTED)]
    base = ["runner", "run", os.path.relpath(manifest), *target_options(options)]
    if retry:
        lines.append("to retry them: " + shlex.join([*base, "--only", *sorted(set(retry))[:50]]))
    uncertain = sorted({f.job_id for f in tally.failures
                        if result.outcomes.get(f.job_id) is JobOutcome.UNCERTAIN})
    if uncertain:
        lines.append("unanswered requests: look for them in the provider's task log; then "
                     "collect one with --adopt-task ID=TASK_ID, or send again with: "
                     + shlex.join([*base, "--resubmit-uncertain", *uncertain[:50]]))
    return "\n".join(lines)


def team_line(team: TeamTally) -> str:
    """The team's ledger in the summary: what other machines did for this run."""
    parts = [f"{team.waited} waited for another machine",
             f"{team.taken} built by another machine (not bought here)"]
    if team.adopted:
        parts.append(f"{team.adopted} adopted from a machine that stopped (collected, not "
                     "bought again)")
    return "team: " + ", ".join(parts)


def remote_line(remote: RemoteTally) -> str:
    """The team's remote cache in the summary: what it answered, what it cost."""
    parts = [f"{remote.hits} hit(s)", f"{remote.misses} miss(es)",
             f"{remote.stored} recorded"]
    if remote.adopted:
        parts.append(f"{remote.adopted} adopted (bought here too, but another machine "
                     "recorded first: its take is kept)")
    return (f"remote cache: {', '.join(parts)}; {remote.bytes_moved / 1e6:.1f} MB moved, "
            f"busy {remote.busy_s:.2f} s")
