"""`runner cache gc`: mark what committed lockfiles pin, sweep the rest past a grace period.

Mark: every request key and every digest the given lockfiles name, and every
digest a kept record names. Sweep: records, then blobs, that nothing marked
*and* that are older than the grace period. Age alone never deletes anything
(an old take a lockfile pins stays forever), and nothing young is deleted
either: a run in progress, or a branch whose lockfile is not committed yet,
has that long to be seen.

Records go before blobs, so a reader racing the sweep meets at worst a record
without its bytes, which it treats as a miss. Everything is listed and marked
before the first deletion: a lockfile that cannot be read, or a listing that
fails, deletes nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import StoreError
from runner.store.lockfile import read_lockfile
from runner.team.objects import Bucket, Listed
from runner.team.records import BLOBS, RECORDS, is_digest
from runner.team.transfer import read_record

DEFAULT_GRACE_DAYS = 7.0


@dataclass
class GcReport:
    lockfiles: int = 0
    marked_keys: int = 0
    marked_digests: int = 0
    records: int = 0  # records found
    blobs: int = 0  # blobs found
    deleted_records: list[Listed] = field(default_factory=list)
    deleted_blobs: list[Listed] = field(default_factory=list)
    young: int = 0  # unreferenced, but inside the grace period: kept
    requests: int = 0
    elapsed_s: float = 0.0

    @property
    def freed_bytes(self) -> int:
        return sum(o.size for o in (*self.deleted_records, *self.deleted_blobs))


def marks(lockfiles: list[Path]) -> tuple[set[str], set[str]]:
    """(request keys, digests) the lockfiles pin. A path that is not a readable
    lockfile is an error: a typo must not make every take look unreferenced."""
    keys: set[str] = set()
    digests: set[str] = set()
    for path in lockfiles:
        if not path.is_file():
            raise StoreError(f"{path}: no such lockfile; nothing was deleted")
        for entry in read_lockfile(path).values():
            keys.add(entry.key)
            digests.add(entry.sha256)
    return keys, digests


async def collect(bucket: Bucket, lockfiles: list[Path], *, grace_days: float,
                  dry_run: bool, now_s: float | None = None) -> GcReport:
    started = time.perf_counter()
    keys, digests = marks(lockfiles)
    report = GcReport(lockfiles=len(lockfiles), marked_keys=len(keys))
    records, blobs = await asyncio.gather(bucket.list(RECORDS), bucket.list(BLOBS))
    report.records, report.blobs = len(records), len(blobs)
    cutoff = dt.datetime.fromtimestamp((now_s or time.time()) - grace_days * 86400.0, dt.UTC)
    kept_records = []
    for listed in records:
        key = listed.path.removeprefix(RECORDS)
        if key in keys:
            kept_records.append(key)
        elif listed.modified > cutoff:
            kept_records.append(key)
            report.young += 1
        else:
            report.deleted_records.append(listed)
    digests |= await _named_by(bucket, kept_records)
    report.marked_digests = len(digests)
    for listed in blobs:
        digest = listed.path.removeprefix(BLOBS)
        if not is_digest(digest) or digest in digests:
            continue  # not ours to judge, or marked
        if listed.modified > cutoff:
            report.young += 1
        else:
            report.deleted_blobs.append(listed)
    if not dry_run:
        await bucket.delete([o.path for o in report.deleted_records])
        await bucket.delete([o.path for o in report.deleted_blobs])
    report.requests = bucket.stats.requests
    report.elapsed_s = time.perf_counter() - started
    return report


async def _named_by(bucket: Bucket, keys: list[str]) -> set[str]:
    """The digests the kept records name (a damaged record names none)."""
    slots = asyncio.Semaphore(64)

    async def one(key: str) -> str | None:
        async with slots:
            found = await read_record(bucket, key)
        return found.record.sha256 if found.record is not None else None

    return {d for d in await asyncio.gather(*(one(k) for k in keys)) if d is not None}
