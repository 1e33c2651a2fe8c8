"""The team's ledger of requests and budgets, in PostgreSQL (`RUNNER_COORDINATOR`).

Machines that share a provider account share one ledger. Before a job pays for
a request, its run claims the request's cache key:

    INSERT INTO runner_claims ... ON CONFLICT (key) DO NOTHING

One machine wins the key and holds it with a lease that its heartbeat renews.
The winner marks the claim `sending` before the request leaves (so nobody else
sends it), records the task id as soon as the provider answers (`submitted`),
and the result when it is stored (`done`). Another machine that asks for the
same key meanwhile is told who holds it and waits; when the holder's lease runs
out (the process died), it adopts the claim: a recorded task is collected, never
bought again; a request that was `sending` when its owner died may or may not
have been billed, so it is `uncertain`, as in the local journal, until a person
decides.

A shared budget (`--budget NAME=CAP`) is reserved in the transaction that takes
the claim: `UPDATE runner_budgets SET reserved = reserved + w WHERE spent +
reserved + w <= cap`. PostgreSQL serialises updates of one row and re-checks the
condition on the row it finally updates, so concurrent reservations from any
number of machines never take the sum over the cap. The reservation travels
with the claim (an adopter inherits it) and is settled to what the provider
billed when the claim is done, given back when nothing was billed.

Every time is the server's (`clock_timestamp()`): the machines' clocks never
decide whether a lease has run out. psycopg's errors are translated here, once,
into `CoordinatorError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from runner.errors import CoordinatorError, UsageError, without_password

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

URL_VARIABLE = "RUNNER_COORDINATOR"
LEASE_VARIABLE = "RUNNER_TEAM_LEASE_S"
DEFAULT_LEASE_S = 30.0  # a dead machine's claims are adopted this long after its last beat
CONNECT_TIMEOUT_S = 10
_URL = re.compile(r"(postgres|postgresql)://", re.IGNORECASE)
T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS runner_budgets (
    name        text PRIMARY KEY,
    cap         numeric NOT NULL CHECK (cap >= 0),
    spent       numeric NOT NULL DEFAULT 0,
    reserved    numeric NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS runner_claims (
    key          text PRIMARY KEY,       -- the request's cache key: what was asked
    pipeline     text NOT NULL,
    target       text NOT NULL,          -- live | sandbox
    job_id       text NOT NULL,
    provider     text NOT NULL,          -- the account's name
    state        text NOT NULL,          -- runner.team.coordinator.ClaimState
    owner        text NOT NULL,          -- host:pid:token of the process holding it
    host         text NOT NULL,
    pid          integer NOT NULL,
    claimed_at   timestamptz NOT NULL,   -- when its owner took it
    lease_until  timestamptz NOT NULL,   -- adoptable by another machine after this
    task_id      text,
    adopted_from text,                   -- the owner it was adopted from
    budget       text REFERENCES runner_budgets (name),
    reserved     numeric NOT NULL DEFAULT 0,  -- held in `budget` while not settled
    credits      numeric,                -- what the provider billed (done)
    result       jsonb,                  -- the take (done): sha256, size, ext
    message      text,                   -- why it failed or is uncertain
    updated_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS runner_claims_open ON runner_claims (pipeline, target)
    WHERE state <> 'done';
CREATE INDEX IF NOT EXISTS runner_claims_reserving ON runner_claims (budget)
    WHERE state IN ('claimed', 'sending', 'submitted');
"""


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # held; nothing sent yet (waiting for the account's window)
    SENDING = "sending"  # the request is leaving or has left; its answer is not recorded
    SUBMITTED = "submitted"  # the provider gave a task id: anyone can collect it
    DONE = "done"  # the result is stored (and, with a remote cache, recorded there)
    FAILED = "failed"  # nothing to collect and nothing billed: a new claim may buy it
    UNCERTAIN = "uncertain"  # sent, answer lost: the provider may have created (billed) it

    @property
    def open(self) -> bool:
        return self in (ClaimState.CLAIMED, ClaimState.SENDING, ClaimState.SUBMITTED)


