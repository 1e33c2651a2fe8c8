"""The content-addressed cache: every file a build ever produced, by sha256.

`<output_dir>/.runner/cache/ab/ab12...ef.mp3`. Superseded takes stay here, so
an earlier version can be restored without paying for it again, and an output
deleted or damaged by hand is restored from here without a request. Files are
adopted by rename from `.incoming/` (same file system), never half-written.

Small results, those verified in memory, go to packs instead (`cache/packs/`,
see packs.py): one append and a shared fsync rather than a file of their own.
A reader that needs a path (ffmpeg, an upload) asks `file_of`, which unpacks
the blob to its loose place once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from runner.errors import StoreError
from runner.store import atomic, packs

# The names `runner.store.atomic.temp_beside` gives temp files: `.NAME.xxxxxxxx.tmp`.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    ext: str
    size: int
    file: Path | None = None  # its own file in the cache, or
    slot: packs.Slot | None = None  # where a pack holds it

    @property
    def label(self) -> str:
        """Where it is, for people: its file, or `PACK#NAME`."""
        if self.file is not None:
            return str(self.file)
        assert self.slot is not None
        return f"{self.slot.pack}#{self.sha256}.{self.ext}"



class ContentCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.incoming = root / ".incoming"
        # Per output folder, listed once: temp files a killed run left, by final name.
        self._leftovers: dict[Path, dict[str, list[Path]]] = {}
        self._packs = packs.PackIndex(root / "packs")
        self._writer = packs.PackWriter(root / "packs", self._packs)

    def close(self) -> None:
        """Close this process's pack (every blob in it is durable already)."""
        self._writer.close()

    def blob_path(self, sha256: str, ext: str) -> Path:
        return self.root / sha256[:2] / f"{sha256}.{ext}"

    def get(self, sha256: str, ext: str, *, look_again: bool = True) -> Blob | None:
        """The blob, loose or packed. `look_again`: on a miss, read the packs other
        processes may have written since this one looked (not on the hot path of
        storing: there a blob stored twice costs less than a look per blob)."""
        path = self.blob_path(sha256, ext)
        try:
            return Blob(sha256, ext, path.stat().st_size, file=path)
        except OSError:
            pass
        slot = self._packs.find(sha256, ext, refresh=look_again)
        return None if slot is None else Blob(sha256, ext, slot.size, slot=slot)

    def read_bytes(self, blob: Blob) -> bytes:
        """A blob's bytes, checked against its digest."""
        if blob.slot is not None:
            return packs.read_slot(blob.slot, blob.sha256)
        assert blob.file is not None
        data = blob.file.read_bytes()
        if hashlib.sha256(data).hexdigest() != blob.sha256:
            raise _damaged(blob.file)
        return data

    def file_of(self, blob: Blob) -> Path:
        """A file holding the blob, for readers that need a path: a packed blob is
        unpacked to its loose place (once; `get` finds that file from then on)."""
        if blob.file is not None:
            return blob.file
        path = self.blob_path(blob.sha256, blob.ext)
        if not path.exists():
            atomic.write_bytes(path, self.read_bytes(blob))
        return path

    def new_temp(self, suffix: str) -> Path:
        """A fresh temp file in the cache's own file system, for a download in progress."""
        return atomic.temp_name(self.incoming / f"download.{suffix}")

    def adopt(self, tmp: Path, sha256: str, ext: str, *, synced: bool = False) -> Blob:
        """Move a finished, verified temp file into the cache under its digest
        (`synced`: its writer has fsynced it already)."""
        final = self.blob_path(sha256, ext)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            tmp.unlink(missing_ok=True)  # the same bytes are already here
        else:
            atomic.commit(tmp, final, synced=synced)
        return Blob(sha256, ext, final.stat().st_size, file=final)

    async def put_bytes(self, data: bytes, ext: str) -> Blob:
        return await self.put_verified(data, hashlib.sha256(data).hexdigest(), ext)

    async def put_verified(self, data: bytes, sha256: str, ext: str) -> Blob:
        """Store bytes already in memory whose digest is `sha256` (a small download,
        hashed and verified on the way in), from the event loop: appended to this
        process's pack, and returned once an fsync shared with the other blobs
        appended meanwhile has made them durable. The caller still holds the bytes:
        it hands them to `materialize` or `materialize_bytes`, so the output costs no
        read and no second hash."""
        blob = self.get(sha256, ext, look_again=False)
        if blob is None:
            if packs.packable(ext):
                blob = Blob(sha256, ext, len(data),
                            slot=await self._writer.append(sha256, ext, data))
            else:
                final = self.blob_path(sha256, ext)
                atomic.mkdir_once(final.parent)
                await atomic.publish_async(data, self.new_temp(ext), final)
                blob = Blob(sha256, ext, len(data), file=final)
        return blob

    async def materialize_bytes(self, data: bytes, dest: Path) -> int:
        """`materialize` from a blob's bytes the caller holds (just stored from memory),
        on the event loop with the fsync in a worker thread. Returns the output's mtime
        in ns."""
        self.discard_leftovers(dest)
        await atomic.publish_async(data, atomic.temp_name(dest), dest)
        return dest.stat().st_mtime_ns

    def materialize(self, blob: Blob, dest: Path, data: bytes | None = None) -> int:
        """Copy a cached file to `dest` atomically, checking its digest on the way;
        from `data` instead when the caller holds the blob's bytes (just stored from
        memory: `put_verified`).

        A copy, not a hard link: a tool that edits the output in place must not
        change the cached original. Returns the output's mtime in ns.
        """
        self.discard_leftovers(dest)
        tmp = atomic.temp_name(dest)
        if data is None and blob.slot is not None:
            data = self.read_bytes(blob)
        if data is not None:
            atomic.publish(data, tmp, dest)
            return dest.stat().st_mtime_ns
        assert blob.file is not None
        digest = hashlib.sha256()
        try:
            with blob.file.open("rb") as src, tmp.open("xb") as out:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != blob.sha256:
                raise _damaged(blob.file)
            atomic.commit(tmp, dest, synced=True)
        finally:
            tmp.unlink(missing_ok=True)
        return dest.stat().st_mtime_ns

    def discard_leftovers(self, final: Path) -> None:
        """Remove the temp files that earlier writes of `final` left beside it when their
        process was killed before the rename. Each folder is listed once per run (the
        first time an output goes there), so writing N outputs stays O(N); temp files
        this run creates later are never in that listing."""
        folder = self._leftovers.get(final.parent)
        if folder is None:
            folder = self._leftovers[final.parent] = leftover_temps(final.parent)
        for tmp in folder.pop(final.name, ()):
            tmp.unlink(missing_ok=True)

    def blobs(self) -> Iterator[Blob]:
        """Every blob, loose ones first; one that is both loose and packed (unpacked
        for a reader) is listed twice, once where it is each time."""
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") or folder.name == "packs" or not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                sha, _, ext = path.name.partition(".")
                yield Blob(sha, ext, path.stat().st_size, file=path)
        for (sha, ext), slot in sorted(self._packs.slots().items()):
            yield Blob(sha, ext, slot.size, slot=slot)

    def remove(self, blobs: list[Blob]) -> list[Blob]:
        """Delete these blobs; returns those deleted. A pack is rewritten without its
        removed blobs, unless a running process is still appending to it: its blobs
        stay until a later clean."""
        removed = [b for b in blobs if b.file is not None]
        for blob in removed:
            assert blob.file is not None
            blob.file.unlink(missing_ok=True)
        by_pack: dict[Path, list[Blob]] = {}
        for blob in blobs:
            if blob.slot is not None:
                by_pack.setdefault(blob.slot.pack, []).append(blob)
        for pack, packed in by_pack.items():
            if packs.compact(pack, {(b.sha256, b.ext) for b in packed}):
                removed += packed
                self._packs.forget(pack)
        return removed

    def clear_incoming(self) -> None:
        """Temp files of downloads cut short by a crash."""
        # The files, not the folder: writers assume a folder they have seen stays.
        if self.incoming.is_dir():
            for leftover in self.incoming.iterdir():
                leftover.unlink(missing_ok=True)


def _damaged(path: Path) -> StoreError:
    return StoreError(f"cache file {path} is damaged (its content no longer matches its "
                      "name); delete it and run again")


def leftover_temps(folder: Path) -> dict[str, list[Path]]:
    """Temp files of atomic writes in `folder`, by the name of the file they were for."""
    found: dict[str, list[Path]] = {}
    try:
        entries = list(os.scandir(folder))
    except OSError:  # no folder yet: nothing left over
        return found
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is not None:
            found.setdefault(match["name"], []).append(Path(entry.path))
    return found


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
