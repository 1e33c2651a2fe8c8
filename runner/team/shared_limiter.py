"""Each account's rate window and in-flight cap, shared by every machine (`RUNNER_LIMITER`).

Machines that use one provider account are one client of it: the provider counts
their requests together. Each machine keeps its own limiter (runner/limits/:
FIFO queues, adaptation to 429s), and before a request leaves it also takes a
slot in the account's shared window on a Redis (or Valkey) server:

    runner:{ACCOUNT}:submit     sorted set: one member per request, scored with the
                                time (ms, the server's) until which it counts
    runner:{ACCOUNT}:inflight   sorted set: one member per task in flight, scored
                                with the end of its lease
    runner:{ACCOUNT}:cooldown   present while every machine holds back (a 429)

The window is an exact sliding log, counted as the local one is (window.py): a
slot is taken before the request is sent and counts while it is unanswered,
then for `window_s` after its answer. So the provider's count in any of its
windows is bounded by the limit whatever the network delays. Unanswered slots
and in-flight slots are leases: this process's heartbeat renews them, and when
the process dies they run out (`lease_s`, plus the window for a request that may
have been counted). A 429 seen by any machine sets the cool-down, which every
machine's next slot waits out.

Every decision is one Lua script, run atomically by the server, and every time
in it is the server's (`TIME`): the machines' clocks, which may disagree, never
decide whether a slot is free. ACCOUNT is a digest of the account's type, base
URL and API key: the key itself never reaches the server, and two manifests
that name the same key share its limit. The braces make every key of one
account hash to one slot of a Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runner.catalog.accounts import Limits, ProviderAccount
from runner.engine.limits import AccountLimiter, BaseSlot, InFlight, SlidingWindow, Slot
from runner.errors import (
    SharedLimiterError,
    without_password,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

URL_VARIABLE = "RUNNER_LIMITER"
_URL = re.compile(r"(redis|rediss|valkey|valkeys|unix)://", re.IGNORECASE)
MAX_POLL_S = 0.025  # the longest a waiting machine goes without asking again
TIMEOUT_S = 5.0  # one command; a server that does not answer in this is unusable
POOL_SIZE = 16  # connections to the server per process
UNLIMITED = 1 << 30  # the capacity of a window that only carries cool-downs

# Time in milliseconds from the server's clock; all arithmetic in integers.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: a sorted set, and optionally its cool-down key. ARGV: capacity, hold_ms (how
# long a new slot counts without a renewal), members... (the waiting jobs, in order).
# Takes a slot for as many of them as there is room for; returns {taken, ms}: how
# many, and when to ask again for the others (exact for a cool-down or an answered
# slot's expiry; a lease may be given back sooner).
ACQUIRE = _NOW + """
if #KEYS > 1 then
  local cool = redis.call('PTTL', KEYS[2])
  if cool > 0 then return {0, cool} end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local capacity = tonumber(ARGV[1])
local hold = tonumber(ARGV[2])
local wanted = #ARGV - 2
local n = redis.call('ZCARD', KEYS[1])
local taken = math.max(0, math.min(capacity - n, wanted))
for i = 1, taken do
  redis.call('ZADD', KEYS[1], now + hold, ARGV[2 + i])
end
if taken > 0 then redis.call('PEXPIRE', KEYS[1], hold + 1000) end
if taken == wanted then return {taken, 0} end
local first = n + taken - capacity
local nth = redis.call('ZRANGE', KEYS[1], first, first, 'WITHSCORES')
return {taken, tonumber(nth[2]) - now}
"""

# KEYS: window, cooldown. ARGV: cool_ms (> 0: a 429 was met; every machine holds back
# this long), then for each slot resolved: member, count_ms (-1: never sent, forget
# it), age_ms (how long ago its answer came, by the machine's monotonic clock: a
# duration of a few milliseconds, never a time of day). An answered slot counts until
# count_ms after its answer, the server's clock placing the answer.
RESOLVE = _NOW + """
for i = 2, #ARGV, 3 do
  local count = tonumber(ARGV[i + 1])
  if count < 0 then
    redis.call('ZREM', KEYS[1], ARGV[i])
  else
    local age = math.min(math.max(tonumber(ARGV[i + 2]), 0), count)
    redis.call('ZADD', KEYS[1], 'XX', now - age + count, ARGV[i])
  end
