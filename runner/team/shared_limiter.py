"""Each account's rate window and in-flight cap, shared by every machine (`RUNNER_LIMITER`).

Machines that use one provider account are one client of it: the provider counts
their requests together. Each machine keeps its own limiter (runner/limits/:
FIFO queues, adaptation to 429s), and before a request leaves it also takes a
slot in the account's shared window on a Redis (or Valkey) server:

    runner:{ACCOUNT}:submit     sorted set: one member per request, scored with the
                                time (ms, the server's) until which it counts
    runner:{ACCOUNT}:polls      the same for status polls, when they are limited
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
import functools
import hashlib
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from runner.accounts import Limits, ProviderAccount
from runner.errors import ConcurrencyLimited, RateLimited, SharedLimiterError, TransportError
from runner.limits import AccountLimiter, InFlight, SlidingWindow, Slot, poll_window

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

URL_VARIABLE = "RUNNER_LIMITER"
_URL = re.compile(r"(redis|rediss|valkey|valkeys|unix)://", re.IGNORECASE)
MAX_POLL_S = 0.025  # the longest a waiting machine goes without asking again
TIMEOUT_S = 5.0  # one command; a server that does not answer in this is unusable

# Time in milliseconds from the server's clock; all arithmetic in integers.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: window, cooldown. ARGV: limit, hold_ms (how long an unanswered slot counts
# without a renewal), member. Returns {1, 0} when the slot is taken, else {0, ms}:
# when to ask again (exact for a cool-down or an answered slot's expiry).
ACQUIRE_WINDOW = _NOW + """
local cool = redis.call('PTTL', KEYS[2])
if cool > 0 then return {0, cool} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  local hold = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + hold, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], hold + 1000)
  return {1, 0}
end
local nth = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return {0, tonumber(nth[2]) - now}
"""

# KEYS: window, cooldown. ARGV: member, count_ms (-1: never sent, forget it), cool_ms
# (> 0: a 429; every machine holds back this long). The answered slot counts for
# count_ms from now, by the server's clock.
RESOLVE_WINDOW = _NOW + """
local count = tonumber(ARGV[2])
if count < 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + count, ARGV[1])
local cool = tonumber(ARGV[3])
if cool > 0 and redis.call('PTTL', KEYS[2]) < cool then
  redis.call('SET', KEYS[2], '1', 'PX', cool)
