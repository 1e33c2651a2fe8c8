"""The team's remote cache during a run: look before every paid request, record after.

The engine calls two methods, from one place (`Engine._build`):

    asset = await remote.restore(ctx, pj)    # before the job goes to its provider
    asset = await remote.record(ctx, pj, asset)   # after a result is stored locally

`restore` finds the request's take (the one this checkout's lockfile pins, else
the one the team recorded), downloads it, checks its sha256 and stores it in
the local cache: the job is then built with no provider request at all. A
record without intact bytes is a miss with a warning. A remote error is never a
miss: the job stops with the reason and nothing is bought (`--remote-cache-mode
off` is the explicit way round).

`record` publishes a result this machine bought (bytes first, then the record,
create-only). When another machine recorded a take for the same request first,
this machine adopts it: the team's take is the first one recorded, and the
lockfile pins it. A result that cannot be recorded is kept locally with a
warning: it is paid for and safe here, only not shared.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from runner.engine.context import Finish, RunContext
from runner.engine.events import Event, EventKind
from runner.engine.retry import JobOutcome
from runner.errors import RemoteCacheError, StoreError
from runner.manifest.types import Pipeline
from runner.plan.plan import PlannedJob
from runner.store.journal import AssetRow
from runner.team.config import RemoteCacheConfig, resolve
from runner.team.records import RECORDS, Record
from runner.team.transfer import Published, Transfers, entry_ext, entry_fields, local_take

if TYPE_CHECKING:
    from runner.team.objects import Bucket


async def connect(pipeline: Pipeline, env: Mapping[str, str],
                  mode: str | None) -> RemoteCache | None:
    """The run's remote cache, checked to answer; None when none is configured or
    the mode is off. Raises UsageError (configuration) or RemoteCacheError (the
    cache cannot be used: wrong key, no bucket, unreachable) before any job runs."""
    config = resolve(pipeline, env, mode=mode)
    if config is None:
        return None
    from runner.team.objects import Bucket  # the S3 client loads only when it is used

    remote = RemoteCache(config, Bucket(config))
    await remote.check()
    return remote


class RemoteCache:
    """The remote cache of one run: its configuration and its bucket (see the module)."""

    def __init__(self, config: RemoteCacheConfig, bucket: Bucket) -> None:
        self.config = config
        self.bucket = bucket
        self._transfers: Transfers | None = None

    async def check(self) -> None:
        """One read of a record that never exists: proves the endpoint, the bucket and
        the key, so that a wrong secret stops the run before anything is looked up or
        bought rather than failing every job one by one."""
        await self.bucket.get(RECORDS + "probe")

    def transfers(self, ctx: RunContext) -> Transfers:
        if self._transfers is None:
            self._transfers = Transfers(self.bucket, ctx.cache)
        return self._transfers

    async def restore(self, ctx: RunContext, pj: PlannedJob) -> AssetRow | None:
        """The job's asset from the remote cache, stored locally; None on a miss."""
        if not self.config.mode.reads or pj.state.new_take:
            return None  # a forced job pays for a new take on purpose
        try:
            return await self._restore(ctx, pj)
        except RemoteCacheError as error:
            raise Finish(JobOutcome.FAILED, f"{error}; nothing was bought for this job: run "
                         "again once the remote cache answers, or with --remote-cache-mode "
                         "off to buy without it") from error

    async def _restore(self, ctx: RunContext, pj: PlannedJob) -> AssetRow | None:
        transfers = self.transfers(ctx)
        found = await transfers.read_record(pj.key)
        moved = found.bytes_moved
        record = found.record
        problems = [found.problem] if found.problem else []
        pinned = pj.locked if pj.locked is not None and pj.locked.key == pj.key else None
        if pinned is not None and (record is None or record.sha256 != pinned.sha256):
            # This checkout's lockfile pins another take than the team's record: the
            # lockfile decides what this build holds.
            fetched = await transfers.fetch(pinned.sha256, pinned.size, entry_ext(pinned))
            moved += fetched.bytes_moved
            if fetched.blob is not None:
                asset = ctx.journal.record_asset(pj.key, **entry_fields(pinned))
                self._emit(ctx, EventKind.REMOTE_HIT, pj, moved, "the take the lockfile pins")
                return asset
            problems.append(f"the take the lockfile pins: {fetched.problem}")
        if record is not None:
            fetched = await transfers.fetch(record.sha256, record.size, record.ext,
                                            record.inline)
            moved += fetched.bytes_moved
            if fetched.blob is not None:
                if problems:  # the pinned take is gone: the team's take, rather than a new one
                    ctx.emit(EventKind.WARNING, pj, message=f"remote cache: {problems[-1]}; "
                             "restored the team's take instead")
                asset = ctx.journal.record_asset(pj.key, **record.asset_fields())
                self._emit(ctx, EventKind.REMOTE_HIT, pj, moved, _made_by(record))
                return asset
            problems.append(f"the team's record: {fetched.problem}")
        if problems:
            ctx.emit(EventKind.WARNING, pj, message=f"remote cache: {'; '.join(problems)}; "
                     "counted as a miss (the next machine to record this request repairs "
                     "the record)")
        self._emit(ctx, EventKind.REMOTE_MISS, pj, moved, "")
        return None

    async def record(self, ctx: RunContext, pj: PlannedJob, asset: AssetRow) -> AssetRow:
        """Publish a result this machine just stored; returns the asset the job keeps:
        its own, or the team's take if another machine recorded one first."""
        if not self.config.mode.writes:
            return asset
        try:
            data = await local_take(ctx.cache, asset.sha256, asset.ext)
            if data is None:
                ctx.emit(EventKind.WARNING, pj, message="remote cache: not recorded: the "
                         "result is no longer in the local cache")
                return asset
            inline = data if isinstance(data, bytes) else None
            published = await self.transfers(ctx).publish(
                Record.of_job(pj, asset, inline, time.time()), data)
        except StoreError as error:  # the remote cache's, or a damaged local file
            ctx.emit(EventKind.WARNING, pj, message=f"not recorded in the remote cache "
                     f"(the result is kept here): {error}")
            return asset
        moved = published.bytes_moved
        theirs = published.theirs
        if published.outcome is Published.SAME and theirs is not None and \
                theirs.task_id != asset.task_id and not pj.state.new_take:
            # Another machine's task made these very bytes and recorded them first: the
            # take is the same, and so is its provenance in every lockfile.
            adopted = ctx.journal.record_asset(pj.key, **theirs.asset_fields())
            self._emit(ctx, EventKind.REMOTE_ADOPTED, pj, moved, "another machine recorded "
                       f"the same bytes first ({_made_by(theirs)})")
            return adopted
        if published.outcome is Published.THEIRS and theirs is not None:
            if pj.state.new_take:
                self._emit(ctx, EventKind.REMOTE_STORED, pj, moved, "a new take on request: "
                           "its bytes are shared; the team's record keeps its first take")
                return asset
            adopted = ctx.journal.record_asset(pj.key, **theirs.asset_fields())
            self._emit(ctx, EventKind.REMOTE_ADOPTED, pj, moved,
                       f"another machine recorded this request first ({_made_by(theirs)}); "
                       f"its take replaces this one (task {asset.task_id})")
            return adopted
        if published.outcome is Published.REPAIRED:
            ctx.emit(EventKind.WARNING, pj, message=f"remote cache: the team's record was "
                     f"damaged ({published.problem}); this take replaced it")
        elif published.outcome is Published.CONTENDED:
            ctx.emit(EventKind.WARNING, pj, message="remote cache: the team's record kept "
                     "changing while this machine repaired it; left as it is")
        self._emit(ctx, EventKind.REMOTE_STORED, pj, moved, published.outcome.value)
        return asset

    def _emit(self, ctx: RunContext, kind: EventKind, pj: PlannedJob, moved: int,
              message: str) -> None:
        ctx.bus.emit(Event(kind, pj.job.id, pj.job.provider, message=message,
                           size_bytes=moved, busy_s=round(self.bucket.stats.busy_s, 6)))


def _made_by(record: Record) -> str:
    task = f", task {record.task_id}" if record.task_id else ""
    return f"recorded {record.recorded_at}{task}"