end
local cool = tonumber(ARGV[1])
if cool > 0 and redis.call('PTTL', KEYS[2]) < cool then
  redis.call('SET', KEYS[2], '1', 'PX', cool)
end
return 1
"""

# KEYS: a sorted set. ARGV: hold_ms, members...: those still there count hold_ms more
# from now (a lease renewed). A member already gone is not brought back.
RENEW = _NOW + """
local hold = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + hold, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], hold + 1000)
return renewed
"""


def resolve_url(env: Mapping[str, str]) -> str | None:
    """RUNNER_LIMITER, checked to be a Redis URL; None when unset."""
    url = env.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    if not _URL.match(url):
        raise SharedLimiterUsage(f"{URL_VARIABLE}: expected redis://[:PASSWORD@]HOST[:PORT]"
                                 f"[/DB] (or rediss://, unix://), not {without_password(url)!r}")
    return url


class SharedLimiterUsage(ValueError):
    """A malformed RUNNER_LIMITER (the caller turns it into a UsageError)."""


def account_id(account: ProviderAccount, api_key: str) -> str:
    """Who the provider counts together: the account's type, base URL and key, digested."""
    text = f"{account.type}\n{account.base_url.rstrip('/')}\n{api_key}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class _Held:
    """Members this process holds in one sorted set, and how long each renewal lasts."""

    hold_ms: int
    members: set[str] = field(default_factory=set)