end
return 1
"""

# KEYS: inflight. ARGV: capacity, lease_ms, member. {1, 0} or {0, ms until the first
# lease runs out} (a release by another machine may come sooner: ask again before).
ACQUIRE_LEASE = _NOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  local lease = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], lease + 1000)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(first[2]) - now}
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


def redact(url: str) -> str:
    """The URL as messages show it: never its password."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def resolve_url(env: Mapping[str, str]) -> str | None:
    """RUNNER_LIMITER, checked to be a Redis URL; None when unset."""
    url = env.get(URL_VARIABLE, "").strip()
    if not url:
        return None
    if not _URL.match(url):
        raise SharedLimiterUsage(f"{URL_VARIABLE}: expected redis://[:PASSWORD@]HOST[:PORT]"
                                 f"[/DB] (or rediss://, unix://), not {redact(url)!r}")
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
        self.where = redact(url)
        self.lease_s = lease_s
        self._token = secrets.token_hex(6)  # members are unique across processes
        self._serial = 0
        self._client: Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}
        self._held: dict[str, _Held] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Connect and check the server answers (a wrong password stops the run here)."""
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        async with self._errors("connect to"):
            self._client = Redis.from_url(
                self.url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                retry_on_error=[RedisConnectionError, RedisTimeoutError])
            await self._client.ping()
            for name, source in (("acquire_window", ACQUIRE_WINDOW),
                                 ("resolve_window", RESOLVE_WINDOW),
                                 ("acquire_lease", ACQUIRE_LEASE), ("renew", RENEW)):
                self._scripts[name] = self._client.register_script(source)
        self._heartbeat = asyncio.create_task(self._beat(), name="runner-limiter-heartbeat")

    async def close(self) -> None:
        """Stop renewing; give back what this process still holds; disconnect."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
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
            text = redact(str(error).strip().splitlines()[0] if str(error).strip()
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

    def later(self, script: str, keys: list[str], args: list[Any]) -> None:
        """Run a script without waiting for it (a slot resolved in synchronous code)."""
        self._in_background(self.call(script, keys, args))

    def forget_later(self, key: str, member: str) -> None:
        """Remove a lease without waiting (a task ended)."""
        async def forget() -> None:
            if self._client is not None:
                async with self._errors("use"):
                    await self._client.zrem(key, member)
        self._in_background(forget())

    def _in_background(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._quietly(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _quietly(work: Awaitable[Any]) -> Any:
        try:
            return await work
        except SharedLimiterError:
            # The slot stays counted until its lease runs out: safe, only slower.
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


class SharedWindowKey:
    """One shared sliding window: `take()` a slot, then resolve it once."""

    def __init__(self, account: SharedAccount, key: str, limit: int, window_s: float) -> None:
        self.account = account
        self.key = key
        self.limit = limit
        self.window_ms = max(1, round(window_s * 1000))
        # An unanswered slot counts while it is renewed, and for a lease and a window
        # after its process stops renewing it: the provider may have counted it just
        # before the process died.
        self.hold_ms = self.window_ms + round(account.limiter.lease_s * 1000)
        self._turn = asyncio.Lock()  # one waiter per process asks the server at a time

    async def take(self) -> str:
        """Wait until the account's window (and any cool-down) lets one more request go."""
        limiter = self.account.limiter
        async with self._turn:
            while True:
                member = limiter.member()
                call = asyncio.ensure_future(limiter.call(
                    "acquire_window", [self.key, self.account.cooldown],
                    [self.limit, self.hold_ms, member]))
                try:
                    taken, wait_ms = await asyncio.shield(call)
                except asyncio.CancelledError:
                    call.add_done_callback(functools.partial(self._undo, member=member))
                    raise
                if taken:
                    limiter.hold(self.key, member, self.hold_ms)
                    return member
                await asyncio.sleep(min(max(int(wait_ms), 1) / 1000, MAX_POLL_S))

    def _undo(self, done: asyncio.Future[Any], *, member: str) -> None:
        """A slot taken for a waiter that was cancelled meanwhile: give it back."""
        if not done.cancelled() and done.exception() is None and done.result()[0]:
            self.resolve(member, sent=False)

    def resolve(self, member: str, *, sent: bool, cool_s: float = 0.0) -> None:
        limiter = self.account.limiter
        limiter.drop(self.key, member)
        limiter.later("resolve_window", [self.key, self.account.cooldown],
                      [member, self.window_ms if sent else -1, round(cool_s * 1000)])


class SharedLeases:
    """The account's in-flight cap, as leases every machine's heartbeat renews."""

    def __init__(self, account: SharedAccount, key: str, capacity: int) -> None:
        self.account = account
        self.key = key
        self.capacity = capacity
        self.lease_ms = round(account.limiter.lease_s * 1000)
        self._turn = asyncio.Lock()
        self._released = asyncio.Event()

    async def take(self) -> str:
        limiter = self.account.limiter
        async with self._turn:
            while True:
                member = limiter.member()
                call = asyncio.ensure_future(limiter.call(
                    "acquire_lease", [self.key], [self.capacity, self.lease_ms, member]))
                try:
                    taken, wait_ms = await asyncio.shield(call)
                except asyncio.CancelledError:
                    call.add_done_callback(functools.partial(self._undo, member=member))
                    raise
                if taken:
                    limiter.hold(self.key, member, self.lease_ms)
                    return member
                # Another machine's release is not announced: ask again soon, or at
                # once when a task of this process ends.
                self._released.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(),
                                           min(max(int(wait_ms), 1) / 1000, MAX_POLL_S * 4))

    def _undo(self, done: asyncio.Future[Any], *, member: str) -> None:
        if not done.cancelled() and done.exception() is None and done.result()[0]:
            self.release(member)

    def release(self, member: str) -> None:
        limiter = self.account.limiter
        limiter.drop(self.key, member)
        limiter.forget_later(self.key, member)
        self._released.set()


class SharedSlot:
    """A request's slot in the local window and in the account's shared one: resolved
    once, like `runner.limits.Slot`, whose interface it has."""

    __slots__ = ("_local", "_member", "_open", "_shared")

    def __init__(self, local: Slot, shared: SharedWindowKey, member: str) -> None:
        self._local = local
        self._shared = shared
        self._member = member
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
        shared = self._shared
        cool_s = retry_after_s if retry_after_s and retry_after_s > 0 else \
            shared.window_ms / 1000 / max(1, shared.limit)
        if self._close(sent=True, cool_s=cool_s):
            self._local.rate_limited(retry_after_s)

    def concurrency_limited(self) -> None:
        if self._close(sent=True):
            self._local.concurrency_limited()

    def unsent(self) -> None:
        if self._close(sent=False):
            self._local.unsent()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        # As Slot.__exit__: how the block ended says how the request ended.
        if isinstance(exc, ConcurrencyLimited):
            self.concurrency_limited()
        elif isinstance(exc, RateLimited):
            self.rate_limited(exc.retry_after_s)
        elif isinstance(exc, TransportError) and not exc.request_sent:
            self.unsent()
        else:
            self.answered()


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
        return SharedSlot(slot, self.shared, member)

    def __getattr__(self, name: str) -> Any:  # counters, effective_limit, pause, ...
        return getattr(self.local, name)


class SharedInFlight:
    """A local `InFlight` cap and a lease on the account's shared one."""

    def __init__(self, local: InFlight, shared: SharedLeases) -> None:
        self.local = local
        self.shared = shared
        self._members: list[str] = []

    async def __aenter__(self) -> None:
        await self.local.acquire()
        try:
            self._members.append(await self.shared.take())
        except BaseException:
            self.local.release(ok=False)
            raise

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        # Any of this process's leases will do: they are interchangeable.
        self.shared.release(self._members.pop())
        self.local.release(ok=exc is None)

    def __getattr__(self, name: str) -> Any:  # capacity, in_use, concurrency_limited, ...
        return getattr(self.local, name)


class SharedAccountLimiter(AccountLimiter):
    """An `AccountLimiter` whose submit window, poll window and in-flight cap are also
    the account's shared ones: what every machine using the account sends counts."""

    def __init__(self, limits: Limits, shared: SharedAccount) -> None:
        super().__init__(limits)
        local_submit, local_in_flight, local_polls = self.submit, self.in_flight, self.polls
        if limits.requests_per_window > 0:
            self.submit = SharedWindow(local_submit, shared.window(  # type: ignore[assignment]
                "submit", limits.requests_per_window, limits.window_s))
        self.in_flight = SharedInFlight(  # type: ignore[assignment]
            local_in_flight, shared.leases(limits.max_in_flight))
        poll_limit, poll_window_s = poll_window(limits.polls_per_s)
        if poll_limit is not None:
            self.polls = SharedWindow(local_polls, shared.window(  # type: ignore[assignment]
                "polls", poll_limit, poll_window_s))
