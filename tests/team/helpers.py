"""Helpers for the remote cache's tests: the bucket as the tests see it, and manifests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from runner.team.config import resolve
from runner.team.objects import Bucket
from runner.team.records import BLOBS, RECORDS, Record, blob_path, record_path
from tests.engine.helpers import write_manifest

T = TypeVar("T")


def sync(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class RemoteView:
    """The test's own look into the remote cache, through the same real S3 client."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        config = resolve(None, env if env is not None else dict(os.environ))
        assert config is not None
        self.config = config

    def _bucket(self) -> Bucket:  # one per call: each asyncio.run has its own loop
        return Bucket(self.config)

    def record(self, key: str) -> Record | None:
        got = sync(self._bucket().get(record_path(key)))
        return None if got is None else Record.parse(got.data, key)

    def blob(self, sha256: str) -> bytes | None:
        got = sync(self._bucket().get(blob_path(sha256)))
        return None if got is None else got.data

    def put(self, path: str, data: bytes) -> None:
        sync(self._bucket().put(path, data, len(data)))

    def delete(self, path: str) -> None:
        sync(self._bucket().delete([path]))

    def records(self) -> list[str]:
        return sorted(o.path.removeprefix(RECORDS) for o in sync(self._bucket().list(RECORDS)))

    def blobs(self) -> list[str]:
        return sorted(o.path.removeprefix(BLOBS) for o in sync(self._bucket().list(BLOBS)))


def machine(root: Path, name: str, jobs: str, *, extra: str = "") -> Path:
    """A machine's checkout: its own folder, build and local cache; the same manifest."""
    folder = root / name
    folder.mkdir()
    return write_manifest(folder, jobs, extra=extra)


def outputs(manifest: Path) -> dict[str, bytes]:
    """Every file of a sandbox build but the runner's own state, by relative path."""
    build = manifest.parent / "out.sandbox"
    return {p.relative_to(build).as_posix(): p.read_bytes() for p in sorted(build.rglob("*"))
            if p.is_file() and ".runner" not in p.relative_to(build).parts}
