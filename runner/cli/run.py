"""`runner run`: from a manifest to assets on disk, a lockfile and a summary.

Builds the run's objects (accounts with keys, limiters, adapters, journal,
cache, optional sandbox and callback receiver), hands them to the engine, and
maps what happened to one exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.catalog.accounts import ProviderAccount
from runner.catalog.environment import environment
from runner.catalog.models import Family
from runner.cli.exitcodes import ExitCode
from runner.engine.budget import Budget
from runner.engine.context import Account, RunContext
from runner.engine.events import Bus, Event, EventKind, Observer, Tally
from runner.engine.loop import run_loop
from runner.engine.materialize import output_conflicts
from runner.engine.retry import JobOutcome, RetryPolicy
from runner.engine.scheduler import Engine, RunResult, select
from runner.errors import LockedBuildError, ManifestInvalid, UsageError
from runner.manifest.load import load_pipeline
from runner.manifest.types import JobKind, Pipeline
from runner.plan.plan import Plan, make_plan, takes_in
from runner.store.buildlock import BuildLock
from runner.store.cache import ContentCache
from runner.store.journal import Journal
from runner.store.layout import BuildLayout, Target, layout_for
from runner.store.lockfile import LockEntry, write_lockfile

if TYPE_CHECKING:
    from runner.team.shared_build import Team

# Knobs of the embedded sandbox for `--sandbox`: every documented quirk (the default),
# the providers' published rate limits and realistic latencies, so that the main
# command shows what a real batch looks like (runner/sandbox/config.py REALISTIC_*).
SANDBOX_ARGS = ["--realistic"]


@dataclass
class RunOptions:
    sandbox: bool = False
    sandbox_url: str | None = None
    only: list[str] = field(default_factory=list)
    force: list[str] = field(default_factory=list)
    restore: list[str] = field(default_factory=list)  # hand-edited outputs to put back
    fail_fast: bool = False
    max_active_jobs: int | None = None
    locked: bool = False
    max_credits: float | None = None
    resubmit_uncertain: list[str] = field(default_factory=list)
    adopt: dict[str, str] = field(default_factory=dict)  # --adopt-task JOB=TASK
    callback_url: str | None = None
    callback_listen: str | None = None
    grace_s: float = 30.0
    # Another process holds the build: wait for it (telling `on_lock_wait` once whom we
    # wait for), or refuse at once with BuildBusy (`--no-wait`).
    wait_for_lock: bool = True
    on_lock_wait: Callable[[str], None] | None = None
    recontext: bool = False  # regenerate segments whose neighbours' text changed
    observers: list[Observer] = field(default_factory=list)
    remote_cache_mode: str | None = None  # --remote-cache-mode: read | readwrite | off
    budget: str | None = None  # --budget NAME[=CAP]: shared through RUNNER_COORDINATOR
    # Programmatic knobs (tests and benchmarks): the retry policy and the HTTP read timeout.
    retry_policy: RetryPolicy | None = None
    read_timeout_s: float = 60.0


def _needed_accounts(plan: Plan, only: list[str]) -> list[str]:
    return sorted({p.job.provider for p in select(plan, only) if p.state.needs_work
                   and p.job.kind is JobKind.GENERATE})


def _keys(pipeline: Pipeline, names: list[str], env: Mapping[str, str],
          sandbox: bool) -> dict[str, str]:
    if sandbox:
        return {name: f"sandbox-key-{name}" for name in names}
    keys = {}
    missing = []
    for name in names:
        account = pipeline.accounts[name]
        key = account.api_key(env)
        if key is None:
            missing.append(f"{account.api_key_env} (provider '{name}')")
        else:
            keys[name] = key
    if missing:  # every one at once: a user should not discover them one run at a time
        raise UsageError(
            f"no API key for {len(missing)} provider{'s' if len(missing) > 1 else ''}: set "
            f"{', '.join(missing)} in the environment or in "
            f"{os.path.relpath(pipeline.path.parent / '.env')}, or run against the local "
            "sandbox with --sandbox")
    return keys


def _sandbox_accounts(accounts: dict[str, ProviderAccount], url: str,
                      env: Mapping[str, str]) -> dict[str, ProviderAccount]:
    """Accounts pointed at the sandbox. kie uploads go to its upload listener (its own
    host, like the real API's), unless RUNNER_<ACCOUNT>_UPLOAD_BASE_URL says otherwise."""
    from runner.catalog.accounts import env_name
    from runner.sandbox import discover_provider_urls

    urls = discover_provider_urls(url)
    out = {}
    for name, account in accounts.items():
        flavour = urls.get(account.type, urls.get(account.family.value, {}))
        base = flavour.get("base_url", url)
        upload = env.get(env_name(name, "UPLOAD_BASE_URL")) or flavour.get("upload_base_url", base)
        out[name] = replace(account, base_url=base, upload_base_url=upload.rstrip("/"))
    return out


@contextlib.contextmanager
def _sandbox(options: RunOptions, needed: bool) -> Iterator[str | None]:
    """The sandbox to talk to: the given URL, or an embedded one started only if some
    job needs a provider (a no-op run starts nothing)."""
    if options.sandbox_url:
        yield options.sandbox_url.rstrip("/")
    elif options.sandbox and needed:
        from runner.sandbox import SandboxProcess

        with SandboxProcess(SANDBOX_ARGS) as url:
            yield url
    else:
        yield None


def run_pipeline(manifest: Path, options: RunOptions) -> tuple[int, Plan, RunResult, Tally]:
    """Run a manifest; returns the exit code with what happened (for the CLI and tests)."""
    env = environment(manifest)
    pipeline = load_pipeline(manifest, env)
    sandboxed = options.sandbox or options.sandbox_url is not None
    layout = layout_for(pipeline, Target.SANDBOX if sandboxed else Target.LIVE)
    # One build, one run: everything below (the plan included: it reads the lockfile
    # the holder is about to write) happens under the build's lock.
    with BuildLock(layout.state_dir, "runner run").hold(
            wait=options.wait_for_lock, on_wait=options.on_lock_wait), \
            Journal(layout.journal) as journal:
        plan = make_plan(pipeline, layout, force=options.force, recontext=options.recontext,
                         outputs=journal.outputs(), restore=options.restore,
                         in_cache=takes_in(journal, ContentCache(layout.cache_dir(env))))
        conflicts = output_conflicts(plan, layout.cache_dir(env))
        if conflicts:  # before anything is paid for: see engine.materialize.output_conflicts
            raise ManifestInvalid(conflicts)
        if options.locked and plan.to_generate:
            names = ", ".join(p.job.id for p in plan.to_generate[:20])
            more = f" and {len(plan.to_generate) - 20} more" if len(plan.to_generate) > 20 else ""
            raise LockedBuildError(f"--locked: {len(plan.to_generate)} job(s) would be generated:"
                                   f" {names}{more}")
        needed = _needed_accounts(plan, options.only)
        keys = _keys(pipeline, needed, env, sandboxed)
        tally = Tally()
        if not any(p.state.needs_work for p in select(plan, options.only)):
            result = RunResult()  # a no-op: no event loop, no client, no sandbox
        else:
            with _sandbox(options, bool(needed)) as sandbox_url:
                accounts = pipeline.accounts if sandbox_url is None else \
                    _sandbox_accounts(pipeline.accounts, sandbox_url, env)
                result = run_loop(_run(plan, layout, journal, accounts, keys, options,
                                       [tally, *options.observers], env), env)
        entries = merged_lock_entries(plan, result)
        if result.lock_entries or set(entries) != plan.locked_ids:
            write_lockfile(layout.lockfile, pipeline.name, entries)
    return exit_code(result, tally), plan, result, tally


def merged_lock_entries(plan: Plan, result: RunResult) -> dict[str, LockEntry]:
    """The lockfile after a run: this run's assets over the previous entries, for the
    jobs the manifest still has. A job that failed to rebuild keeps its old entry:
    its old file is still there, and nothing already built is lost."""
    entries = {}
    for p in plan.jobs:
        entry = result.lock_entries.get(p.job.id) or p.locked
        if entry is not None:
            entries[p.job.id] = entry
    return entries


def exit_code(result: RunResult, tally: Tally) -> int:
    if result.interrupted:
        return int(ExitCode.INTERRUPTED)
    if tally.stopped_accounts:
        return int(ExitCode.ACCOUNT_REFUSED)
    bad = (JobOutcome.FAILED, JobOutcome.UNCERTAIN, JobOutcome.SKIPPED, JobOutcome.INTERRUPTED)
    if any(result.outcomes.get(job_id) in bad for job_id in result.outcomes):
        return int(ExitCode.JOBS_FAILED)
    return int(ExitCode.OK)


async def _run(plan: Plan, layout: BuildLayout, journal: Journal,
               accounts: dict[str, ProviderAccount], keys: dict[str, str], options: RunOptions,
               observers: list[Observer], env: Mapping[str, str]) -> RunResult:
    from runner.team import shared_build

    bus = Bus(observers)
    shared = shared_build.shared_budget(options.budget, options.max_credits)
    # Checked before anything is journaled: a wrong URL or key stops the run here.
    team = await shared_build.connect(
        plan.pipeline, env, target=layout.target.value,
        remote_cache_mode=options.remote_cache_mode, budget=shared, announce=bus.emit)
    try:
        return await _run_with(plan, layout, journal, accounts, keys, options, env, bus, team,
                               None if shared is not None else options.max_credits)
    finally:
        await team.close()


async def _run_with(plan: Plan, layout: BuildLayout, journal: Journal,
                    accounts: dict[str, ProviderAccount], keys: dict[str, str],
                    options: RunOptions, env: Mapping[str, str], bus: Bus, team: Team,
                    max_credits: float | None) -> RunResult:
    from runner.engine.callbacks import CallbackHub
    from runner.providers import make_adapter
    from runner.providers.http import make_client

    journal.start_run(layout.target.value)
    journal.preload()
    cache = ContentCache(layout.cache_dir(env))
    cache.clear_incoming()
    async with make_client(read_timeout_s=options.read_timeout_s) as client:
        runtime = {}
        for name, key in keys.items():
            config = accounts[name]
            hmac_key = env.get(f"{config.api_key_env.removesuffix('_API_KEY')}_WEBHOOK_HMAC_KEY")
            runtime[name] = Account(config, make_adapter(config, key, client,
                                                         webhook_hmac_key=hmac_key),
                                    team.account_limiter(config, key))
        hub = None
        if options.callback_url or options.callback_listen:
            market = [a.adapter for a in runtime.values() if a.config.family is Family.MARKET]
            listen = options.callback_listen or "127.0.0.1:0"
            hub = CallbackHub(options.callback_url or f"http://{listen}", listen, market)
            await hub.start()
        ctx = RunContext(client=client, journal=journal, cache=cache, layout=layout,
                         accounts=runtime, policy=options.retry_policy or RetryPolicy(),
                         budget=Budget(max_credits), bus=bus, stopping=asyncio.Event(),
                         resubmit_uncertain=set(options.resubmit_uncertain),
                         adopt=dict(options.adopt), callbacks=hub, remote=team.remote,
                         claims=team.claims, prices=plan.prices)
        engine = Engine(plan, ctx, only=options.only, fail_fast=options.fail_fast,
                        max_active_jobs=options.max_active_jobs, grace_s=options.grace_s)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, engine.interrupt)
            loop.add_signal_handler(signal.SIGTERM, engine.interrupt)
        try:
            result = await engine.run()
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)
                loop.remove_signal_handler(signal.SIGTERM)
            if hub is not None:
                await hub.stop()
                refused = hub.describe_refused()
                if refused is not None:
                    ctx.bus.emit(Event(EventKind.WARNING, message=refused))
            cache.close()
            journal.finish_run("interrupted" if engine.result.interrupted else "finished")
    return result


def print_summary(plan: Plan, result: RunResult, tally: Tally, manifest: Path,
                  options: RunOptions) -> None:
    from runner.cli.summary import render_summary

    print(render_summary(plan, result, tally, manifest, options))