@dataclass(frozen=True, slots=True)
class Claim:
    """A row of the ledger, as a run or `runner status` sees it."""

    key: str
    pipeline: str
    target: str
    job_id: str
    provider: str
    state: ClaimState
    owner: str
    host: str
    pid: int
    claimed_at: datetime
    lease_until: datetime
    expired: bool  # by the server's clock, when the row was read
    task_id: str | None
    adopted_from: str | None
    budget: str | None
    reserved: float
    credits: float | None
    result: dict[str, Any] | None
    message: str | None
    updated_at: datetime
    lease_left_s: float  # by the server's clock; negative: run out that long ago

    @property
    def holder(self) -> str:
        return f"{self.host} (pid {self.pid})"

    @property
    def previous_holder(self) -> str:
        """Whom an adopted claim was taken from, as `holder` says it."""
        owner = (self.adopted_from or "").rsplit(":", 2)  # host:pid:token
        host, pid = (owner[0], owner[1]) if len(owner) == 3 else ("", "")
        return f"{host} (pid {pid})" if host and pid else "its machine"


@dataclass(frozen=True, slots=True)
class BudgetState:
    name: str
    cap: float
    spent: float
    reserved: float
    # The part of `reserved` held by claims whose machines are alive (lease running):
    # what may still settle below its worst case. The rest is held by requests whose
    # answers were lost or whose machines died: kept, as if spent, until someone decides.
    settling: float = 0.0

    def may_fit(self, worst: float) -> bool:
        """Whether `worst` could fit once every live reservation settled at nothing."""
        return self.spent + self.reserved - self.settling + worst <= self.cap + 1e-9

    @property
    def left(self) -> float:
        return self.cap - self.spent - self.reserved

    def describe(self) -> str:
        return (f"shared budget '{self.name}' {self.cap:g}: {self.spent:g} spent, "
                f"{self.reserved:g} reserved by requests in flight")


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """What a run asks for: a request key, for a job of a pipeline, maybe within a budget."""

    key: str
    pipeline: str
    target: str
    job_id: str
    provider: str
    budget: str | None = None
    worst: float | None = None  # the most the request can cost (reserved in `budget`)


class Verdict(StrEnum):
    WON = "won"  # this process holds the claim: build it
    ADOPTED = "adopted"  # its owner died after the provider answered: collect `task_id`
    HELD = "held"  # another live process holds it: wait for it
    DONE = "done"  # built elsewhere: take its result
    UNCERTAIN = "uncertain"  # its owner died while sending, or said so: a person decides
    BUDGET = "budget"  # the shared budget cannot take this request's worst case now


@dataclass(frozen=True, slots=True)
class ClaimAnswer:
    verdict: Verdict
    claim: Claim | None = None  # the row as it stands (after taking it, for WON/ADOPTED)
    budget: BudgetState | None = None  # BUDGET: the budget as it stood


def resolve_url(env: Mapping[str, str]) -> str | None:
    """RUNNER_COORDINATOR, checked to be a PostgreSQL URL; None when unset."""
    url = env.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    if not _URL.match(url):
        raise UsageError(f"{URL_VARIABLE}: expected postgresql://USER[:PASSWORD]@HOST[:PORT]/"
                         f"DATABASE, not {without_password(url)!r}")
    return url


