"""The S3 boundary against the real server: conditional writes, errors, accounting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runner.errors import RemoteCacheError
from runner.team.config import RemoteCacheConfig, resolve
from runner.team.objects import Bucket
from tests.conftest import RemoteCacheSetup
from tests.services import free_port_set


def config(env: dict[str, str], **changes: str) -> RemoteCacheConfig:
    found = resolve(None, {**env, **changes})
    assert found is not None
    return found


def test_create_only_and_if_match_writes_are_enforced_by_the_server(
        remote_cache: RemoteCacheSetup) -> None:
    async def scenario() -> None:
        bucket = Bucket(config(remote_cache.env))
        assert await bucket.create("ac/v1/k", b"first") is True
        assert await bucket.create("ac/v1/k", b"second") is False  # 412 from the server
        got = await bucket.get("ac/v1/k")
        assert got is not None and got.data == b"first" and got.e_tag
        assert await bucket.replace("ac/v1/k", b"third", got.e_tag) is True
        assert await bucket.replace("ac/v1/k", b"fourth", got.e_tag) is False  # stale e-tag
        again = await bucket.get("ac/v1/k")
        assert again is not None and again.data == b"third"
        assert await bucket.get("ac/v1/none") is None
        assert await bucket.head("ac/v1/k") == 5
        large = await bucket.get("ac/v1/k", max_size=4)  # the body of an oversized object
        assert large is not None and (large.data, large.size) == (b"", 5)  # is not read
        await bucket.delete(["ac/v1/k"])
        assert [o.path for o in await bucket.list("ac/")] == []
        stats = bucket.stats
        assert stats.requests == 11 and stats.bytes_up == 5 + 6 + 5 + 6
        assert stats.bytes_down == 5 + 5 and stats.busy_s > 0

    asyncio.run(scenario())


def test_a_large_take_streams_to_a_file_and_back(
        remote_cache: RemoteCacheSetup, tmp_path: Path) -> None:
    source = tmp_path / "take.wav"
    source.write_bytes(bytes(range(256)) * (12 << 12))  # 12 MiB: uploaded in parts

    async def scenario() -> tuple[str, int] | None:
        bucket = Bucket(config(remote_cache.env))
        await bucket.put("cas/sha256/big", source, source.stat().st_size)
        return await bucket.get_to_file("cas/sha256/big", tmp_path / "back.wav")

    import hashlib

    got = asyncio.run(scenario())
    assert got == (hashlib.sha256(source.read_bytes()).hexdigest(), source.stat().st_size)
    assert (tmp_path / "back.wav").read_bytes() == source.read_bytes()


@pytest.mark.parametrize(("changes", "expected"), [
    ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-123"},
     ("GET ac/v1/x: access denied (403 SignatureDoesNotMatch): check AWS_ACCESS_KEY_ID and "
     "AWS_SECRET_ACCESS_KEY")),
    ({"AWS_ACCESS_KEY_ID": "nobody"}, "GET ac/v1/x: access denied (403 "),
    ({"RUNNER_REMOTE_CACHE": "s3://no-such-bucket"}, ("the bucket 'no-such-bucket' does not "
                                                     "exist")),
])
def test_errors_say_what_to_check_and_never_show_the_secret(
        remote_cache: RemoteCacheSetup, changes: dict[str, str], expected: str) -> None:
    settings = config(remote_cache.env, **changes)
    with pytest.raises(RemoteCacheError) as caught:
        asyncio.run(Bucket(settings).get("ac/v1/x"))
    message = str(caught.value)
    assert expected in message
    assert settings.secret_access_key not in message
    assert remote_cache.env["AWS_SECRET_ACCESS_KEY"] not in message


def test_an_unreachable_server_is_an_error_that_names_it(
        remote_cache: RemoteCacheSetup) -> None:
    import random

    port = free_port_set(random.Random())["s3"]  # nothing listens there
    settings = config(remote_cache.env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    with pytest.raises(RemoteCacheError, match=rf"is the server at http://127.0.0.1:{port} "
                                               r"reachable\?"):
        asyncio.run(Bucket(settings).get("ac/v1/x"))


EXIT_SCRIPT = """
import asyncio, os, sys
from runner.errors import RemoteCacheError
from runner.team.config import resolve
from runner.team.objects import Bucket

async def main():
    env = dict(os.environ)
    bucket = Bucket(resolve(None, env))
    await bucket.put("cas/sha256/x", b"x" * 100, 100)
    closed = Bucket(resolve(None, {**env, "AWS_ENDPOINT_URL": sys.argv[1]}))
    try:
        await closed.get("ac/v1/x")
    except RemoteCacheError:
        pass
    await bucket.list("cas/")

asyncio.run(main())  # asyncio's own loop: its wake-ups release the GIL
"""


def test_short_processes_on_asyncios_loop_exit_cleanly(remote_cache: RemoteCacheSetup) -> None:
    """A process that used the S3 client on asyncio's loop exits 0, not SIGABRT: without
    `guard_interpreter_exit` about a third of such processes died at interpreter exit
    (14 of 40 measured), so twelve all exiting cleanly by chance is under 1 % likely."""
    import os
    import random
    import subprocess
    import sys

    closed = f"http://127.0.0.1:{free_port_set(random.Random())['s3']}"
    codes = []
    for _ in range(3):  # 12 processes, four at a time
        batch = [subprocess.Popen([sys.executable, "-c", EXIT_SCRIPT, closed],
                                  env={**os.environ}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(4)]
        codes += [(p.wait(timeout=60), p.stderr.read() if p.stderr else b"") for p in batch]
        for p in batch:
            if p.stderr:
                p.stderr.close()
    assert [c for c, _ in codes] == [0] * 12, codes
