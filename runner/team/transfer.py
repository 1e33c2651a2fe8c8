"""Moving takes between the local cache and the remote one, by the layout's rules.

Reading: a record is trusted only with its bytes. A take comes down, its size
and sha256 are checked, and only then is it stored in the local cache; a record
whose bytes are missing or damaged is reported as a problem (a miss), never
used.

Writing (`publish`): the bytes first (overwriting is harmless: same name, same
content, and it repairs a blob lost or damaged since), then the record,
create-only. If a record is there already:
- it names the same bytes: nothing to do;
- it names other bytes that are intact: that is the team's take (the first
  recorded), returned so that the caller can adopt it;
- it names bytes missing or damaged, or cannot be read: it is replaced by this
  one, on condition that nobody changed it meanwhile (`If-Match`), so two
  repairers cannot overwrite each other's work.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import RemoteCacheError
from runner.store.cache import Blob, ContentCache, file_digest
from runner.store.lockfile import LockEntry
from runner.team.records import (
    RECORD_MAX_BYTES,
    Record,
    RecordInvalid,
    blob_path,
    from_iso,
    matches,
    record_path,
)

if TYPE_CHECKING:
    from runner.team.objects import Bucket

# Takes larger than this are streamed to a file instead of held in memory.
STREAM_ABOVE_BYTES = 8 << 20
# Takes up to this size are read on the event loop (microseconds from the page cache).
_READ_ON_LOOP_BYTES = 1 << 20
# A record replaced this many times under our feet is left alone (never a loop).
MAX_REPAIRS = 3


@dataclass(frozen=True, slots=True)
class Found:
    """A record read back: usable, damaged (`problem`), or absent (`record` None)."""

    record: Record | None
    e_tag: str | None = None
    problem: str | None = None
    bytes_moved: int = 0


@dataclass(frozen=True, slots=True)
class Fetch:
    """A take brought into the local cache (`blob`), or why not (`problem`)."""

    blob: Blob | None
    problem: str | None = None
    bytes_moved: int = 0
    data: bytes | None = None  # the take's bytes, when they came in memory (to write from)


class Published(StrEnum):
    CREATED = "created"  # this take is now the team's
    SAME = "same"  # the team's record already names these bytes
    THEIRS = "theirs"  # the team recorded another take first; it is intact
    REPAIRED = "repaired"  # the team's record was damaged; this take replaced it
    CONTENDED = "contended"  # the record kept changing while this one tried to repair it


@dataclass(frozen=True, slots=True)
class Publication:
    outcome: Published
    theirs: Record | None = None  # THEIRS: the team's take, already in the local cache
    problem: str | None = None  # REPAIRED: what was wrong with the record replaced
    bytes_moved: int = 0


async def read_record(bucket: Bucket, key: str) -> Found:
    """The record for a request key. Remote errors raise RemoteCacheError."""
    got = await bucket.get(record_path(key), max_size=RECORD_MAX_BYTES)
    if got is None:
        return Found(None)
    if len(got.data) != got.size:
        return Found(None, got.e_tag, f"its record is {got.size} bytes, too large to be one")
    try:
        return Found(Record.parse(got.data, key), got.e_tag, bytes_moved=len(got.data))
    except RecordInvalid as exc:
        return Found(None, got.e_tag, f"its record is damaged: {exc}", len(got.data))


class Transfers:
    """Takes between one local cache and one remote cache."""

    def __init__(self, bucket: Bucket, cache: ContentCache) -> None:
        self.bucket = bucket
        self.cache = cache

    async def read_record(self, key: str) -> Found:
        return await read_record(self.bucket, key)

    async def fetch(self, sha256: str, size: int, ext: str,
                    inline: bytes | None = None) -> Fetch:
        """Bring a take into the local cache (from the record's inline bytes, or its
        blob), checked against its digest. Already local: nothing is moved."""
        # Not looking again in packs other processes wrote since (a re-read per miss):
        # a take stored twice costs less.
        blob = self.cache.get(sha256, ext, look_again=False)
        if blob is not None:
            return Fetch(blob)
        if inline is not None:  # Record.parse checked these against the digest
            return Fetch(await self.cache.put_verified(inline, sha256, ext), data=inline)
        if size > STREAM_ABOVE_BYTES:
            return await self._fetch_to_file(sha256, size, ext)
        got = await self.bucket.get(blob_path(sha256), max_size=size)
        if got is None:
            return Fetch(None, f"its bytes are missing ({blob_path(sha256)})")
        if not matches(got.data, sha256, size):
            return Fetch(None, f"its bytes are damaged ({blob_path(sha256)}: {got.size} bytes, "
                               f"expected {size} with that digest)", len(got.data))
        return Fetch(await self.cache.put_verified(got.data, sha256, ext),
                     bytes_moved=len(got.data), data=got.data)

    async def _fetch_to_file(self, sha256: str, size: int, ext: str) -> Fetch:
        tmp = self.cache.new_temp(ext)
        try:
            got = await self.bucket.get_to_file(blob_path(sha256), tmp)
            if got is None:
                return Fetch(None, f"its bytes are missing ({blob_path(sha256)})")
            digest, received = got
            if (digest, received) != (sha256, size):
                return Fetch(None, f"its bytes are damaged ({blob_path(sha256)}: {received} "
                                   f"bytes, expected {size} with that digest)", received)
            blob = await asyncio.to_thread(self.cache.adopt, tmp, sha256, ext)
            return Fetch(blob, bytes_moved=received)
        finally:
            tmp.unlink(missing_ok=True)

    async def upload_bytes(self, sha256: str, data: bytes | Path, size: int) -> None:
        await self.bucket.put(blob_path(sha256), data, size)

    async def publish(self, record: Record, data: bytes | Path) -> Publication:
        """Bytes first, then the record, create-only (see the module docstring).
        `data`: the take's bytes, or its file (a large take, streamed in parts)."""
        await self.upload_bytes(record.sha256, data, record.size)
        moved = record.size
        body = record.to_bytes()
        for _ in range(MAX_REPAIRS):
            if await self.bucket.create(record_path(record.key), body):
                return Publication(Published.CREATED, bytes_moved=moved + len(body))
            moved += len(body)
            found = await self.read_record(record.key)
            moved += found.bytes_moved
            if found.record is None and found.problem is None:
                continue  # deleted (gc) between our write and our read: create again
            problem = found.problem
            if found.record is not None:
                if found.record.sha256 == record.sha256:
                    return Publication(Published.SAME, found.record, bytes_moved=moved)
                fetched = await self.fetch(found.record.sha256, found.record.size,
                                           found.record.ext, found.record.inline)
                moved += fetched.bytes_moved
                if fetched.blob is not None:
                    return Publication(Published.THEIRS, found.record, bytes_moved=moved)
                problem = fetched.problem
            assert found.e_tag is not None
            if await self.bucket.replace(record_path(record.key), body, found.e_tag):
                return Publication(Published.REPAIRED, problem=problem,
                                   bytes_moved=moved + len(body))
        return Publication(Published.CONTENDED, bytes_moved=moved)


async def local_take(cache: ContentCache, sha256: str, ext: str) -> bytes | Path | None:
    """A take's bytes to upload, checked against its digest first (a damaged local file
    must never be published under that name): in memory, or a large take's file.
    None if the local cache does not have it."""
    blob = cache.get(sha256, ext)
    if blob is None:
        return None
    if blob.size <= _READ_ON_LOOP_BYTES:
        return cache.read_bytes(blob)
    if blob.size <= STREAM_ABOVE_BYTES or blob.file is None:
        return await asyncio.to_thread(cache.read_bytes, blob)
    path = blob.file
    if await asyncio.to_thread(file_digest, path) != sha256:
        raise RemoteCacheError(f"the local cache file {path} is damaged; not published")
    return path


def entry_ext(entry: LockEntry) -> str:
    return entry.output.rsplit(".", 1)[-1]


def entry_fields(entry: LockEntry) -> dict[str, Any]:
    """Keyword arguments of `Journal.record_asset` for a lockfile's take."""
    return {"sha256": entry.sha256, "size": entry.size, "ext": entry_ext(entry),
            "duration_s": entry.duration_s, "credits": entry.credits, "task_id": entry.task_id,
            "result_url": entry.result_url, "created_at": from_iso(entry.created_at)}