def lease_s(env: Mapping[str, str]) -> float:
    """RUNNER_TEAM_LEASE_S: how long a silent machine keeps its claims and slots."""
    text = env.get(LEASE_VARIABLE, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.5 <= value <= 3600:
        raise UsageError(f"{LEASE_VARIABLE}: expected seconds between 0.5 and 3600, not {text!r}")
    return value


def owner_id() -> tuple[str, str, int]:
    """(owner, host, pid) of this process: a token keeps a restarted pid from being taken
    for the process that had it before."""
    host, pid = socket.gethostname(), os.getpid()
    return f"{host}:{pid}:{secrets.token_hex(4)}", host, pid


_COLUMNS = ("key, pipeline, target, job_id, provider, state, owner, host, pid, claimed_at, "
            "lease_until, lease_until <= clock_timestamp() AS expired, task_id, adopted_from, "
            "budget, reserved, credits, result, message, updated_at, "
            "extract(epoch FROM lease_until - clock_timestamp()) AS lease_left_s")


def _claim(row: Sequence[Any]) -> Claim:
    (key, pipeline, target, job_id, provider, state, owner, host, pid, claimed_at,
     lease_until, expired, task_id, adopted_from, budget, reserved, credits, result,
     message, updated_at, lease_left_s) = row
    return Claim(key, pipeline, target, job_id, provider, ClaimState(state), owner, host,
                 int(pid), claimed_at, lease_until, bool(expired), task_id, adopted_from,
                 budget, float(reserved), None if credits is None else float(credits),
                 result, message, updated_at, float(lease_left_s))


_BUDGET = """
SELECT b.name, b.cap, b.spent, b.reserved,
       (SELECT coalesce(sum(c.reserved), 0) FROM runner_claims c WHERE c.budget = b.name
        AND c.state IN ('claimed', 'sending', 'submitted') AND c.lease_until > clock_timestamp())
FROM runner_budgets b WHERE b.name = %s
"""


def _budget(row: Sequence[Any]) -> BudgetState:
    name, cap, spent, reserved, settling = row
    return BudgetState(name, float(cap), float(spent), float(reserved), float(settling))


class Coordinator:
    """One process's connection to the team's ledger (see the module docstring).

    `open()` connects and creates the tables if they are missing; a heartbeat renews
    the leases of every claim this process holds until `close()`, which lets go of
    the claims still open (their tasks can be collected at once by another run).
    """

    def __init__(self, url: str, *, lease_s: float = DEFAULT_LEASE_S,
                 pool_size: int = 4) -> None:
        self.url = url
        self.where = without_password(url)
        self.lease_s = lease_s
        self.owner, self.host, self.pid = owner_id()
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self.heartbeat_error: str | None = None  # the last renewal that failed, if any

    # --- life ----------------------------------------------------------------
    async def open(self) -> None:
        from psycopg_pool import AsyncConnectionPool

        async with self._errors("connect to"):
            # One plain connection first: its error (refused, wrong password, no such
            # database) is the one a person needs, where a pool would only time out.
            conn = await self._connect()
            try:
                await self._create_schema(conn)
            finally:
                await conn.close()
            self._pool = AsyncConnectionPool(
                self.url, min_size=1, max_size=self._pool_size, open=False,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S},
                name="runner-coordinator")
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        self._heartbeat = asyncio.create_task(self._beat(), name="runner-coordinator-heartbeat")

    async def close(self) -> None:
        """Stop the heartbeat and let go of this process's open claims: a task it
        recorded can be collected by the next run at once, not after the lease."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._pool is None:
            return
        try:
            await self._transaction(self._let_go)
        except CoordinatorError:
            pass  # the leases run out by themselves
        finally:
            await self._pool.close()
            self._pool = None

    async def _connect(self) -> AsyncConnection[Any]:
        from psycopg import AsyncConnection

        return await AsyncConnection.connect(self.url, autocommit=True,
                                             connect_timeout=CONNECT_TIMEOUT_S)

    @staticmethod
    async def _create_schema(conn: AsyncConnection[Any]) -> None:
        async with conn.transaction():
            # Machines starting together would race on the catalogue: one at a time.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('runner_schema'))")
            await conn.execute(SCHEMA)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.renew()
                self.heartbeat_error = None
            except CoordinatorError as error:
                # Not fatal here: a claim whose lease ran out is noticed where it is used
                # (`sending` refuses to send for a claim this process no longer holds).
                self.heartbeat_error = str(error)

    async def renew(self) -> int:
        """Extend the lease of every open claim this process holds; how many."""
        async def renew(conn: AsyncConnection[Any]) -> int:
            cur = await conn.execute(
                "UPDATE runner_claims SET lease_until = clock_timestamp() + %s * interval "
                "'1 second' WHERE owner = %s AND state IN ('claimed', 'sending', 'submitted')",
                (self.lease_s, self.owner))
            return cur.rowcount
        return await self._transaction(renew)

    async def _let_go(self, conn: AsyncConnection[Any]) -> None:
        await conn.execute(
            "UPDATE runner_claims SET lease_until = clock_timestamp(), updated_at = "
            "clock_timestamp() WHERE owner = %s AND state = 'submitted'", (self.owner,))
        cur = await conn.execute(
            "DELETE FROM runner_claims WHERE owner = %s AND state = 'claimed' "
            "RETURNING budget, reserved", (self.owner,))
        for budget, reserved in await cur.fetchall():
            await self._give_back(conn, budget, float(reserved))

    # --- errors and transactions --------------------------------------------
    @contextlib.asynccontextmanager
    async def _errors(self, doing: str) -> AsyncIterator[None]:
        """psycopg's errors, translated once: what failed, where, and what to check."""
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            yield
        except psycopg.OperationalError as error:
            raise CoordinatorError(f"the team's coordinator {self.where}: cannot {doing} it: "
                                   f"{_first_line(error)}; check {URL_VARIABLE} and that the "
                                   "server is up") from error
        except PoolTimeout as error:
            raise CoordinatorError(f"the team's coordinator {self.where}: no connection within "
                                   f"{CONNECT_TIMEOUT_S} s ({_first_line(error)})") from error
        except psycopg.Error as error:
            raise CoordinatorError(f"the team's coordinator {self.where}: {doing}: "
                                   f"{_first_line(error)}") from error

    async def _transaction(self, work: Callable[[AsyncConnection[Any]], Awaitable[T]],
                           doing: str = "use") -> T:
        """`work` in one transaction, tried again when PostgreSQL chose it as a
        deadlock's victim (two adopters taking claims of different budgets)."""
        from psycopg import errors

        if self._pool is None:
            raise CoordinatorError(f"the team's coordinator {self.where} is not open")
        for attempt in range(5):
            try:
                async with self._errors(doing), self._pool.connection() as conn, \
                        conn.transaction():
                    return await work(conn)
            except CoordinatorError as error:
                retry = isinstance(error.__cause__, (errors.DeadlockDetected,
                                                     errors.SerializationFailure))
                if not retry or attempt == 4:
                    raise
                await asyncio.sleep(0.01 * 2 ** attempt)
        raise AssertionError("unreachable")

    # --- claims ----------------------------------------------------------------
    async def claim(self, ask: ClaimRequest, *, take_over_uncertain: bool = False
                    ) -> ClaimAnswer:
        """Claim `ask.key` for this process (see the module docstring for the verdicts).

        `take_over_uncertain`: a person decided (`--resubmit-uncertain`, `--adopt-task`)
        that an uncertain claim may be taken; its reservation is kept as spent.
        """
        if ask.budget is not None and ask.worst is None:
            raise ValueError("a claim within a budget needs its worst case")

        async def claim(conn: AsyncConnection[Any]) -> ClaimAnswer:
            while True:
                cur = await conn.execute(
                    "INSERT INTO runner_claims (key, pipeline, target, job_id, provider, state, "
                    "owner, host, pid, claimed_at, lease_until, budget, reserved, updated_at) "
                    "VALUES (%s, %s, %s, %s, %s, 'claimed', %s, %s, %s, clock_timestamp(), "
                    "clock_timestamp() + %s * interval '1 second', %s, 0, clock_timestamp()) "
                    "ON CONFLICT (key) DO NOTHING RETURNING key",
                    (ask.key, ask.pipeline, ask.target, ask.job_id, ask.provider, self.owner,
                     self.host, self.pid, self.lease_s, ask.budget))
                if await cur.fetchone() is not None:
                    return await self._reserve_or_undo(conn, ask, ClaimAnswer(Verdict.WON))
                cur = await conn.execute(
                    f"SELECT {_COLUMNS} FROM runner_claims WHERE key = %s FOR UPDATE",
                    (ask.key,))
                row = await cur.fetchone()
                if row is None:
                    continue  # deleted since the INSERT met it: insert again
                return await self._decide(conn, ask, _claim(row), take_over_uncertain)

        try:
            return await self._transaction(claim, "claim a request in")
        except _Undo as undo:  # the budget could not take it: nothing was claimed
            assert undo.answer is not None
            return undo.answer

    async def _decide(self, conn: AsyncConnection[Any], ask: ClaimRequest, found: Claim,
                      take_over_uncertain: bool) -> ClaimAnswer:
        state = found.state
        if state is ClaimState.DONE:
            return ClaimAnswer(Verdict.DONE, found)
        if state.open and found.owner == self.owner:
            return ClaimAnswer(Verdict.WON, found)  # this process holds it already
        if state.open and not found.expired:
            return ClaimAnswer(Verdict.HELD, found)
        if state is ClaimState.SUBMITTED:
            # Its owner stopped beating after the provider answered: collect that task.
            # The reservation travels with the claim and is settled when it is done.
            cur = await conn.execute(
                f"UPDATE runner_claims SET owner = %s, host = %s, pid = %s, lease_until = "
                f"clock_timestamp() + %s * interval '1 second', adopted_from = owner, "
                f"updated_at = clock_timestamp() WHERE key = %s RETURNING {_COLUMNS}",
                (self.owner, self.host, self.pid, self.lease_s, ask.key))
            row = await cur.fetchone()
            assert row is not None  # locked FOR UPDATE
            return ClaimAnswer(Verdict.ADOPTED, _claim(row))
        if state in (ClaimState.SENDING, ClaimState.UNCERTAIN) and not take_over_uncertain:
            return ClaimAnswer(Verdict.UNCERTAIN, found)
        # Taken afresh: failed (nothing billed), claimed by a process that died before
        # sending (nothing billed), or uncertain and a person said to send it again (the
        # old request may have been billed: its reservation is spent, not given back).
        if found.budget is not None and found.reserved:
            if state is ClaimState.CLAIMED:
                await self._give_back(conn, found.budget, found.reserved)
            else:
                await self._spend(conn, found.budget, found.reserved, None)
        await conn.execute(
            "UPDATE runner_claims SET pipeline = %s, target = %s, job_id = %s, provider = %s, "
            "state = 'claimed', owner = %s, host = %s, pid = %s, claimed_at = clock_timestamp(), "
            "lease_until = clock_timestamp() + %s * interval '1 second', task_id = NULL, "
            "adopted_from = NULL, budget = %s, reserved = 0, credits = NULL, result = NULL, "
            "message = NULL, updated_at = clock_timestamp() WHERE key = %s",
            (ask.pipeline, ask.target, ask.job_id, ask.provider, self.owner, self.host,
             self.pid, self.lease_s, ask.budget, ask.key))
        return await self._reserve_or_undo(conn, ask, ClaimAnswer(Verdict.WON))

    async def _reserve_or_undo(self, conn: AsyncConnection[Any], ask: ClaimRequest,
                               won: ClaimAnswer) -> ClaimAnswer:
        """Reserve the worst case in the claim's budget, in the claim's transaction; when
        it does not fit, the whole transaction is undone (the claim is not taken)."""
        if ask.budget is not None:
            assert ask.worst is not None
            cur = await conn.execute(
                "UPDATE runner_budgets SET reserved = reserved + %s, updated_at = "
                "clock_timestamp() WHERE name = %s AND spent + reserved + %s <= cap "
                "RETURNING name", (ask.worst, ask.budget, ask.worst))
            if await cur.fetchone() is None:
                state = await self._budget_state(conn, ask.budget)
                raise _Undo(ClaimAnswer(Verdict.BUDGET, budget=state))
            await conn.execute("UPDATE runner_claims SET reserved = %s WHERE key = %s",
                               (ask.worst, ask.key))
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM runner_claims WHERE key = %s",
                                 (ask.key,))
        row = await cur.fetchone()
        assert row is not None
        return ClaimAnswer(won.verdict, _claim(row))

    async def sending(self, key: str) -> bool:
        """Mark this process's claim `sending`, before its request leaves. False when
        this process no longer holds it (its lease ran out and another took it): then
        the request must not be sent."""
        async def mark(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE runner_claims SET state = 'sending', task_id = NULL, lease_until = "
                "clock_timestamp() + %s * interval '1 second', updated_at = clock_timestamp() "
                "WHERE key = %s AND owner = %s AND state IN ('claimed', 'sending', 'submitted') "
                "RETURNING key", (self.lease_s, key, self.owner))
            return await cur.fetchone() is not None
        return await self._transaction(mark, "record a request in")

    async def submitted(self, key: str, task_id: str) -> bool:
        """Record the task id the provider gave: from now on any machine can collect it."""
        async def mark(conn: AsyncConnection[Any]) -> bool:
            cur = await conn.execute(
                "UPDATE runner_claims SET state = 'submitted', task_id = %s, updated_at = "
                "clock_timestamp() WHERE key = %s AND owner = %s AND state <> 'done' "
                "RETURNING key", (task_id, key, self.owner))
            return await cur.fetchone() is not None
        return await self._transaction(mark, "record a task id in")

    async def done(self, key: str, result: Mapping[str, Any], credits: float | None) -> None:
        """The result is stored: settle the claim's reservation to what was billed (the
        reservation itself when the provider did not say). Whoever finishes a claim
        first settles it; a second finisher (an adopter racing a slow owner) changes
        nothing."""
        async def finish(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(
                "SELECT budget, reserved FROM runner_claims WHERE key = %s AND state <> 'done' "
                "FOR UPDATE", (key,))
            row = await cur.fetchone()
            if row is None:
                return
            budget, reserved = row
            await conn.execute(
                "UPDATE runner_claims SET state = 'done', result = %s, credits = %s, "
                "reserved = 0, message = NULL, updated_at = clock_timestamp() WHERE key = %s",
                (json.dumps(dict(result)), credits, key))
            if budget is not None:
                await self._spend(conn, budget, float(reserved), credits)
        await self._transaction(finish, "record a result in")

    async def failed(self, key: str, message: str, *, billed: bool | None) -> None:
        """The claim ends without a result. `billed` False: nothing was billed (refused,
        generation failed, never sent): the reservation is given back and a later claim
        may buy it; None: it may have been (answer lost): `uncertain`, the reservation
        kept; True: billed without a result: the reservation is spent."""
        async def end(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(
                "SELECT budget, reserved FROM runner_claims WHERE key = %s AND owner = %s "
                "AND state <> 'done' FOR UPDATE", (key, self.owner))
            row = await cur.fetchone()
            if row is None:
                return
            budget, reserved = row[0], float(row[1])
            state = ClaimState.UNCERTAIN if billed is None else ClaimState.FAILED
            await conn.execute(
                "UPDATE runner_claims SET state = %s, message = %s, reserved = %s, "
                "lease_until = clock_timestamp(), updated_at = clock_timestamp() WHERE key = %s",
                (state.value, message[:2000], reserved if billed is None else 0, key))
            if budget is not None and billed is not None:
                if billed:
                    await self._spend(conn, budget, reserved, None)
                else:
                    await self._give_back(conn, budget, reserved)
        await self._transaction(end, "record a failure in")

    async def release(self, key: str) -> None:
        """Nothing was sent for this claim (interrupted, stopped): forget it, give its
        reservation back; a machine waiting for it claims it next."""
        async def release(conn: AsyncConnection[Any]) -> None:
            cur = await conn.execute(
                "DELETE FROM runner_claims WHERE key = %s AND owner = %s AND state = 'claimed' "
                "RETURNING budget, reserved", (key, self.owner))
            row = await cur.fetchone()
            if row is not None and row[0] is not None:
                await self._give_back(conn, row[0], float(row[1]))
            # A claim already sent keeps its state: its lease lets another collect it.
        await self._transaction(release, "release a claim in")

    async def let_go(self, key: str) -> None:
        """This process will not collect the claim's task after all (its download failed,
        the run stops): another machine may adopt it now, not after the lease."""
        async def let_go(conn: AsyncConnection[Any]) -> None:
            await conn.execute("UPDATE runner_claims SET lease_until = clock_timestamp(), "
                               "updated_at = clock_timestamp() WHERE key = %s AND owner = %s "
                               "AND state = 'submitted'", (key, self.owner))
        await self._transaction(let_go, "let go of a claim in")

    async def forget(self, key: str, task_id: str | None) -> None:
        """A finished claim whose result can no longer be had (its task is gone at the
        provider, and no remote cache holds it): forget it, so that the next run may
        buy the request again. Only if it still names that task."""
        async def forget(conn: AsyncConnection[Any]) -> None:
            await conn.execute("DELETE FROM runner_claims WHERE key = %s AND state = 'done' "
                               "AND task_id IS NOT DISTINCT FROM %s", (key, task_id))
        await self._transaction(forget, "forget a claim in")

    async def look(self, keys: Sequence[str]) -> dict[str, Claim]:
        """The claims of these keys as they stand (one query for any number of keys)."""
        async def look(conn: AsyncConnection[Any]) -> dict[str, Claim]:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM runner_claims WHERE key = ANY(%s)", (list(keys),))
            return {row[0]: _claim(row) for row in await cur.fetchall()}
        return await self._transaction(look, "read claims from")

    async def open_claims(self, pipeline: str, target: str | None = None) -> list[Claim]:
        """Every claim of a pipeline that is not done: who holds what, since when."""
        async def open_claims(conn: AsyncConnection[Any]) -> list[Claim]:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM runner_claims WHERE pipeline = %s AND state <> 'done' "
                "AND (%s::text IS NULL OR target = %s) ORDER BY claimed_at, job_id",
                (pipeline, target, target))
            return [_claim(row) for row in await cur.fetchall()]
        return await self._transaction(open_claims, "read claims from")

    # --- budgets ---------------------------------------------------------------
    async def set_budget(self, name: str, cap: float | None) -> tuple[BudgetState, float | None]:
        """Create the budget with `cap`, or set an existing one's cap to it (`cap` None:
        join it as it is). Returns the budget and its previous cap when that changed."""
        async def set_budget(conn: AsyncConnection[Any]) -> tuple[BudgetState, float | None]:
            cur = await conn.execute(
                "SELECT name FROM runner_budgets WHERE name = %s FOR UPDATE", (name,))
            if await cur.fetchone() is None:
                if cap is None:
                    raise _Undo(None)
                await conn.execute("INSERT INTO runner_budgets (name, cap) VALUES (%s, %s) "
                                   "ON CONFLICT (name) DO NOTHING", (name, cap))
                return await self._budget_state(conn, name), None
            before = await self._budget_state(conn, name)
            if cap is None or abs(before.cap - cap) < 1e-9:
                return before, None
            await conn.execute("UPDATE runner_budgets SET cap = %s, updated_at = "
                               "clock_timestamp() WHERE name = %s", (cap, name))
            return await self._budget_state(conn, name), before.cap

        try:
            return await self._transaction(set_budget, "set a budget in")
        except _Undo:
            raise UsageError(f"--budget {name}: no such shared budget in {self.where}; give "
                             f"its cap once to create it: --budget {name}=CAP") from None

    async def budget(self, name: str) -> BudgetState | None:
        async def read(conn: AsyncConnection[Any]) -> BudgetState | None:
            cur = await conn.execute(_BUDGET, (name,))
            row = await cur.fetchone()
            return None if row is None else _budget(row)
        return await self._transaction(read, "read a budget from")

    async def _budget_state(self, conn: AsyncConnection[Any], name: str) -> BudgetState:
        cur = await conn.execute(_BUDGET, (name,))
        row = await cur.fetchone()
        if row is None:
            raise CoordinatorError(f"the team's coordinator {self.where}: the shared budget "
                                   f"'{name}' is gone")
        return _budget(row)

    @staticmethod
    async def _give_back(conn: AsyncConnection[Any], budget: str, amount: float) -> None:
        await conn.execute("UPDATE runner_budgets SET reserved = greatest(0, reserved - %s), "
                           "updated_at = clock_timestamp() WHERE name = %s", (amount, budget))

    @staticmethod
    async def _spend(conn: AsyncConnection[Any], budget: str, reserved: float,
                     actual: float | None) -> None:
        await conn.execute(
            "UPDATE runner_budgets SET reserved = greatest(0, reserved - %s), spent = spent + "
            "%s, updated_at = clock_timestamp() WHERE name = %s",
            (reserved, reserved if actual is None else actual, budget))


class _Undo(Exception):
    """Leaves a transaction with its changes undone, carrying the answer to give."""

    def __init__(self, answer: ClaimAnswer | None) -> None:
        super().__init__("undo")
        self.answer = answer


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return without_password(text[0]) if text else type(error).__name__
