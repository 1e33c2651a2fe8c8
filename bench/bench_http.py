"""Benchmark (issues 4, 15, overhead): client CPU per request for three HTTP clients side by side.

What: the sandbox in its own process (no rate limit, zero latency) holds one
finished sound-effect task on kie. This process sends N polls of it
(GET /api/v1/jobs/recordInfo?taskId=..., with the adapter's Authorization
header) at concurrency 100 through each of:

  a. httpx          plain `httpx.AsyncClient()` (httpcore's pool)
  b. runner         `runner.providers.http.make_client()`, the runner's client:
                    httpx over `runner.providers.transport.AiohttpTransport`
  c. aiohttp        a bare `aiohttp.ClientSession`: the floor

and then N downloads of the task's result file (~30 KB mp3) with `stream()`
reading every chunk, through b and c.

How: this process runs only the clients; its CPU time (user + sys from
`resource.getrusage`) over one batch, divided by N, is the figure. Every
variant gets a fresh client whose pool is opened by a warm-up batch first. The
variants take turns in rounds (the order rotating each round) and the median
round is reported, so that a noisy machine hurts them alike. The wall rate
printed is that median round's (the sandbox, on one core, caps it). On two or
more cores the sandbox is pinned to the first core and this process to the last.

Targets: none here (printed for comparison); the runner's per-job target is
bench_scale.py's.

    python bench/bench_http.py [--quick] [--requests N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aiohttp
import httpx
import runbench as rb

from runner.providers.http import make_client

CONCURRENCY = 100
HEADERS = {"Authorization": "Bearer k"}
TASK = {"model": "elevenlabs/sound-effect-v2", "input": {"text": "boom"}}

# One request: takes the URL, returns the number of body bytes read.
Fetch = Callable[[str], Awaitable[int]]
# A variant opens its client and yields a (poll, download) pair of fetchers.
Variant = Callable[[], AbstractAsyncContextManager[tuple[Fetch, Fetch]]]


def _httpx_fetchers(client: httpx.AsyncClient, task_id: str) -> tuple[Fetch, Fetch]:
    async def poll(url: str) -> int:
        response = await client.get(url, params={"taskId": task_id}, headers=HEADERS)
        return len(response.content)

    async def download(url: str) -> int:
        size = 0
        async with client.stream("GET", url) as response:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
        return size

    return poll, download


def variants(task_id: str) -> dict[str, Variant]:
    @asynccontextmanager
    async def plain() -> AsyncIterator[tuple[Fetch, Fetch]]:
        # httpx's default 5 s read timeout fails the batch when a busy machine starves the
        # sandbox for a moment; the runner's client waits 60 s.
        async with httpx.AsyncClient(timeout=60) as client:
            yield _httpx_fetchers(client, task_id)

    @asynccontextmanager
    async def runner() -> AsyncIterator[tuple[Fetch, Fetch]]:
        async with make_client() as client:
            yield _httpx_fetchers(client, task_id)

    @asynccontextmanager
    async def bare() -> AsyncIterator[tuple[Fetch, Fetch]]:
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def poll(url: str) -> int:
                async with session.get(url, params={"taskId": task_id},
                                       headers=HEADERS) as response:
                    return len(await response.read())

            async def download(url: str) -> int:
                size = 0
                async with session.get(url) as response:
                    async for chunk in response.content.iter_chunked(256 * 1024):
                        size += len(chunk)
                return size

            yield poll, download

    return {"a. httpx": plain, "b. runner": runner, "c. aiohttp": bare}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def batch(fetch: Fetch, url: str, count: int) -> int:
    """`count` fetches of `url` by CONCURRENCY workers; the bytes read."""
    left = [count]
    total = [0]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            size = await fetch(url)  # awaited first: `+=` would read the total before
            total[0] += size

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return total[0]


async def measure(variant: Variant, which: int, url: str, count: int) -> tuple[float, float]:
    """(CPU µs per request, wall requests per second) of one batch, after a warm-up."""
    async with variant() as fetchers:
        fetch = fetchers[which]
        await batch(fetch, url, 2 * CONCURRENCY)  # opens the pool; imports and caches warm
        size = await batch(fetch, url, 1)
        assert size > 0
        cpu0, wall0 = cpu_s(), time.perf_counter()
        got = await batch(fetch, url, count)
        cpu1, wall1 = cpu_s(), time.perf_counter()
    assert got == count * size, (got, count, size)
    return (cpu1 - cpu0) / count * 1e6, count / (wall1 - wall0)


async def compare(table: dict[str, Variant], which: int, url: str, count: int,
                  rounds: int) -> dict[str, tuple[float, float]]:
    """Median CPU µs per request (and the wall rate of that round) per variant."""
    names = list(table)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs[name].append(await measure(table[name], which, url, count))
    return {name: statistics.median_low(sorted(runs[name])) for name in names}


async def create_task(base: str) -> tuple[str, str]:
    """(task id, result URL) of one finished sound effect."""
    async with httpx.AsyncClient() as client:
        created = await client.post(f"{base}/api/v1/jobs/createTask", json=TASK,
                                    headers=HEADERS)
        task_id = created.json()["data"]["taskId"]
        record = await client.get(f"{base}/api/v1/jobs/recordInfo",
                                  params={"taskId": task_id}, headers=HEADERS)
        data = record.json()["data"]
        assert data["state"] == "success", data
        return task_id, json.loads(data["resultJson"])["resultUrls"][0]


def report(title: str, results: dict[str, tuple[float, float]]) -> Iterator[str]:
    yield title
    for name, (per_request_us, rate) in results.items():
        yield (f"  {name:18s} {per_request_us:8.1f} µs/request   "
               f"{rate:8,.0f} requests/s (wall)")
    us = {name[0]: value[0] for name, value in results.items()}
    if "b" in us and "c" in us:
        yield f"  b/c (the runner's client over bare aiohttp)  {us['b'] / us['c']:5.2f}x"
    if "a" in us and "b" in us:
        yield f"  a/b (plain httpx over the runner's client)   {us['a'] / us['b']:5.2f}x"


async def run(base: str, count: int, rounds: int) -> None:
    task_id, file_url = await create_task(base)
    table = variants(task_id)
    poll_url = f"{base}/api/v1/jobs/recordInfo"
    polls = await compare(table, 0, poll_url, count, rounds)
    for text in report(f"poll: {count:,} GET recordInfo, concurrency {CONCURRENCY}, "
                       f"median of {rounds} rounds (client CPU)", polls):
        print(text)
    downloads = await compare({k: v for k, v in table.items() if not k.startswith("a")},
                              1, file_url, count, rounds)
    for text in report(f"download: {count:,} streamed GETs of a "
                       f"{await _size(file_url)} B file", downloads):
        print(text)


async def _size(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return len((await client.get(url)).content)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 requests per batch")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    count = args.requests or (2000 if args.quick else 6000)
    with rb.sandbox(["--rate-limit", "none"], pin=args.pin) as sb:
        if args.pin and len(rb.cores()) >= 2:
            os.sched_setaffinity(0, {rb.cores()[-1]})
        asyncio.run(run(sb.url, count, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
