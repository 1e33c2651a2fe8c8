"""The S3 boundary: every call to the object store, its errors translated once.

`obstore` (Rust's `object_store` crate under Python bindings) does the HTTP,
signing and retries; here each call is bounded by a semaphore, counted
(requests, bytes each way, time the store was busy) and its exceptions become
`RemoteCacheError`, most specific first, or an answer: a missing object is
`None`, a create-only write that finds an object is `False`.

A missing *bucket* answers 404 like a missing object; it is told apart by the
S3 error code, because treating it as a miss would send every job to be bought.
"""

from __future__ import annotations

import asyncio
import atexit
import hashlib
import re
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import S3Store

from runner.errors import RemoteCacheError
from runner.team.config import RemoteCacheConfig

# Requests in flight at once: enough to fill a link with small objects (a lookup
# is ~1 ms on a LAN, ~30 ms to a cloud region) without a 10,000-job run opening
# 10,000 connections.
MAX_CONCURRENT_REQUESTS = 64
_S3_CODE = re.compile(r"<Code>([A-Za-z]+)</Code>")
_STATUS = re.compile(r"(\d{3}) [A-Z][A-Za-z ]+:")


@dataclass
class TransferStats:
    """What the remote cache cost so far: requests, bytes each way, and wall time
    during which at least one request was in flight (overlapping requests count once)."""

    requests: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    _busy_s: float = 0.0
    _in_flight: int = 0
    _busy_since: float = 0.0

    def started(self) -> None:
        self.requests += 1
        if self._in_flight == 0:
            self._busy_since = time.perf_counter()
        self._in_flight += 1

    def ended(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0:
            self._busy_s += time.perf_counter() - self._busy_since

    @property
    def busy_s(self) -> float:
        ongoing = time.perf_counter() - self._busy_since if self._in_flight else 0.0
        return self._busy_s + ongoing


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    e_tag: str | None
    size: int  # as the server says: larger than `data` when the body was not read


@dataclass(frozen=True, slots=True)
class Listed:
    path: str  # relative to the cache's prefix
    size: int
    modified: datetime


_GUARDED = False


def guard_interpreter_exit() -> None:
    """Keep the interpreter from finalizing under a thread that is still waking the loop.

    obstore's requests run on tokio threads, which hand each result to the event loop
    with `call_soon_threadsafe`. asyncio's version queues the callback, then writes a
    wake-up byte to a socket *with the GIL released*. The loop may run the callback,
    finish, and the interpreter start finalizing before that write returns; the tokio
    thread then cannot take the GIL back, CPython ends it with pthread_exit, and the
    unwinding through Rust frames aborts the whole process (SIGABRT, exit 134, after
    all work was done). Seen in 1 of 3 short processes on this project's machines;
    uvloop's wake-up keeps the GIL and never does it. So at exit, while threads may
    still take the GIL, wait (2 s at most) until no thread is inside that wake-up.
    """
    global _GUARDED
    if not _GUARDED:
        _GUARDED = True
        atexit.register(_wait_for_wakeups)


def _wait_for_wakeups(timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    me = threading.get_ident()
    while time.monotonic() < deadline:
        frames = sys._current_frames()
        if not any(_waking_a_loop(frame) for ident, frame in frames.items() if ident != me):
            return
        time.sleep(0.001)


def _waking_a_loop(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name in ("call_soon_threadsafe", "_write_to_self"):
            return True
        frame = frame.f_back
    return False


class Bucket:
    """The remote cache's objects, addressed relative to its prefix."""

    def __init__(self, config: RemoteCacheConfig, *,
                 max_concurrent: int = MAX_CONCURRENT_REQUESTS) -> None:
        guard_interpreter_exit()
        self.config = config
        self.stats = TransferStats()
        self._slots = asyncio.Semaphore(max_concurrent)
        settings: dict[str, Any] = {
            "access_key_id": config.access_key_id,
            "secret_access_key": config.secret_access_key,
            "region": config.region,
        }
        if config.session_token:
            settings["session_token"] = config.session_token
        if config.endpoint:
            settings["endpoint"] = config.endpoint
        self._store = S3Store(
            config.bucket, prefix=config.prefix or None, config=settings,  # type: ignore[arg-type]
            client_options={
                "allow_http": bool(config.endpoint and config.endpoint.startswith("http://")),
                "connect_timeout": timedelta(seconds=5),
                # A whole request, body included: generous for a large take on a slow link.
                "timeout": timedelta(seconds=300),
            },
            retry_config={"max_retries": 3, "retry_timeout": timedelta(seconds=30),
                          "backoff": {"init_backoff": timedelta(milliseconds=100),
                                      "max_backoff": timedelta(seconds=5), "base": 2}},
        )

    async def get(self, path: str, *, max_size: int | None = None) -> Fetched | None:
        """The object, or None if there is none. The body of an object larger than
        `max_size` is not read (`Fetched.data` is empty, `size` says how large it
        is): a damaged record or blob cannot fill memory."""
        async with self._slots:
            self.stats.started()
            try:
                result = await obstore.get_async(self._store, path)
                meta = result.meta
                too_large = max_size is not None and meta["size"] > max_size
                data = b"" if too_large else bytes(await result.bytes_async())
            except FileNotFoundError as exc:
                self._raise_if_no_bucket(exc, "GET", path)
                return None
            except BaseError as exc:
                raise self._translate(exc, "GET", path) from exc
            finally:
                self.stats.ended()
        self.stats.bytes_down += len(data)
        return Fetched(data, meta["e_tag"], len(data) if data else meta["size"])

    async def head(self, path: str) -> int | None:
        """The object's size, or None if there is none."""
        async with self._slots:
            self.stats.started()
            try:
                meta = await obstore.head_async(self._store, path)
            except FileNotFoundError as exc:
                self._raise_if_no_bucket(exc, "HEAD", path)
                return None
            except BaseError as exc:
                raise self._translate(exc, "HEAD", path) from exc
            finally:
                self.stats.ended()
        return meta["size"]

    async def get_to_file(self, path: str, dest: Path) -> tuple[str, int] | None:
        """Stream the object into `dest` (created); its (sha256, size), or None if
        there is none. For large takes: memory stays at one chunk."""
        digest = hashlib.sha256()
        size = 0
        async with self._slots:
            self.stats.started()
            try:
                result = await obstore.get_async(self._store, path)
                with dest.open("xb") as out:
                    async for chunk in result.stream(min_chunk_size=1 << 20):
                        block = memoryview(chunk)
                        digest.update(block)
                        out.write(block)
                        size += len(block)
                        self.stats.bytes_down += len(block)
            except FileNotFoundError as exc:
                self._raise_if_no_bucket(exc, "GET", path)
                return None
            except BaseError as exc:
                raise self._translate(exc, "GET", path) from exc
            finally:
                self.stats.ended()
        return digest.hexdigest(), size

    async def put(self, path: str, data: bytes | Path, size: int) -> None:
        """Write (or overwrite) an object: bytes, or a file streamed in parts."""
        await self._put(path, data, size, None)

    async def create(self, path: str, data: bytes) -> bool:
        """Write an object only if there is none (`If-None-Match: *`): True if this
        call created it, False if one was there already."""
        try:
            await self._put(path, data, len(data), "create")
        except AlreadyExistsError:
            return False
        return True

    async def replace(self, path: str, data: bytes, e_tag: str) -> bool:
        """Overwrite an object only if it is still the version `e_tag` (`If-Match`):
        False if another writer changed it since it was read."""
        try:
            await self._put(path, data, len(data), {"e_tag": e_tag})
        except (PreconditionError, AlreadyExistsError, FileNotFoundError):
            return False
        return True

    async def delete(self, paths: Sequence[str]) -> None:
        """Delete objects (in bulk requests where the server has them)."""
        for start in range(0, len(paths), 1000):
            batch = list(paths[start:start + 1000])
            async with self._slots:
                self.stats.started()
                try:
                    await obstore.delete_async(self._store, batch)
                except BaseError as exc:
                    raise self._translate(exc, "DELETE", batch[0]) from exc
                finally:
                    self.stats.ended()

    async def list(self, prefix: str) -> list[Listed]:
        """Every object under `prefix` (relative to the cache's own prefix)."""
        found: list[Listed] = []
        async with self._slots:
            self.stats.started()
            try:
                async for batch in obstore.list(self._store, prefix, chunk_size=1000):
                    found.extend(Listed(meta["path"], meta["size"], meta["last_modified"])
                                 for meta in batch)
            except FileNotFoundError as exc:
                self._raise_if_no_bucket(exc, "LIST", prefix)
            except BaseError as exc:
                raise self._translate(exc, "LIST", prefix) from exc
            finally:
                self.stats.ended()
        return found

    async def _put(self, path: str, data: bytes | Path, size: int, mode: Any) -> None:
        async with self._slots:
            self.stats.started()
            try:
                await obstore.put_async(self._store, path, data, mode=mode)
            except (AlreadyExistsError, PreconditionError):
                self.stats.bytes_up += size  # sent, and refused by its condition
                raise
            except FileNotFoundError as exc:
                self._raise_if_no_bucket(exc, "PUT", path)
                raise self._translate(exc, "PUT", path) from exc
            except BaseError as exc:
                raise self._translate(exc, "PUT", path) from exc
            finally:
                self.stats.ended()
        self.stats.bytes_up += size

    # -- errors -------------------------------------------------------------------------

    def _raise_if_no_bucket(self, exc: FileNotFoundError, op: str, path: str) -> None:
        if "NoSuchBucket" in str(exc):
            raise RemoteCacheError(
                f"remote cache {self.config.where}: the bucket '{self.config.bucket}' does "
                "not exist; create it, or check RUNNER_REMOTE_CACHE and AWS_ENDPOINT_URL"
            ) from exc

    def _translate(self, exc: BaseException, op: str, path: str) -> RemoteCacheError:
        """One sentence for a failed request: what, where, why, what to check. The
        library's own message (URL, retries, response body) is cut to its cause, and
        a credential never appears in it."""
        text = str(exc)
        code = _S3_CODE.search(text)
        status = _STATUS.search(text)
        answer = " ".join(x for x in (status[1] if status else None,
                                      code[1] if code else None) if x)
        where = f"remote cache {self.config.where}: {op} {path}"
        if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)):
            return RemoteCacheError(
                f"{where}: access denied ({answer or 'refused'}): check AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, and that this key may read and write the bucket")
        if answer:
            return RemoteCacheError(f"{where}: the server answered {answer}")
        cause = text.splitlines()[0] if text else type(exc).__name__
        cause = cause.split(" - ", 1)[-1].replace(self.config.secret_access_key, "***")
        return RemoteCacheError(f"{where}: {cause[:200]} (is the server at "
                                f"{self.config.endpoint or 'AWS'} reachable?)")

