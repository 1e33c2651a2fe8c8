"""Small cached blobs packed into append-only files, made durable by group commit.

A 10,000-job run of short sound effects would otherwise create 10,000 cache files
beside its 10,000 outputs. On ext4 each new file (create, write, fsync, rename)
costs the runner ~0.2-0.3 ms of system time, a sixth of its whole per-job budget
(bench/bench_scale.py). Appended to one pack instead, a blob costs one `write`,
and one fsync makes every blob appended meanwhile durable at once.

`<cache>/packs/<time>-<pid>.pack`: each process appends to a pack of its own, so
writers never share a file, and holds an advisory lock on it while it does, so
`runner clean` never rewrites a pack under a live writer. A record is a fixed
header (magic, raw sha256, extension, length) followed by the bytes. The index is
rebuilt by reading the headers; it stops at the first record that is incomplete
or not a record (the tail a crash cut short), and such a tail is never followed by
acknowledged records, because the writer that left it is gone. Every read checks
the bytes against their digest, as reads of loose cache files do.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path

from runner.errors import StoreError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; `runner clean` then skips no pack
    fcntl = None  # type: ignore[assignment]

_MAGIC = b"RPK1"
# magic, sha256 (raw), extension (ASCII, NUL-padded), length of the bytes that follow
_HEADER = struct.Struct("<4s32s8sQ")
MAX_EXT = 8
# A writer starts a new pack past this size, so that compacting one stays cheap.
_ROLL_BYTES = 1 << 30
SUFFIX = ".pack"


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a packed blob's bytes are."""

    pack: Path
    offset: int
    size: int


def _header(sha256: str, ext: str, size: int) -> bytes:
    return _HEADER.pack(_MAGIC, bytes.fromhex(sha256), ext.encode("ascii"), size)


def packable(ext: str) -> bool:
    return 0 < len(ext) <= MAX_EXT and ext.isascii() and "\0" not in ext


