"""Atomic file outputs: a temp file in the destination folder, fsync, `os.replace`.

A crash leaves either the old file or the new one, never half of one. The temp
file lives beside the destination (not in the system temp folder) so the final
rename never crosses a file system.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

_KNOWN_FOLDERS: set[Path] = set()


def temp_beside(final: Path, suffix: str = ".tmp") -> Path:
    """A new, empty, uniquely named hidden file in `final`'s folder.

    Created with mode 0o666 less the umask, like any new file, because it becomes
    the output: `tempfile.mkstemp` would leave the published file private (0o600).
    """
    if final.parent not in _KNOWN_FOLDERS:  # one mkdir per folder and process, not per file
        final.parent.mkdir(parents=True, exist_ok=True)
        _KNOWN_FOLDERS.add(final.parent)
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
    if final.parent not in _KNOWN_FOLDERS:
        final.parent.mkdir(parents=True, exist_ok=True)
        _KNOWN_FOLDERS.add(final.parent)
    return final.parent / f".{final.name}.{secrets.token_hex(4)}{suffix}"


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not every
    # platform lets a directory be opened (Windows), which is then tolerated.
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


def write_text(final: Path, text: str) -> None:
    write_bytes(final, text.encode("utf-8"))
