"""The team's ledger against a real PostgreSQL: claims, leases, adoption, shared budgets.

Each `Coordinator` here is one "machine": its own owner id, its own connection
pool. Leases are short (3 s) so that a machine that stops beating is adopted
soon, and long beside anything a test does between a machine's last renewal and
the claim that must still find it held, however busy the machine running the
tests is; the tests wait for the server's clock to pass a lease (hang guards
only), and never assert how long anything took.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from runner.errors import CoordinatorError, UsageError
from runner.team.coordinator import (
    ClaimRequest,
    ClaimState,
    Coordinator,
    Verdict,
    lease_s,
    resolve_url,
)

LEASE_S = 3.0


def ask(key: str, *, budget: str | None = None, worst: float | None = None,
        job: str = "door") -> ClaimRequest:
    return ClaimRequest(key=key, pipeline="game", target="sandbox", job_id=job, provider="kie",
                        budget=budget, worst=worst)


@asynccontextmanager
async def machines(url: str, count: int, *, lease: float = LEASE_S,
                   pool_size: int = 2) -> AsyncIterator[list[Coordinator]]:
    found = [Coordinator(url, lease_s=lease, pool_size=pool_size) for _ in range(count)]
    for machine in found:
        await machine.open()
    try:
        yield found
    finally:
        for machine in found:
            await machine.close()


async def die(machine: Coordinator) -> None:
    """As a kill -9 would: no more heartbeats, nothing let go; the connections close."""
    assert machine._heartbeat is not None and machine._pool is not None
    machine._heartbeat.cancel()
    machine._heartbeat = None
    await machine._pool.close()
    machine._pool = None


async def until(check: Callable[[], Awaitable[bool]], guard_s: float = 60.0) -> None:
    deadline = time.monotonic() + guard_s  # a hang guard only
    while not await check():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.05)


def test_one_machine_wins_a_key_and_the_other_is_told_who_holds_it(coordinator_url: str
                                                                    ) -> None:
    async def main() -> None:
        async with machines(coordinator_url, 2) as (a, b):
            won = await a.claim(ask("sha256:one"))
            assert won.verdict is Verdict.WON and won.claim is not None
            assert won.claim.state is ClaimState.CLAIMED and won.claim.owner == a.owner
            held = await b.claim(ask("sha256:one", job="door_copy"))
            assert held.verdict is Verdict.HELD and held.claim is not None
            assert held.claim.owner == a.owner and held.claim.job_id == "door"
            assert held.claim.holder == f"{a.host} (pid {a.pid})"
            # Its own claim again: it holds it already.
            assert (await a.claim(ask("sha256:one"))).verdict is Verdict.WON

    asyncio.run(main())


def test_many_machines_claiming_the_same_keys_at_once_win_each_key_exactly_once(
        coordinator_url: str) -> None:
    keys = [f"sha256:{n:04d}" for n in range(60)]

    async def main() -> dict[str, list[str]]:
        # Leases long enough never to run out here: a claim whose lease ran out is taken
        # afresh by design (its machine is presumed dead), and how long 360 claims take
        # on a busy machine is not what this test is about.
        async with machines(coordinator_url, 6, lease=600) as found:
            async def one(machine: Coordinator, key: str) -> tuple[str, str, Verdict]:
                answer = await machine.claim(ask(key))
                return key, machine.owner, answer.verdict

            work = [one(machine, key) for machine in found for key in keys]
            random.Random(7).shuffle(work)
            answers = await asyncio.gather(*work)
        winners: dict[str, list[str]] = {key: [] for key in keys}
        for key, owner, verdict in answers:
            assert verdict in (Verdict.WON, Verdict.HELD)
            if verdict is Verdict.WON:
                winners[key].append(owner)
        return winners

    winners = asyncio.run(main())
    assert all(len(owners) == 1 for owners in winners.values()), winners
    assert len({owners[0] for owners in winners.values()}) > 1  # not one machine's walk-over


def test_a_dead_machines_recorded_task_is_adopted_once_its_lease_runs_out(
        coordinator_url: str) -> None:
    async def main() -> None:
        async with machines(coordinator_url, 3) as (a, b, c):
            await a.set_budget("team", 10)
            assert (await a.claim(ask("sha256:t", budget="team", worst=4))).verdict \
                is Verdict.WON
            assert await a.sending("sha256:t")
            assert await a.submitted("sha256:t", "task-123")
            await die(a)
            held = await b.claim(ask("sha256:t"))
            assert held.verdict is Verdict.HELD  # its lease still runs
            assert held.claim is not None and held.claim.task_id == "task-123"

            async def adopted() -> bool:
                answer = await b.claim(ask("sha256:t"))
                assert answer.verdict in (Verdict.HELD, Verdict.ADOPTED)
                return answer.verdict is Verdict.ADOPTED

            await until(adopted)
            # Adopted once: the third machine now finds it held by the adopter.
            answer = await c.claim(ask("sha256:t"))
            assert answer.verdict is Verdict.HELD and answer.claim is not None
            assert answer.claim.owner == b.owner and answer.claim.adopted_from == a.owner
            assert answer.claim.task_id == "task-123" and answer.claim.reserved == 4
            # The adopter finishes it: the reservation it inherited is settled.
            await b.done("sha256:t", {"sha256": "ab" * 32, "size": 10, "ext": "mp3"}, 1.5)
            budget = await b.budget("team")
            assert budget is not None and (budget.spent, budget.reserved) == (1.5, 0)
            finished = await c.claim(ask("sha256:t"))
            assert finished.verdict is Verdict.DONE and finished.claim is not None
            assert finished.claim.result == {"sha256": "ab" * 32, "size": 10, "ext": "mp3"}

    asyncio.run(main())


def test_a_machine_that_died_while_sending_leaves_an_uncertain_claim_nobody_resends(
        coordinator_url: str) -> None:
    async def main() -> None:
        async with machines(coordinator_url, 2) as (a, b):
            await a.set_budget("team", 10)
            await a.claim(ask("sha256:s", budget="team", worst=4))
            assert await a.sending("sha256:s")
            await die(a)

            async def expired() -> bool:
                answer = await b.claim(ask("sha256:s"))
                return answer.verdict is not Verdict.HELD

            await until(expired)
            answer = await b.claim(ask("sha256:s"))
            assert answer.verdict is Verdict.UNCERTAIN and answer.claim is not None
            assert answer.claim.owner == a.owner and answer.claim.task_id is None
            # A person decided to send it again: the old reservation is spent (it may
            # have been billed), and a new one is made for the new request.
            again = await b.claim(ask("sha256:s", budget="team", worst=4),
                                  take_over_uncertain=True)
            assert again.verdict is Verdict.WON
            budget = await b.budget("team")
            assert budget is not None and (budget.spent, budget.reserved) == (4, 4)

    asyncio.run(main())


def test_a_claim_that_died_before_sending_is_taken_afresh_and_its_reservation_given_back(
        coordinator_url: str) -> None:
    async def main() -> None:
        async with machines(coordinator_url, 2) as (a, b):
            await a.set_budget("team", 5)
            await a.claim(ask("sha256:c", budget="team", worst=4))
            await die(a)

            async def won() -> bool:
                answer = await b.claim(ask("sha256:c", budget="team", worst=4))
                return answer.verdict is Verdict.WON

            await until(won)
            budget = await b.budget("team")
            assert budget is not None and (budget.spent, budget.reserved) == (0, 4)

    asyncio.run(main())


def test_the_shared_budget_is_never_exceeded_by_machines_reserving_at_once(
        coordinator_url: str) -> None:
    cap, worst = 50.0, 3.0
    keys = [f"sha256:b{n:03d}" for n in range(120)]

    async def main() -> tuple[int, float, list[float]]:
        async with machines(coordinator_url, 5, pool_size=3) as found:
            await found[0].set_budget("team-sfx", cap)
            seen: list[float] = []
            stop = asyncio.Event()

            async def watch() -> None:  # a machine that only reads the budget meanwhile
                while not stop.is_set():
                    state = await found[4].budget("team-sfx")
                    assert state is not None
                    seen.append(state.spent + state.reserved)
                    await asyncio.sleep(0.005)

            async def buy(machine: Coordinator, key: str, rng: random.Random) -> bool:
                while True:
                    answer = await machine.claim(ask(key, budget="team-sfx", worst=worst))
                    if answer.verdict is Verdict.BUDGET:
                        assert answer.budget is not None
                        if answer.budget.settling == 0 or not answer.budget.may_fit(worst):
                            return False  # nothing left to settle: it will never fit
                        await asyncio.sleep(0.01)
                        continue
                    if answer.verdict is not Verdict.WON:
                        return False  # another machine has it
                    await asyncio.sleep(rng.uniform(0, 0.02))
                    actual = rng.choice([1.0, 2.0, 3.0, None])  # None: not said: worst
                    await machine.done(key, {"sha256": "0" * 64, "size": 1, "ext": "mp3"},
                                       actual)
                    return True

            watcher = asyncio.create_task(watch())
            rng = random.Random(3)
            results = await asyncio.gather(*(buy(m, k, random.Random(rng.random()))
                                             for k in keys for m in found[:3]))
            stop.set()
            await watcher
            state = await found[0].budget("team-sfx")
            assert state is not None and state.reserved == 0
            return sum(results), state.spent, seen

    bought, spent, seen = asyncio.run(main())
    assert spent <= cap and max(seen) <= cap + 1e-9
    assert cap - worst < spent  # it stopped only when the next worst case did not fit
    assert bought >= cap / worst  # each bought at most its worst case
    print(f"\nshared budget {cap:g}: {bought} bought, {spent:g} spent, the most committed "
          f"seen {max(seen):g} over {len(seen)} reads")


def test_failures_give_the_reservation_back_or_keep_it_as_they_should(
        coordinator_url: str) -> None:
    async def main() -> None:
        async with machines(coordinator_url, 2) as (a, b):
            await a.set_budget("team", 100)
            for key in ("sha256:f1", "sha256:f2", "sha256:f3", "sha256:f4"):
                assert (await a.claim(ask(key, budget="team", worst=10))).verdict \
                    is Verdict.WON
            await a.failed("sha256:f1", "refused: 422", billed=False)
            await a.sending("sha256:f2")
            await a.failed("sha256:f2", "the answer was cut off", billed=None)
            await a.release("sha256:f3")
            await a.sending("sha256:f4")
            await a.submitted("sha256:f4", "task-4")
            state = await a.budget("team")
            assert state is not None and (state.spent, state.reserved) == (0, 20)
            # Failed: a later claim buys it; uncertain: nobody does without a person.
            assert (await b.claim(ask("sha256:f1"))).verdict is Verdict.WON
            assert (await b.claim(ask("sha256:f2"))).verdict is Verdict.UNCERTAIN
            assert (await b.claim(ask("sha256:f3"))).verdict is Verdict.WON  # released
            open_claims = await b.open_claims("game")
            assert {(c.key, c.state, c.owner) for c in open_claims} == {
                ("sha256:f1", ClaimState.CLAIMED, b.owner),
                ("sha256:f2", ClaimState.UNCERTAIN, a.owner),
                ("sha256:f3", ClaimState.CLAIMED, b.owner),
                ("sha256:f4", ClaimState.SUBMITTED, a.owner)}
            # A clean close lets go of a's recorded task: adoptable at once.
            await a.close()
            answer = await b.claim(ask("sha256:f4"))
            assert answer.verdict is Verdict.ADOPTED and answer.claim is not None
            assert answer.claim.task_id == "task-4"

    asyncio.run(main())


def test_a_budget_is_created_joined_and_its_cap_changed(coordinator_url: str) -> None:
    async def main() -> None:
        async with machines(coordinator_url, 1) as (a,):
            with pytest.raises(UsageError, match=r"--budget sfx: no such shared budget .*"
                               r"--budget sfx=CAP"):
                await a.set_budget("sfx", None)
            state, before = await a.set_budget("sfx", 500)
            assert (state.cap, before) == (500, None)
            state, before = await a.set_budget("sfx", None)
            assert (state.cap, before) == (500, None)
            state, before = await a.set_budget("sfx", 300)
            assert (state.cap, before) == (300, 500)
            assert state.describe() == "shared budget 'sfx' 300: 0 spent, 0 reserved by " \
                                       "requests in flight"

    asyncio.run(main())


def test_a_bad_url_and_an_unreachable_server_say_so_and_never_show_the_password(
        postgres_server: object) -> None:
    with pytest.raises(UsageError, match=r"RUNNER_COORDINATOR: expected postgresql://USER"):
        resolve_url({"RUNNER_COORDINATOR": "mysql://u:hunter2@h/db"})
    with pytest.raises(UsageError, match="RUNNER_TEAM_LEASE_S"):
        lease_s({"RUNNER_TEAM_LEASE_S": "soon"})
    assert resolve_url({}) is None
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://runner:hunter2@127.0.0.1:{port}/game"
    with pytest.raises(CoordinatorError) as caught:
        asyncio.run(Coordinator(url).open())
    message = str(caught.value)
    assert "hunter2" not in message
    assert message.startswith(f"the team's coordinator postgresql://runner:***@127.0.0.1:{port}"
                              "/game: cannot connect to it:")
    assert "check RUNNER_COORDINATOR" in message


def test_a_missing_database_is_named(postgres_server: object) -> None:
    from tests.services import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    url = postgres_server.url("no_such_db")
    with pytest.raises(CoordinatorError, match='database "no_such_db" does not exist'):
        asyncio.run(Coordinator(url).open())
