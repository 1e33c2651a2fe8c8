"""Atomic file outputs: a temp file in the destination folder, fsync, `os.replace`.

A crash leaves either the old file or the new one, never half of one. The temp
file lives beside the destination (not in the system temp folder) so the final
rename never crosses a file system.

The folder itself is fsynced after the rename only with RUNNER_JOURNAL_SYNC=FULL.
That fsync makes the rename survive an operating-system crash; it does not make
the file any more whole (the file's own fsync before the rename does that). By
default an OS crash may lose the last transitions of the journal, so it may as
well lose the last renames: the next run sees what is missing and restores or
rebuilds it. On this project's VMs a folder fsync costs ~0.25 ms of CPU, an
eighth of the whole per-job budget (bench/bench_scale.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

_KNOWN_FOLDERS: set[Path] = set()


def mkdir_once(folder: Path) -> None:
    """Make `folder` (and its parents) unless this process made or saw it already:
    one mkdir per folder and process, not one per file."""
    if folder not in _KNOWN_FOLDERS:
        folder.mkdir(parents=True, exist_ok=True)
        _KNOWN_FOLDERS.add(folder)


def temp_beside(final: Path, suffix: str = ".tmp") -> Path:
    """A new, empty, uniquely named hidden file in `final`'s folder.

    Created with mode 0o666 less the umask, like any new file, because it becomes
    the output: `tempfile.mkstemp` would leave the published file private (0o600).
    """
    mkdir_once(final.parent)
    for _ in range(100):
        tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        except FileNotFoundError:  # the folder was removed since it was made
            final.parent.mkdir(parents=True, exist_ok=True)
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"no free temporary name beside {final}")


def temp_name(final: Path, suffix: str = ".tmp") -> Path:
    """A fresh temp file name beside `final`, not created: the writer creates it
    exclusively (open mode "xb"). One file-system operation fewer per file than
    `temp_beside`, which matters on the hot path of a 10,000-job run."""
    mkdir_once(final.parent)
    return final.parent / f".{final.name}.{secrets.token_hex(4)}{suffix}"


def full_sync() -> bool:
    """RUNNER_JOURNAL_SYNC=FULL: every journal commit and every rename made durable."""
    return os.environ.get("RUNNER_JOURNAL_SYNC", "").upper() == "FULL"


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not every
    # platform lets a directory be opened (Windows), which is then tolerated.
    if not full_sync():
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: Path, final: Path, *, synced: bool = False) -> None:
    """fsync `tmp` (unless the writer already did: `synced`), rename it over `final`,
    fsync the folder."""
    if not synced:
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


@contextlib.contextmanager
def staged(final: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temp path beside `final`; commit it on success, remove it on failure."""
    tmp = temp_beside(final, suffix)
    try:
        yield tmp
        commit(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(final: Path, data: bytes) -> None:
    with staged(final) as tmp:
        tmp.write_bytes(data)


@contextlib.contextmanager
def _replacing(data: bytes, tmp: Path, final: Path) -> Iterator[int]:
    """Create `tmp` exclusively holding `data` and yield its descriptor (for the
    caller's fsync); then close it and rename it over `final`. On failure `tmp` is
    removed and `final` is untouched."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        try:
            fd = os.open(tmp, flags, 0o666)
        except FileNotFoundError:  # the folder was removed since this process made it
            tmp.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, flags, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            yield fd
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish(data: bytes, tmp: Path, final: Path) -> None:
    """Write `data` to the new file `tmp` (created here, exclusively), fsync it and
    rename it over `final`: the whole of an atomic write in the fewest system calls,
    for bytes already in memory."""
    with _replacing(data, tmp, final) as fd:
        os.fsync(fd)
    _fsync_dir(final.parent)


async def publish_async(data: bytes, tmp: Path, final: Path) -> None:
    """`publish` from the event loop: the writing happens here (a copy into the page
    cache), the wait for the disk (fsync) in a worker thread, so the loop goes on
    serving other jobs' requests meanwhile. The worker does that one system call and
    nothing else: every call it made would trade the GIL with the busy loop thread."""
    with _replacing(data, tmp, final) as fd:
        await asyncio.to_thread(os.fsync, fd)
    if full_sync():
        await asyncio.to_thread(_fsync_dir, final.parent)


def write_text(final: Path, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))