class SharedLimiter:
    """This process's connection to the shared limiter: scripts, leases, heartbeat."""

    def __init__(self, url: str, *, lease_s: float) -> None:
        self.url = url
        self.where = without_password(url)
        self.lease_s = lease_s
        self._token = secrets.token_hex(6)  # members are unique across processes
        self._serial = 0
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._held: dict[str, _Held] = {}
        self._resolved: dict[tuple[str, str], list[tuple[str, int, int, float]]] = {}
        self._released: dict[str, list[str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and check the server answers (a wrong password stops the run here)."""
        from redis.asyncio import BlockingConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        async with self._errors("connect to"):
            # A bounded pool that makes a burst of jobs wait for a connection, rather
            # than open one each (or fail with "Too many connections").
            pool = BlockingConnectionPool.from_url(
                self.url, max_connections=POOL_SIZE, timeout=TIMEOUT_S,
                socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                retry_on_error=[RedisConnectionError, RedisTimeoutError])
            self._client = Redis.from_pool(pool)
            await self._client.ping()
            for name, source in (("acquire", ACQUIRE), ("resolve", RESOLVE), ("renew", RENEW)):
                self._scripts[name] = self._client.register_script(source)
        self._heartbeat = asyncio.create_task(self._beat(), name="runner-limiter-heartbeat")

    async def close(self) -> None:
        """Stop renewing; give back what this process still holds; disconnect."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):  # leases run out by themselves anyway
            for key, held in self._held.items():
                if held.members and key.endswith(":inflight"):
                    await client.zrem(key, *held.members)
        await client.aclose()

    def account(self, account: ProviderAccount, api_key: str) -> SharedAccount:
        return SharedAccount(self, f"runner:{{{account_id(account, api_key)}}}")

    def member(self) -> str:
        self._serial += 1
        return f"{self._token}:{self._serial}"

    # --- server calls ------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _errors(self, doing: str) -> AsyncIterator[None]:
        from redis.exceptions import RedisError

        try:
            yield
        except RedisError as error:
            text = without_password(str(error).strip().splitlines()[0] if str(error).strip()
                          else type(error).__name__)
            raise SharedLimiterError(f"the team's shared limiter {self.where}: cannot {doing} "
                                     f"it: {text}; check {URL_VARIABLE} and that the server "
                                     "is up") from error

    async def call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        if self._client is None:
            raise SharedLimiterError(f"the team's shared limiter {self.where} is not open")
        async with self._errors("use"):
            return await self._scripts[script](keys=keys, args=args)

    def hold(self, key: str, member: str, hold_ms: int) -> None:
        self._held.setdefault(key, _Held(hold_ms)).members.add(member)

    def drop(self, key: str, member: str) -> None:
        held = self._held.get(key)
        if held is not None:
            held.members.discard(member)

    def answered(self, key: str, cooldown: str, member: str, count_ms: int,
                 cool_ms: int) -> None:
        """A window slot was resolved (count_ms -1: never sent). Sent to the server with
        the others resolved meanwhile, in one round trip, soon."""
        self._resolved.setdefault((key, cooldown), []).append(
            (member, count_ms, cool_ms, time.monotonic()))
        self._flush_soon()

    def released(self, key: str, member: str) -> None:
        """A lease was given back (its task ended). Sent with the others, soon."""
        self._released.setdefault(key, []).append(member)
        self._flush_soon()

    def _flush_soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Everything resolved or released since the last flush, in one pipeline: a burst
        of answers costs one round trip, and the calls that take slots do not queue
        behind a hundred small ones for the pool's connections."""
        while (self._resolved or self._released) and self._client is not None:
            resolved, self._resolved = self._resolved, {}
            released, self._released = self._released, {}
            now_s = time.monotonic()  # ages are taken as the updates leave
            try:
                async with self._errors("use"):
                    pipe = self._client.pipeline(transaction=False)
                    for (key, cooldown), slots in resolved.items():
                        args: list[Any] = [max(cool for _, _, cool, _ in slots)]
                        for member, count_ms, _, answered_s in slots:
                            args += [member, count_ms, round((now_s - answered_s) * 1000)]
                        await self._scripts["resolve"](keys=[key, cooldown], args=args,
                                                       client=pipe)
                    for key, members in released.items():
                        await pipe.zrem(key, *members)
                    await pipe.execute()
            except SharedLimiterError:
                # Those slots stay counted until their leases run out: safe, only slower.
                continue

    async def _quietly(self, work: Awaitable[Any]) -> Any:
        try:
            return await work
        except SharedLimiterError:
            return None

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for key, held in list(self._held.items()):
                if held.members:
                    await self._quietly(self.call("renew", [key],
                                                  [held.hold_ms, *held.members]))


class SharedAccount:
    """One account's keys on the shared limiter."""

    def __init__(self, limiter: SharedLimiter, prefix: str) -> None:
        self.limiter = limiter
        self.prefix = prefix
        self.cooldown = f"{prefix}:cooldown"

    def window(self, name: str, limit: int, window_s: float) -> SharedWindowKey:
        return SharedWindowKey(self, f"{self.prefix}:{name}", limit, window_s)

    def leases(self, capacity: int) -> SharedLeases:
        return SharedLeases(self, f"{self.prefix}:inflight", capacity)


class _SharedSlots:
    """Slots of one sorted set on the server, taken for this process's waiting jobs.

    Jobs queue here (FIFO); one task asks the server for all of them at once (one
    round trip takes as many slots as there is room for), hands the slots out in
    order, and when some are left waiting, asks again when the server said room may
    be made, or `MAX_POLL_S` later. A burst goes through in one round trip, and a
    full window costs one query per interval per process, whatever the number of
    jobs waiting.
    """

    BATCH = 256  # jobs asked for in one round trip

    def __init__(self, account: SharedAccount, key: str, hold_ms: int,
                 cooldown: str | None) -> None:
        self.account = account
        self.key = key
        self.hold_ms = hold_ms
        self._keys = [key] if cooldown is None else [key, cooldown]
        self._capacity = 1
        self._waiting: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._asker: asyncio.Task[None] | None = None

    async def _pause(self, wait_ms: int) -> None:
        await asyncio.sleep(min(max(wait_ms, 1) / 1000, MAX_POLL_S))

    def _give_back(self, member: str) -> None:
        raise NotImplementedError

    async def take(self) -> str:
        """Wait (FIFO) until the server lets one more go; the member that holds it."""
        limiter = self.account.limiter
        member = limiter.member()
        given: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((member, given))
        if self._asker is None or self._asker.done():
            self._asker = asyncio.create_task(self._ask())
        try:
            await given
        except asyncio.CancelledError:
            if given.done() and not given.cancelled():
                self._give_back(member)  # given, then cancelled before it could be used
            raise
        return member

    async def _ask(self) -> None:
        limiter = self.account.limiter
        waiting = self._waiting
        while waiting:
            while waiting and waiting[0][1].done():  # cancelled while waiting
                waiting.popleft()
            batch = [member for member, given in list(waiting)[:self.BATCH]
                     if not given.done()]
            if not batch:
                continue
            try:
                taken, wait_ms = await limiter.call(
                    "acquire", self._keys, [self._capacity, self.hold_ms, *batch])
            except SharedLimiterError as error:
                for _, given in waiting:
                    if not given.done():
                        given.set_exception(error)
                waiting.clear()
                return
            asked, handed = set(batch), 0
            while handed < int(taken) and waiting:
                member, given = waiting.popleft()
                if member not in asked:
                    continue  # joined after the batch was made: still waiting
                handed += 1
                if given.done():  # cancelled meanwhile: its slot goes back at once
                    self._give_back(member)
                    continue
                limiter.hold(self.key, member, self.hold_ms)
                given.set_result(None)
            if waiting and int(taken) < len(batch):
                await self._pause(max(1, int(wait_ms)))


class SharedWindowKey(_SharedSlots):
    """One shared sliding window: `take()` a slot, then `resolve` it once."""

    def __init__(self, account: SharedAccount, key: str, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_ms = max(1, round(window_s * 1000))
        # An unanswered slot counts while it is renewed, and for a lease and a window
        # after its process stops renewing it: the provider may have counted it just
        # before the process died.
        super().__init__(account, key, self.window_ms + round(account.limiter.lease_s * 1000),
                         account.cooldown)
        self._capacity = limit

    def _give_back(self, member: str) -> None:
        self.resolve(member, sent=False)

    def resolve(self, member: str, *, sent: bool, cool_s: float = 0.0) -> None:
        limiter = self.account.limiter
        limiter.drop(self.key, member)
        limiter.answered(self.key, self.account.cooldown, member,
                         self.window_ms if sent else -1, round(cool_s * 1000))


class SharedLeases(_SharedSlots):
    """The account's in-flight cap, as leases every machine's heartbeat renews."""

    def __init__(self, account: SharedAccount, key: str, capacity: int) -> None:
        super().__init__(account, key, round(account.limiter.lease_s * 1000), None)
        self._capacity = self.capacity = capacity
        self._released = asyncio.Event()

    async def _pause(self, wait_ms: int) -> None:
        # Another machine's release is not announced: ask again soon, or at once when
        # a task of this process ends.
        self._released.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), min(wait_ms / 1000, MAX_POLL_S * 4))

    def _give_back(self, member: str) -> None:
        self.release(member)

    def release(self, member: str) -> None:
        limiter = self.account.limiter
        limiter.drop(self.key, member)
        limiter.released(self.key, member)
        self._released.set()


class SharedSlot(BaseSlot):
    """A request's slot in the local window and in the account's shared one: resolved
    once, as every `runner.engine.limits.BaseSlot` is."""

    __slots__ = ("_local", "_member", "_open", "_share_s", "_shared")

    def __init__(self, local: Slot, shared: SharedWindowKey, member: str,
                 share_s: float) -> None:
        self._local = local
        self._shared = shared
        self._member = member
        self._share_s = share_s  # one request's share of the window, for a cool-down
        self._open = True

    @property
    def epoch(self) -> int:
        return self._local.epoch

    def _close(self, *, sent: bool, cool_s: float = 0.0) -> bool:
        if not self._open:
            return False
        self._open = False
        self._shared.resolve(self._member, sent=sent, cool_s=cool_s)
        return True

    def answered(self) -> None:
        if self._close(sent=True):
            self._local.answered()

    def rate_limited(self, retry_after_s: float | None = None) -> None:
        # Every machine holds back: for as long as the provider said, else for one
        # request's share of the window (the provider freed nothing sooner on average).
        cool_s = retry_after_s if retry_after_s and retry_after_s > 0 else self._share_s
        if self._close(sent=True, cool_s=cool_s):
            self._local.rate_limited(retry_after_s)

    def concurrency_limited(self) -> None:
        if self._close(sent=True):
            self._local.concurrency_limited()

    def unsent(self) -> None:
        if self._close(sent=False):
            self._local.unsent()


class SharedWindow:
    """A local `SlidingWindow` and the account's shared window, taken in that order."""

    def __init__(self, local: SlidingWindow, shared: SharedWindowKey) -> None:
        self.local = local
        self.shared = shared

    async def acquire(self) -> SharedSlot:
        slot = await self.local.acquire()
        try:
            member = await self.shared.take()
        except BaseException:
            slot.unsent()
            raise
        # The window's limit, or (not published) the rate this machine has found so far.
        limit = self.shared.limit if self.shared.limit < UNLIMITED else \
            self.local.effective_limit or 1
        return SharedSlot(slot, self.shared, member, self.local.effective_window_s / limit)

    def __getattr__(self, name: str) -> Any:  # counters, effective_limit, pause, ...
        return getattr(self.local, name)


class SharedInFlight:
    """A local `InFlight` cap and a lease on the account's shared one."""

    def __init__(self, local: InFlight, shared: SharedLeases) -> None:
        self.local = local
        self.shared = shared
        # This process's leases, interchangeable; None for a permit held without one
        # (see `lent`): its holder's release gives nothing back to the server.
        self._members: list[str | None] = []

    async def __aenter__(self) -> None:
        await self.local.acquire()
        try:
            self._members.append(await self.shared.take())
        except BaseException:
            self.local.release(ok=False)
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        member = self._members.pop()
        if member is not None:
            self.shared.release(member)
        self.local.release(ok=exc is None)

    @contextlib.asynccontextmanager
    async def lent(self) -> AsyncIterator[None]:
        """As `InFlight.lent`: a job waiting to retry has nothing in flight, on this
        machine or in the account's shared cap, so both are given back for the block
        and taken again after it, local first (the order `__aenter__` takes them in).
        Cancelled on the way, the permit stays counted without a shared lease, so
        that its holder's release stays balanced and the shared cap is never passed."""
        member = self._members.pop()
        if member is not None:
            self.shared.release(member)
        try:
            async with self.local.lent():
                yield
        except BaseException:
            self._members.append(None)
            raise
        try:
            self._members.append(await self.shared.take())
        except BaseException:
            self._members.append(None)
            raise

    def __getattr__(self, name: str) -> Any:  # capacity, in_use, concurrency_limited, ...
        return getattr(self.local, name)


class SharedAccountLimiter(AccountLimiter):
    """An `AccountLimiter` whose submit window, poll window and in-flight cap are also
    the account's shared ones: what every machine using the account sends counts."""

    def __init__(self, limits: Limits, shared: SharedAccount) -> None:
        super().__init__(limits)
        local_submit, local_in_flight = self.submit, self.in_flight
        # An account with no published limit: each machine discovers the rate; the
        # shared window then only carries the cool-downs after a 429.
        limit = limits.requests_per_window if limits.requests_per_window > 0 else UNLIMITED
        self.submit = SharedWindow(local_submit, shared.window(  # type: ignore[assignment]
            "submit", limit, limits.window_s))
        self.in_flight = SharedInFlight(  # type: ignore[assignment]
            local_in_flight, shared.leases(limits.max_in_flight))
        # Status polls stay paced by each machine alone (`polls_per_s`, adapting to 429s):
        # the providers count only generation requests against their limit
        # (docs/providers.md, "Market API: rate limits"), and sharing polls would double
        # the server's round trips per job.
