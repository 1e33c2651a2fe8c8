"""The shared limiter against a real Redis: several "machines" (each its own client,
heartbeat and local limiter) pacing one account.

Every time the tests compare is the Redis server's (`TIME`), the clock the
limiter itself decides by: no assertion depends on how fast anything ran.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest
import redis.asyncio

from runner.catalog.accounts import BUILTIN, Limits, ProviderAccount
from runner.engine.limits import AccountLimiter
from runner.errors import RateLimited, SharedLimiterError
from runner.team.shared_limiter import (
    SharedAccountLimiter,
    SharedLimiter,
    SharedLimiterUsage,
    account_id,
    resolve_url,
)

ACCOUNT: ProviderAccount = replace(BUILTIN["kie"], base_url="http://127.0.0.1:9")
KEY = "sandbox-key-kie"


async def server_ms(client: redis.asyncio.Redis) -> float:
    seconds, micros = await client.time()
    return seconds * 1000 + micros / 1000


@asynccontextmanager
async def machines(url: str, count: int, limits: Limits, *, lease_s: float = 30.0
                   ) -> AsyncIterator[list[tuple[SharedLimiter, SharedAccountLimiter]]]:
    """Machines on one account. Their leases outlast anything a test does (a live
    machine's slot never runs out under it, however busy the host); a test of a dead
    machine's leases sets a short one."""
    found = []
    for _ in range(count):
        shared = SharedLimiter(url, lease_s=lease_s)
        await shared.open()
        found.append((shared, SharedAccountLimiter(limits, shared.account(ACCOUNT, KEY))))
    try:
        yield found
    finally:
        for shared, _ in found:
            await shared.close()


def most_in_any_window(spans: list[tuple[float, float]], window_ms: float) -> int:
    """The most requests a provider can have counted in one window of `window_ms`,
    whatever moment between its send and its answer it counts each one at."""
    return max(sum(1 for send, answer in spans if send < end + window_ms and answer >= end)
               for _, end in spans)


async def burst(limiters: list[AccountLimiter], per_machine: int,
                clock: redis.asyncio.Redis, rng: random.Random) -> list[tuple[float, float]]:
    spans: list[tuple[float, float]] = []

    async def request(limiter: AccountLimiter, latency_s: float) -> None:
        slot = await limiter.submit.acquire()
        with slot:
            sent = await server_ms(clock)
            await asyncio.sleep(latency_s)
            spans.append((sent, await server_ms(clock)))

    await asyncio.gather(*(request(limiter, rng.uniform(0.0, 0.04))
                           for limiter in limiters for _ in range(per_machine)))
    return spans


def test_three_machines_together_keep_one_window_that_each_alone_would_overrun(
        limiter_url: str) -> None:
    limits = Limits(requests_per_window=8, window_s=0.4, max_in_flight=100, polls_per_s=0)

    async def main() -> tuple[int, int, int]:
        clock = redis.asyncio.Redis.from_url(limiter_url)
        async with machines(limiter_url, 3, limits) as found:
            shared = await burst([limiter for _, limiter in found], 12, clock,
                                 random.Random(1))
            # The control: the same machines, each with only its own limiter.
            alone = await burst([AccountLimiter(limits) for _ in found], 12, clock,
                                random.Random(1))
        await clock.aclose()
        return (most_in_any_window(shared, 400), most_in_any_window(alone, 400), len(shared))

    shared_most, alone_most, sent = asyncio.run(main())
    assert sent == 36
    assert shared_most <= 8
    assert alone_most > 8  # what users meet today: three machines, three windows
    print(f"\nthe most in one window: {shared_most} shared, {alone_most} each alone (limit 8)")


def test_the_in_flight_cap_holds_across_machines(limiter_url: str) -> None:
    limits = Limits(requests_per_window=0, window_s=1, max_in_flight=4, polls_per_s=0)

    async def main() -> list[tuple[float, float]]:
        clock = redis.asyncio.Redis.from_url(limiter_url)
        spans: list[tuple[float, float]] = []
        rng = random.Random(2)
        async with machines(limiter_url, 3, limits) as found:
            async def task(limiter: AccountLimiter, runs_s: float) -> None:
                async with limiter.in_flight:
                    start = await server_ms(clock)
                    await asyncio.sleep(runs_s)
                    spans.append((start, await server_ms(clock)))

            await asyncio.gather(*(task(limiter, rng.uniform(0.01, 0.05))
                                   for _, limiter in found for _ in range(8)))
        await clock.aclose()
        return spans

    spans = asyncio.run(main())
    assert len(spans) == 24
    most = max(sum(1 for start, end in spans if start <= moment < end) for moment, _ in spans)
    assert 1 < most <= 4


def test_a_job_waiting_to_retry_lends_its_shared_in_flight_lease(limiter_url: str) -> None:
    """The engine backs off before a retry with its permit lent (`InFlight.lent`): a job
    waiting has nothing in flight. Shared, the account's lease is lent too, so another
    machine's task runs meanwhile; after the wait the job takes one again."""
    limits = Limits(requests_per_window=0, window_s=1, max_in_flight=1, polls_per_s=0)
    inflight = f"runner:{{{account_id(ACCOUNT, KEY)}}}:inflight"

    async def main() -> list[int]:
        clock = redis.asyncio.Redis.from_url(limiter_url)
        seen = []
        async with machines(limiter_url, 2, limits) as ((_, limiter_a), (_, limiter_b)):
            async with limiter_a.in_flight:
                seen.append(await clock.zcard(inflight))
                async with limiter_a.in_flight.lent():
                    # b's task takes the account's one lease (the timeout: a hang guard)
                    await asyncio.wait_for(limiter_b.in_flight.__aenter__(), 60)
                    seen.append(await clock.zcard(inflight))
                    await limiter_b.in_flight.__aexit__(None, None, None)
                seen.append(await clock.zcard(inflight))  # a's, taken again
                assert limiter_a.in_flight.in_use == 1
            assert limiter_a.in_flight.in_use == 0
            await asyncio.sleep(0)
        # Closing gave back what was left: nothing is held on the server.
        seen.append(await clock.zcard(inflight))
        await clock.aclose()
        return seen

    assert asyncio.run(main()) == [1, 1, 1, 0]


def test_a_dead_machines_slots_run_out_with_its_lease(limiter_url: str) -> None:
    limits = Limits(requests_per_window=0, window_s=1, max_in_flight=2, polls_per_s=0)

    async def main() -> None:
        clock = redis.asyncio.Redis.from_url(limiter_url)
        async with machines(limiter_url, 2, limits, lease_s=1.0) as ((a, limiter_a),
                                                                      (_, limiter_b)):
            # The server's time before a takes its slots: each lease ends at least 1 s
            # after it (the scripts count whole milliseconds, floored: 1 ms of slack).
            before_ms = await server_ms(clock)
            await limiter_a.in_flight.__aenter__()
            await limiter_a.in_flight.__aenter__()
            # a dies as a kill -9 leaves it: no heartbeat, nothing given back.
            assert a._heartbeat is not None
            a._heartbeat.cancel()
            a._held.clear()
            async with limiter_b.in_flight:
                got_ms = await server_ms(clock)
            assert got_ms - before_ms >= 1000 - 1  # not before the dead one's lease ran out
        await clock.aclose()

    asyncio.run(main())


def test_a_429_on_one_machine_holds_back_every_machine(limiter_url: str) -> None:
    limits = Limits(requests_per_window=100, window_s=1, max_in_flight=100, polls_per_s=0)

    async def main() -> None:
        clock = redis.asyncio.Redis.from_url(limiter_url)
        async with machines(limiter_url, 2, limits) as ((_, limiter_a), (_, limiter_b)):
            slot = await limiter_a.submit.acquire()
            with pytest.raises(RateLimited), slot:
                raise RateLimited("429 too many requests", retry_after_s=0.5)
            cooldown = f"runner:{{{account_id(ACCOUNT, KEY)}}}:cooldown"
            while True:  # the cool-down is set in the background
                # The server's time before it says what is left: the cool-down ends no
                # sooner than seen_ms + left_ms (both in whole ms on the server).
                seen_ms = await server_ms(clock)
                if (left_ms := await clock.pttl(cooldown)) > 0:
                    break
                await asyncio.sleep(0.001)
            slot_b = await limiter_b.submit.acquire()
            got_ms = await server_ms(clock)
            slot_b.answered()
            assert got_ms >= seen_ms + left_ms - 2  # ms rounding of PTTL and TIME
            # The provider's 0.5 s, not one request's share of the window (10 ms).
            assert 10 < left_ms <= 500
        await clock.aclose()

    asyncio.run(main())


def test_a_wrong_password_stops_before_anything_and_is_never_shown(
        redis_server: object) -> None:
    from tests.services import RedisServer

    assert isinstance(redis_server, RedisServer)
    url = redis_server.url.replace(RedisServer.PASSWORD, "hunter2-wrong")
    with pytest.raises(SharedLimiterError) as caught:
        asyncio.run(SharedLimiter(url, lease_s=1).open())
    message = str(caught.value)
    assert "hunter2" not in message and RedisServer.PASSWORD not in message
    assert message.startswith("the team's shared limiter redis://:***@127.0.0.1:")
    assert "check RUNNER_LIMITER" in message


def test_urls() -> None:
    assert resolve_url({}) is None
    assert resolve_url({"RUNNER_LIMITER": "redis://:pw@127.0.0.1:6379/0"})
    assert resolve_url({"RUNNER_LIMITER": "valkey://127.0.0.1"})
    with pytest.raises(SharedLimiterUsage, match=r"RUNNER_LIMITER: expected redis://.*not "
                                                 r"'http://:\*\*\*@h'"):
        resolve_url({"RUNNER_LIMITER": "http://:pw@h"})
    # Two manifests naming the same key share its limit; another key is another account.
    assert account_id(ACCOUNT, KEY) == account_id(replace(ACCOUNT, name="kie2"), KEY)
    assert account_id(ACCOUNT, KEY) != account_id(ACCOUNT, KEY + "x")
    assert KEY not in account_id(ACCOUNT, KEY)
