"""`runner cache push` and `runner cache pull`: a build's locked takes, to and from the team.

push: every take the lockfile pins and the local cache holds is published
(bytes, then a create-only record). A record the team already has for the same
bytes is left alone after checking that its bytes are there; a record naming
another take stays the team's (the first recorded), but this take's bytes go
up anyway, so that this lockfile stays pullable by anyone.

pull: every locked take whose output is not on disk is fetched by its digest
(the lockfile names it, so no provider key is needed), checked, stored in the
local cache and written out with its companions, and the journal learns of
it: `runner run` afterwards finds the build up to date. Nothing is bought.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.engine.materialize import record, write_outputs
from runner.manifest.load import load_pipeline
from runner.manifest.types import JobKind
from runner.plan.plan import Plan, PlannedJob, State, make_plan
from runner.store.cache import ContentCache, file_digest
from runner.store.journal import AssetRow, Journal
from runner.store.layout import BuildLayout, Target, layout_for
from runner.team.config import RemoteCacheConfig, resolve
from runner.team.objects import Bucket
from runner.team.records import Record, blob_path
from runner.team.transfer import Published, Transfers, entry_ext, entry_fields, local_take

# Takes moved at once; each is a request or two, so the bucket's own limit
# (runner.team.objects) is what really bounds the connections.
CONCURRENT_TAKES = 64


@dataclass
class SyncReport:
    """What a push or a pull did, job by job where something needs saying."""

    remote: str
    layout: BuildLayout
    moved: int = 0  # takes pushed or pulled
    present: int = 0  # already there (in the remote cache, or on disk)
    differ: list[str] = field(default_factory=list)  # push: the team recorded another take
    problems: list[tuple[str, str]] = field(default_factory=list)  # (job id, what is wrong)
    bytes_moved: int = 0
    requests: int = 0
    elapsed_s: float = 0.0


def _setup(manifest: Path, *, sandbox: bool, env: Mapping[str, str],
           url: str | None) -> tuple[Plan, RemoteCacheConfig]:
    from runner.errors import UsageError

    pipeline = load_pipeline(manifest, env)
    config = resolve(pipeline, env, url=url)
    if config is None:
        raise UsageError("no remote cache: set RUNNER_REMOTE_CACHE=s3://BUCKET/PREFIX, "
                         "`remote_cache:` in the manifest, or --remote-cache URL")
    layout = layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE)
    outputs = {}
    if layout.journal.exists():
        with Journal(layout.journal, readonly=True) as journal:
            outputs = journal.outputs()
    return make_plan(pipeline, layout, outputs=outputs), config


async def _each(jobs: list[PlannedJob], work: Callable[[PlannedJob], Awaitable[None]]) -> None:
    slots = asyncio.Semaphore(CONCURRENT_TAKES)

    async def one(pj: PlannedJob) -> None:
        async with slots:
            await work(pj)

    await asyncio.gather(*(one(pj) for pj in jobs))


async def push(manifest: Path, *, sandbox: bool, env: Mapping[str, str],
               url: str | None = None) -> SyncReport:
    plan, config = _setup(manifest, sandbox=sandbox, env=env, url=url)
    layout = plan.layout
    report = SyncReport(config.url, layout)
    bucket = Bucket(config)
    started = time.perf_counter()
    await bucket.get("ac/v1/probe")  # a wrong key fails here, once, before any upload
    cache = ContentCache(layout.cache_dir(env))
    journal = Journal(layout.journal, readonly=True) if layout.journal.exists() else None
    transfers = Transfers(bucket, cache)

    async def push_one(pj: PlannedJob) -> None:
        entry = pj.locked
        assert entry is not None
        data = await local_take(cache, entry.sha256, entry_ext(entry))
        if data is None:
            report.problems.append(
                (pj.job.id, "not in the local cache (pull it or run the build first)"))
            return
        found = await transfers.read_record(entry.key)
        if found.record is not None and found.record.sha256 == entry.sha256 and \
                await bucket.head(blob_path(entry.sha256)) == entry.size:
            report.present += 1  # recorded, and its bytes are there: nothing to send
            return
        asset = journal.asset(entry.key) if journal is not None else None
        if asset is None or asset.sha256 != entry.sha256:
            asset = AssetRow(entry.key, payload=None, run_id=None, **entry_fields(entry))
        same_request = entry.key == pj.key
        published = await transfers.publish(Record.of(
            asset, job=pj.job.id, provider=entry.provider, model=entry.model,
            fmt=pj.job.format if same_request else "",
            data=data if isinstance(data, bytes) else None, now_s=time.time()), data)
        if published.outcome is Published.THEIRS:
            report.differ.append(pj.job.id)
        elif published.outcome is Published.SAME:
            report.present += 1
        else:
            report.moved += 1

    try:
        await _each([pj for pj in plan.jobs if pj.locked is not None], push_one)
    finally:
        if journal is not None:
            journal.close()
        cache.close()
    return _finished(report, bucket, started)


async def pull(manifest: Path, *, sandbox: bool, env: Mapping[str, str],
               url: str | None = None) -> SyncReport:
    plan, config = _setup(manifest, sandbox=sandbox, env=env, url=url)
    layout = plan.layout
    report = SyncReport(config.url, layout)
    wanted = [pj for pj in plan.jobs if _needs_pull(pj, layout)]
    report.present = sum(1 for pj in plan.jobs if pj.locked is not None) - len(wanted)
    bucket = Bucket(config)
    started = time.perf_counter()
    if wanted:
        await bucket.get("ac/v1/probe")  # a wrong key fails here, once, before any download
    cache = ContentCache(layout.cache_dir(env))
    cache.clear_incoming()
    transfers = Transfers(bucket, cache)

    async def pull_one(pj: PlannedJob, journal: Journal) -> None:
        entry = pj.locked
        assert entry is not None
        fetched = await transfers.fetch(entry.sha256, entry.size, entry_ext(entry))
        if fetched.blob is None:
            problem = f"the locked take {entry.sha256[:12]}: {fetched.problem}"
            report.problems.append((pj.job.id, problem))
            return
        payload = None
        if pj.job.kind is JobKind.STITCH:  # its sidecar and subtitles travel in the record
            found = await transfers.read_record(entry.key)
            if found.record is not None and found.record.sha256 == entry.sha256:
                payload = found.record.payload
        asset = journal.record_asset(entry.key, payload=payload, **entry_fields(entry))
        written = await write_outputs(pj, asset, cache, layout, fetched.data)
        record(pj, asset, written, journal)
        report.moved += 1

    try:
        with Journal(layout.journal) as journal:
            await _each(wanted, lambda pj: pull_one(pj, journal))
    finally:
        cache.close()
    return _finished(report, bucket, started)


def _needs_pull(pj: PlannedJob, layout: BuildLayout) -> bool:
    """A locked take whose output is not on disk as locked (missing, altered, or never
    written in this checkout)."""
    entry = pj.locked
    if entry is None or entry.output != pj.job.output or pj.state is State.UP_TO_DATE:
        return False
    path = layout.output_path(entry.output)
    try:
        if path.stat().st_size == entry.size and file_digest(path) == entry.sha256:
            return False
    except OSError:
        pass
    return True


def _finished(report: SyncReport, bucket: Bucket, started: float) -> SyncReport:
    report.bytes_moved = bucket.stats.bytes_down + bucket.stats.bytes_up
    report.requests = bucket.stats.requests
    report.elapsed_s = time.perf_counter() - started
    return report
