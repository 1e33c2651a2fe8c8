"""Benchmark (issue 17): why obstore. 1,000 GETs of 8 KB objects, 64 at a time, from a
local S3 server (SeaweedFS `weed mini`), with obstore (the runner's client) and with
aiobotocore (the other maintained async client), on uvloop, in one process.

How: wall time and this process's CPU time per client, interleaved, median of 5.
aiobotocore is not a dependency of the runner: compare in a separate venv, e.g.
`python -m venv /tmp/s3c && /tmp/s3c/bin/pip install obstore uvloop aiobotocore &&
PATH=.venv/bin:$PATH /tmp/s3c/bin/python bench/bench_s3_clients.py` (the `weed`
binary from the project's venv on PATH); without aiobotocore only obstore is measured.

Target: none; the figures are the reason for the choice of client
(runner/team/objects.py).

    python bench/bench_s3_clients.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.services import S3Server

OBJECTS, SIZE, AT_ONCE = 1000, 8000, 64
T = TypeVar("T")


def run_loop(coroutine: Awaitable[T]) -> T:
    """On uvloop, as `runner run` is (runner.cli.run is not imported: this script runs in a
    venv with only obstore, uvloop and aiobotocore installed too)."""
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)  # type: ignore[arg-type]


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def store(env: dict[str, str]):  # type: ignore[no-untyped-def]
    from obstore.store import S3Store

    return S3Store(S3Server.BUCKET, prefix="clients", config={
        "endpoint": env["AWS_ENDPOINT_URL"], "region": "us-east-1",
        "access_key_id": env["AWS_ACCESS_KEY_ID"],
        "secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}, client_options={"allow_http": True})


async def with_obstore(env: dict[str, str], keys: list[str]) -> int:
    import obstore

    s3 = store(env)
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(key: str) -> int:
        async with slots:
            return len(await (await obstore.get_async(s3, key)).bytes_async())

    return sum(await asyncio.gather(*(one(k) for k in keys)))


async def with_aiobotocore(env: dict[str, str], keys: list[str]) -> int:
    from aiobotocore.session import get_session
    from botocore.config import Config

    config = Config(max_pool_connections=AT_ONCE, s3={"addressing_style": "path"})
    async with get_session().create_client(
            "s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"], config=config) as client:
        slots = asyncio.Semaphore(AT_ONCE)

        async def one(key: str) -> int:
            async with slots:
                answer = await client.get_object(Bucket=S3Server.BUCKET, Key=f"clients/{key}")
                async with answer["Body"] as body:
                    return len(await body.read())

        return sum(await asyncio.gather(*(one(k) for k in keys)))


async def fill(env: dict[str, str], keys: list[str]) -> None:
    import obstore

    s3 = store(env)
    await asyncio.gather(*(obstore.put_async(s3, k, os.urandom(SIZE)) for k in keys))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from runner.team.objects import guard_interpreter_exit

    guard_interpreter_exit()
    clients: dict[str, Callable[[dict[str, str], list[str]], Awaitable[int]]] = {
        "obstore": with_obstore}
    try:
        import aiobotocore  # noqa: F401
    except ImportError:
        print("aiobotocore is not installed (pip install aiobotocore): obstore only")
    else:
        clients["aiobotocore"] = with_aiobotocore
    with tempfile.TemporaryDirectory() as tmp:
        server = S3Server(Path(tmp))
        server.start()
        try:
            env = server.env("clients")
            keys = [f"cas/sha256/{i:064x}" for i in range(OBJECTS)]
            run_loop(fill(env, keys))
            figures: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
            for _ in range(args.repeat):
                for name, client in clients.items():
                    cpu0, wall0 = cpu_s(), time.perf_counter()
                    moved = run_loop(client(env, keys))
                    figures[name].append((time.perf_counter() - wall0, cpu_s() - cpu0))
                    assert moved == OBJECTS * SIZE
        finally:
            server.stop()
    print(f"{OBJECTS} GETs of {SIZE} bytes, {AT_ONCE} at a time, median of {args.repeat}:")
    for name, runs in figures.items():
        print(f"  {name:12s} wall {statistics.median(r[0] for r in runs):.2f} s   "
              f"CPU {statistics.median(r[1] for r in runs):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