class PackIndex:
    """Every packed blob in a folder of packs, found by reading the record headers.

    Loaded on first use and refreshed on a miss, so blobs that another process packed
    since are found too; each pack is read from where the last scan stopped."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._slots: dict[tuple[str, str], Slot] = {}
        self._scanned: dict[Path, int] = {}  # pack -> offset its scan stopped at
        self._loaded = False

    def find(self, sha256: str, ext: str, *, refresh: bool = False) -> Slot | None:
        if not self._loaded:
            self.refresh()
        slot = self._slots.get((sha256, ext))
        if slot is None and refresh:
            self.refresh()
            slot = self._slots.get((sha256, ext))
        return slot

    def add(self, sha256: str, ext: str, slot: Slot) -> None:
        self._slots.setdefault((sha256, ext), slot)

    def slots(self) -> dict[tuple[str, str], Slot]:
        self.refresh()
        return dict(self._slots)

    def refresh(self) -> None:
        self._loaded = True
        try:
            entries = sorted(e.path for e in os.scandir(self.folder) if e.name.endswith(SUFFIX))
        except OSError:  # no packs yet
            return
        for name in entries:
            pack = Path(name)
            found, self._scanned[pack] = scan(pack, self._scanned.get(pack, 0))
            for key, slot in found:
                self._slots.setdefault(key, slot)

    def forget(self, pack: Path) -> None:
        self._scanned.pop(pack, None)
        for key in [k for k, slot in self._slots.items() if slot.pack == pack]:
            del self._slots[key]


def scan(pack: Path, start: int = 0) -> tuple[list[tuple[tuple[str, str], Slot]], int]:
    """The records of `pack` from byte `start` on, and the offset the scan stopped at
    (the end, or the start of a tail cut short: the writer died mid-append, or is
    appending right now)."""
    found: list[tuple[tuple[str, str], Slot]] = []
    try:
        fd = os.open(pack, os.O_RDONLY)
    except OSError:
        return found, start
    try:
        end = os.fstat(fd).st_size
        at = start
        while at + _HEADER.size <= end:
            magic, raw, ext, size = _HEADER.unpack(os.pread(fd, _HEADER.size, at))
            body = at + _HEADER.size
            if magic != _MAGIC or body + size > end:
                break
            found.append(((raw.hex(), ext.rstrip(b"\0").decode("ascii")), Slot(pack, body, size)))
            at = body + size
        return found, at
    finally:
        os.close(fd)


def read_slot(slot: Slot, sha256: str) -> bytes:
    """The bytes of a packed blob, checked against their digest."""
    try:
        fd = os.open(slot.pack, os.O_RDONLY)
        try:
            data = os.pread(fd, slot.size, slot.offset)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cache pack {slot.pack} cannot be read ({exc.strerror})") from exc
    if len(data) != slot.size or hashlib.sha256(data).hexdigest() != sha256:
        raise StoreError(f"cache pack {slot.pack} is damaged at byte {slot.offset} (a blob "
                         f"no longer matches its digest {sha256[:12]}); delete the pack and "
                         "run again")
    return data


class _OpenPack:
    """The pack a writer appends to: how far it is written, and how far durable."""

    def __init__(self, path: Path, writer: PackWriter) -> None:
        self.path = path
        self.writer = writer
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666)
        if fcntl is not None:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.end = 0  # bytes written
        self.synced = 0  # bytes known durable
        self.syncing: asyncio.Future[None] | None = None
        self.broken: str | None = None  # why nothing more may be trusted to it

    @property
    def settled(self) -> bool:
        return self.syncing is None and self.synced == self.end

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # which also releases the lock
            self.fd = -1

    async def durable(self, end: int) -> None:
        while self.synced < end:
            if self.broken is not None:
                raise StoreError(self.broken)
            if self.syncing is None:
                self.syncing = asyncio.ensure_future(self._sync())
            # Shielded: a job cancelled while waiting must not cancel others' fsync.
            await asyncio.shield(self.syncing)

    async def _sync(self) -> None:
        target = self.end
        try:
            await asyncio.to_thread(os.fsync, self.fd)
            self.writer.fsyncs += 1
        except OSError as exc:
            # After a failed fsync the kernel may have dropped the unwritten pages:
            # nothing in this pack past the last good fsync can be trusted.
            self.broken = f"cache pack {self.path} could not be made durable ({exc.strerror})"
            raise StoreError(self.broken) from exc
        finally:
            self.syncing = None
        self.synced = max(self.synced, target)


class PackWriter:
    """Appends to this process's own pack; `append` returns once the bytes are durable.

    Group commit: a blob is written at once (a copy into the page cache), then waits
    for an fsync that began after its write. One fsync runs at a time, in a worker
    thread, and covers every blob appended before it began; blobs appended while it
    runs wait for the next one. So a busy run pays one fsync per wave of results,
    not one per result."""

    def __init__(self, folder: Path, index: PackIndex) -> None:
        self.folder = folder
        self.index = index
        self._open: _OpenPack | None = None
        self._retired: list[_OpenPack] = []  # rolled over or broken, closed once settled
        self.fsyncs = 0  # how many blobs' waits were shared is what the tests look at

    async def append(self, sha256: str, ext: str, data: bytes) -> Slot:
        pack = self._current()
        start = pack.end
        record = [_header(sha256, ext, len(data)), data]
        size = _HEADER.size + len(data)
        try:
            written = os.writev(pack.fd, record)
            if written < size:  # a short write: rare, but legal
                rest = memoryview(b"".join(record))[written:]
                while rest:
                    rest = rest[os.write(pack.fd, rest):]
        except OSError as exc:
            self._cut_back(pack, start)
            raise StoreError(f"cache pack {pack.path} cannot be written ({exc.strerror})") from exc
        pack.end = start + size
        await pack.durable(pack.end)
        slot = Slot(pack.path, start + _HEADER.size, len(data))
        self.index.add(sha256, ext, slot)
        return slot

    def close(self) -> None:
        for pack in [*self._retired, *([self._open] if self._open else [])]:
            pack.close()
        self._open, self._retired = None, []

    def _current(self) -> _OpenPack:
        for old in [p for p in self._retired if p.settled]:
            old.close()
            self._retired.remove(old)
        pack = self._open
        if pack is not None and pack.broken is None and pack.end < _ROLL_BYTES:
            return pack
        if pack is not None:  # full or broken: the next blob starts a new pack
            self._retired.append(pack)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._open = _OpenPack(self.folder / f"{time.time_ns():016x}-{os.getpid()}{SUFFIX}",
                               self)
        return self._open

    def _cut_back(self, pack: _OpenPack, start: int) -> None:
        """Remove a half-written record, so that later records stay readable; if even
        that fails, give the pack up (its index stops before the half record)."""
        try:
            os.ftruncate(pack.fd, start)
        except OSError:
            pack.broken = f"cache pack {pack.path} holds a half-written record"


def compact(pack: Path, remove: set[tuple[str, str]]) -> bool:
    """Rewrite `pack` without the blobs in `remove`; delete it when nothing is left.

    Returns False, touching nothing, when a live writer holds the pack. The records
    kept are read under the lock, so none appended since the caller looked is lost."""
    from runner.store import atomic

    try:
        fd = os.open(pack, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        keep = [(key, slot) for key, slot in scan(pack)[0] if key not in remove]
        if not keep:
            pack.unlink(missing_ok=True)
            return True
        with atomic.staged(pack) as tmp, tmp.open("wb") as out:
            for (sha256, ext), slot in keep:
                data = read_slot(slot, sha256)
                out.write(_header(sha256, ext, len(data)))
                out.write(data)
        return True
    finally:
        os.close(fd)
