"""One build, one run: an OS file lock on the build's state folder.

`<state folder>/build.lock` is locked by the process that writes the build
(`runner run`, `runner clean`) for as long as it does. The lock belongs to the
open file, so the kernel releases it when the process ends, however it ends:
kill -9 never leaves a stale lock for a person to delete. Without it two runs of
one build both bought every job (300 tasks for 200 jobs), each took the other's
tasks for its own unanswered requests, and their journal writes collided.

The holder writes who it is into the file (pid, host, since when, what command),
so that a second run can say whom it waits for. Readers (`status`, `plan`,
`report`) never take the lock: the journal (SQLite, WAL) lets them read while a
run writes.

POSIX: `flock` on the whole file. Windows: `msvcrt.locking` of one byte far past
the holder's text, so that the text stays readable.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from runner.errors import BuildBusy, StoreError

LOCK_NAME = "build.lock"
_WINDOWS_LOCK_OFFSET = 1 << 20  # the byte locked on Windows: past any holder's text


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a build, as it wrote itself into the lock file."""

    pid: int
    host: str
    since: float  # seconds since the epoch
    command: str

    def __str__(self) -> str:
        when = dt.datetime.fromtimestamp(self.since).astimezone().strftime(
            "%Y-%m-%d %H:%M:%S %Z").strip()
        return f"pid {self.pid} on {self.host} since {when} ({self.command})"


def _lock(fd: int) -> bool:
    """Take the lock without waiting; False when another process holds it."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class BuildLock:
    """The lock of one build's state folder.

        with BuildLock(layout.state_dir, "runner run").hold(wait=True, on_wait=print):
            ...  # the only writer of this build
    """

    def __init__(self, state_dir: Path, command: str) -> None:
        self.path = state_dir / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it now."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the build lock ({exc.strerror})") from exc
        if not _lock(fd):
            os.close(fd)
            return False
        self._fd = fd
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": round(time.time(), 3), "command": self.command})
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, text.encode())
        except OSError:
            pass  # who holds it is a courtesy to the next run; the lock is what counts
        return True

    def holder(self) -> Holder | None:
        """Who holds the lock, as it wrote itself; None when that cannot be read."""
        try:
            raw = json.loads(self.path.read_bytes()[:4096])
            return Holder(int(raw["pid"]), str(raw["host"]), float(raw["since"]),
                          str(raw["command"]))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def acquire(self, *, wait: bool, on_wait: Callable[[str], None] | None = None,
                poll_s: float = 0.2) -> None:
        """Take the lock. Held elsewhere: `wait` polls until it is free, telling
        `on_wait` once who holds it; otherwise raises `BuildBusy` at once."""
        if self.try_acquire():
            return
        folder = self.path.parent.parent  # the build's output folder holds the state folder
        if not wait:
            raise BuildBusy(f"{_where(folder)} is in use by {self._holder_text()}; run again "
                            "when it has finished (without --no-wait, a run waits for it)")
        if on_wait is not None:
            on_wait(f"waiting for {_where(folder)}: in use by {self._holder_text()}")
        while not self.try_acquire():
            time.sleep(poll_s)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = None

    def hold(self, *, wait: bool, on_wait: Callable[[str], None] | None = None) -> Self:
        self.acquire(wait=wait, on_wait=on_wait)
        return self

    def __enter__(self) -> Self:
        if self._fd is None:
            self.acquire(wait=True)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def _holder_text(self, patience_s: float = 1.0) -> str:
        # The holder writes its text just after it takes the lock: a run that
        # arrives in between finds the file empty or half written, so it looks
        # again for a moment before it settles for "another process".
        deadline = time.monotonic() + patience_s
        while (holder := self.holder()) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return str(holder) if holder is not None else "another process"


def _where(folder: Path) -> str:
    try:
        shown = os.path.relpath(folder)
    except ValueError:  # another drive (Windows)
        shown = str(folder)
    return f"the build in {shown}"
