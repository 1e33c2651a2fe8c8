"""The cache's packs: small blobs appended to one file per process, durable by group commit."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runner.errors import StoreError
from runner.store import packs
from runner.store.cache import ContentCache


def sfx(i: int, size: int = 3000) -> bytes:
    return hashlib.sha256(str(i).encode()).digest() * (size // 32)


async def put_all(cache: ContentCache, blobs: list[bytes], ext: str = "mp3") -> None:
    await asyncio.gather(*(cache.put_bytes(data, ext) for data in blobs))


def pack_files(root: Path) -> list[Path]:
    return sorted((root / "packs").glob("*.pack"))


def test_blobs_stored_together_share_fsyncs_and_come_back_in_a_new_process(
        tmp_path: Path) -> None:
    blobs = [sfx(i) for i in range(300)]
    cache = ContentCache(tmp_path)
    asyncio.run(put_all(cache, blobs))
    cache.close()
    assert len(pack_files(tmp_path)) == 1
    assert not [p for p in tmp_path.rglob("*.mp3")]  # no loose file for any of them
    assert 1 <= cache._writer.fsyncs < len(blobs) / 4  # group commit, not one per blob

    again = ContentCache(tmp_path)  # what a later run sees
    for data in blobs:
        blob = again.get(hashlib.sha256(data).hexdigest(), "mp3")
        assert blob is not None and blob.slot is not None and blob.size == len(data)
        assert again.read_bytes(blob) == data
    blob = again.get(hashlib.sha256(blobs[7]).hexdigest(), "mp3")
    assert blob is not None
    again.materialize(blob, tmp_path / "out" / "seven.mp3")
    assert (tmp_path / "out" / "seven.mp3").read_bytes() == blobs[7]
    assert again.get("0" * 64, "mp3") is None


def test_the_same_bytes_are_packed_once_and_unpackable_extensions_stay_loose(
        tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    first = asyncio.run(cache.put_bytes(sfx(1), "mp3"))
    second = asyncio.run(cache.put_bytes(sfx(1), "mp3"))
    assert first.slot == second.slot
    assert pack_files(tmp_path)[0].stat().st_size == first.slot.offset + first.size  # type: ignore[union-attr]
    odd = asyncio.run(cache.put_bytes(sfx(2), "longextension"))
    assert odd.slot is None and odd.file is not None and odd.file.read_bytes() == sfx(2)


def test_a_tail_cut_short_by_a_crash_hides_nothing_acknowledged(tmp_path: Path) -> None:
    blobs = [sfx(i) for i in range(20)]
    cache = ContentCache(tmp_path)
    asyncio.run(put_all(cache, blobs))
    cache.close()
    (pack,) = pack_files(tmp_path)
    whole = pack.stat().st_size
    record = packs._HEADER.pack(packs._MAGIC, bytes(32), b"mp3", 5000) + b"half"
    with pack.open("ab") as f:  # the process died mid-append
        f.write(record)
    again = ContentCache(tmp_path)
    found = [again.get(hashlib.sha256(d).hexdigest(), "mp3") for d in blobs]
    assert all(b is not None and again.read_bytes(b) == d for b, d in zip(found, blobs))
    assert packs.scan(pack)[1] == whole  # the index stops where the half record starts
    asyncio.run(again.put_bytes(sfx(99), "mp3"))  # a later run writes a pack of its own
    again.close()
    assert len(pack_files(tmp_path)) == 2
    assert ContentCache(tmp_path).get(hashlib.sha256(sfx(99)).hexdigest(), "mp3") is not None


def test_a_damaged_record_is_reported_with_its_pack_not_returned(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    blob = asyncio.run(cache.put_bytes(sfx(3), "mp3"))
    cache.close()
    assert blob.slot is not None
    with blob.slot.pack.open("r+b") as f:
        f.seek(blob.slot.offset + 100)
        f.write(b"\xff\xff")
    again = ContentCache(tmp_path)
    damaged = again.get(blob.sha256, "mp3")
    assert damaged is not None
    with pytest.raises(StoreError, match=rf"{blob.slot.pack.name} is damaged at byte"):
        again.read_bytes(damaged)
    with pytest.raises(StoreError, match="is damaged"):
        again.materialize(damaged, tmp_path / "out.mp3")
    assert not (tmp_path / "out.mp3").exists()


def test_a_reader_that_needs_a_path_gets_the_blob_unpacked_once(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    blob = asyncio.run(cache.put_bytes(sfx(4), "mp3"))
    path = cache.file_of(blob)
    assert path == cache.blob_path(blob.sha256, "mp3") and path.read_bytes() == sfx(4)
    loose = cache.get(blob.sha256, "mp3")
    assert loose is not None and loose.file == path and cache.file_of(loose) == path


def test_a_blob_packed_by_another_process_is_found_after_this_one_looked(
        tmp_path: Path) -> None:
    reader = ContentCache(tmp_path)
    assert reader.get(hashlib.sha256(sfx(5)).hexdigest(), "mp3") is None  # index loaded
    writer = ContentCache(tmp_path)
    asyncio.run(writer.put_bytes(sfx(5), "mp3"))
    blob = reader.get(hashlib.sha256(sfx(5)).hexdigest(), "mp3")
    assert blob is not None and reader.read_bytes(blob) == sfx(5)


def test_removing_blobs_rewrites_their_pack_but_never_one_a_live_writer_holds(
        tmp_path: Path) -> None:
    blobs = [sfx(i) for i in range(10)]
    done = ContentCache(tmp_path)
    asyncio.run(put_all(done, blobs[:6]))
    done.close()
    live = ContentCache(tmp_path)  # still running: its pack is locked
    asyncio.run(put_all(live, blobs[6:]))

    cleaner = ContentCache(tmp_path)
    everything = list(cleaner.blobs())
    assert len(everything) == 10
    doomed = [b for b in everything if b.sha256 in {hashlib.sha256(d).hexdigest()
                                                      for d in (blobs[0], blobs[1], blobs[8])}]
    removed = cleaner.remove(doomed)
    assert sorted(b.sha256 for b in removed) == sorted(
        hashlib.sha256(d).hexdigest() for d in (blobs[0], blobs[1]))  # not blob 8: live
    later = ContentCache(tmp_path)
    left = {later.read_bytes(b) for b in later.blobs()}
    assert left == set(blobs[2:])
    live.close()
    assert len(cleaner.remove([b for b in later.blobs()
                               if b.sha256 == hashlib.sha256(blobs[8]).hexdigest()])) == 1
    assert {b.size for b in ContentCache(tmp_path).blobs()} == {len(blobs[0])}
    emptied = ContentCache(tmp_path)
    emptied.remove(list(emptied.blobs()))
    assert pack_files(tmp_path) == [] and list(ContentCache(tmp_path).blobs()) == []


def test_a_write_that_fails_leaves_the_pack_readable_up_to_the_last_good_blob(
        tmp_path: Path) -> None:
    """A file-size limit makes the kernel refuse a write (EFBIG), a disk full's
    cousin: the half record is cut off and every blob stored before stays readable."""
    script = textwrap.dedent(f"""
        import asyncio, hashlib, resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from runner.errors import StoreError
        from runner.store.cache import ContentCache
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        cache = ContentCache(__import__("pathlib").Path({str(tmp_path)!r}))
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))
        stored = 0
        async def main():
            global stored
            for i in range(100):
                data = hashlib.sha256(str(i).encode()).digest() * 93
                try:
                    await cache.put_bytes(data, "mp3")
                except StoreError as exc:
                    print("refused:", exc)
                    break
                stored += 1
        asyncio.run(main())
        print("stored", stored)
    """)
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "refused: cache pack" in done.stdout and "cannot be written" in done.stdout
    stored = int(done.stdout.split("stored ")[1])
    assert 0 < stored < 100
    (pack,) = pack_files(tmp_path)
    found, end = packs.scan(pack)
    assert len(found) == stored and end == pack.stat().st_size  # no half record left
    cache = ContentCache(tmp_path)
    assert all(cache.read_bytes(b) for b in cache.blobs())


def test_pack_files_are_named_per_process(tmp_path: Path) -> None:
    cache = ContentCache(tmp_path)
    asyncio.run(cache.put_bytes(sfx(6), "mp3"))
    (pack,) = pack_files(tmp_path)
    assert pack.name.endswith(f"-{os.getpid()}.pack")


def test_the_cache_keeps_no_bytes_for_later_the_caller_hands_them_along(tmp_path: Path) -> None:
    """Bytes just stored reach an output only when the caller hands them (`data=`): the
    cache answers every other read from disk, checked, with no memory of what it stored
    (a hidden dictionary of recent bytes would hide the damage below)."""
    cache = ContentCache(tmp_path)
    blob = asyncio.run(cache.put_bytes(sfx(5), "mp3"))
    assert blob.slot is not None
    with blob.slot.pack.open("r+b") as f:  # the stored copy is damaged after the fact
        f.seek(blob.slot.offset + 100)
        f.write(b"\xff\xff")
    with pytest.raises(StoreError, match="is damaged"):
        cache.materialize(blob, tmp_path / "from-disk.mp3")
    cache.materialize(blob, tmp_path / "handed.mp3", sfx(5))
    assert (tmp_path / "handed.mp3").read_bytes() == sfx(5)
    asyncio.run(cache.materialize_bytes(sfx(5), tmp_path / "on-loop.mp3"))
    assert (tmp_path / "on-loop.mp3").read_bytes() == sfx(5)
