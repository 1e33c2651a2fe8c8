"""What a running sandbox remembers: accounts, tasks, request ids and statistics.

Time is always `SandboxState.now()`: the configured clock plus an offset that
`POST /_sandbox/clock` can advance, so tests in another process move time too.
A task's state is a pure function of that time (no timers), which is why a test
that advances a fake clock sees the task finish without sleeping.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import secrets
from collections import Counter, deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from runner.sandbox.config import SandboxConfig


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


class Refusal(StrEnum):
    """Why an account may not start one more generation."""

    RATE = "rate"
    CONCURRENCY = "concurrency"
    CREDITS = "credits"


class TaskState(StrEnum):
    WAITING = "waiting"
    QUEUING = "queuing"
    GENERATING = "generating"
    SUCCESS = "success"
    FAIL = "fail"


@dataclass
class Account:
    """One key at one provider: kie and apikley keys are separate accounts."""

    provider: str
    spent: float = 0.0
    window: deque[float] = field(default_factory=deque)  # times of counted requests
    running: list[float] = field(default_factory=list)  # heap of task finish times
    in_flight: int = 0  # synchronous requests being answered


@dataclass
class Task:
    task_id: str
    provider: str
    account: Account
    model: str
    param: str  # the create request as a JSON string, reported back verbatim
    created_s: float
    latency_s: float
    cost: float
    input_hash: str
    fail: tuple[str, str] | None = None  # (failCode, failMsg) when generation fails
    result: dict[str, Any] | None = None  # what a successful task reports
    file_id: str | None = None
    callback_url: str | None = None
    empty_fail_fields: bool = False  # quirk market_fail_fields: "" where null would be

    @property
    def done_s(self) -> float:
        return self.created_s + self.latency_s

    def state(self, now: float) -> TaskState:
        if now >= self.done_s:
            return TaskState.FAIL if self.fail else TaskState.SUCCESS
        progress = (now - self.created_s) / self.latency_s
        if progress < 0.15:
            return TaskState.WAITING
        return TaskState.QUEUING if progress < 0.4 else TaskState.GENERATING


class Stats:
    """Counters for `GET /_sandbox/stats`; keys are endpoint templates, never secrets."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.codes: Counter[tuple[str, int]] = Counter()
        self.tasks_by_model: Counter[str] = Counter()
        self.tasks_by_input: Counter[str] = Counter()
        self.tasks_by_provider: Counter[str] = Counter()
        self.credits_used: dict[str, float] = {}
        self.callbacks: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.quirks: Counter[str] = Counter()  # answers on which each quirk showed
        # ElevenLabs request stitching: requests that named earlier requests by id.
        self.stitched: Counter[str] = Counter()
        self.peak_concurrent = 0

    def snapshot(self) -> dict[str, Any]:
        def nest(counter: Counter[tuple[str, int]]) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            for (endpoint, status), count in sorted(counter.items()):
                out.setdefault(endpoint, {})[str(status)] = count
            return out

        return {
            "requests": nest(self.requests),
            "body_codes": nest(self.codes),
            "tasks": {
                "total": sum(self.tasks_by_model.values()),
                "by_model": dict(self.tasks_by_model),
                "by_provider": dict(self.tasks_by_provider),
                "by_input_hash": dict(self.tasks_by_input),
            },
            "peak_concurrent_tasks": self.peak_concurrent,
            "credits_used": {"total": round(sum(self.credits_used.values()), 4),
                             **{k: round(v, 4) for k, v in self.credits_used.items()}},
            "callbacks": dict(self.callbacks),
            "faults": dict(self.faults),
            "quirks": dict(self.quirks),
            "request_stitching": dict(self.stitched),
        }


class SandboxState:
    """Everything a reset forgets. Single-threaded: touched only from the event loop."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock_offset_s = 0.0
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[tuple[str, str], Account] = {}
        self.tasks: dict[str, Task] = {}
        self.occurrences: Counter[tuple[int, str]] = Counter()
        self.request_ids: dict[str, float] = {}  # ElevenLabs request-id -> time made
        self.running: list[float] = []  # heap of finish times of every task
        self.stats = Stats()
        self.rng = random.Random(self.config.seed)
        # Quirks draw from their own generator, so that switching one on or off leaves the
        # fault and latency draws (and the tests seeded on them) where they were.
        self.quirk_rng = random.Random(f"quirks:{self.config.seed}")
        self._serial = 0
        # Ids must never repeat across sandbox processes, as a real provider's never do:
        # a resumed run polling a recorded task id must not meet another job's task.
        self._instance = secrets.token_hex(8)

    def now(self) -> float:
        return self.config.clock() + self.clock_offset_s

    def new_id(self, prefix: str = "") -> str:
        """Unique across sandbox processes, and unguessable enough."""
        self._serial += 1
        digest = sha256_hex(f"{self._instance}:{self._serial}:{prefix}")[:24]
        return f"{prefix}{digest}"

    def account(self, provider: str, key: str) -> Account:
        # Accounts are keyed by a digest so that keys are not kept around as dict keys.
        ident = (provider, sha256_hex(key))
        found = self.accounts.get(ident)
        if found is None:
            found = self.accounts[ident] = Account(provider)
        return found

    def key_accepted(self, key: str | None) -> bool:
        if not key:
            return False
        return self.config.api_keys is None or key in self.config.api_keys

    def balance(self, account: Account) -> float | None:
        credits = self.config.credits
        return None if credits is None else round(credits - account.spent, 4)

    # --- admission ---------------------------------------------------------
    def count_request(self, account: Account) -> bool:
        """Count a generation request in the sliding window; False when the window is full."""
        limit = self.config.rate_limit_for(account.provider)
        if limit is None:
            return True
        now = self.now()
        window = account.window
        while window and window[0] <= now - limit.window_s:
            window.popleft()
        # Another client on the same key (`other_client_requests`) fills part of it.
        if len(window) + self.config.other_client_requests >= limit.requests:
            return False
        window.append(now)
        return True

    def running_count(self, account: Account) -> int:
        now = self.now()
        while account.running and account.running[0] <= now:
            heapq.heappop(account.running)
        return len(account.running) + account.in_flight

    def admit(self, account: Account, cost: float, *, max_concurrent: int | None = None
              ) -> Refusal | None:
        """Concurrency and credits, checked after the request was counted and validated.
        `max_concurrent` replaces the configured limit (ElevenLabs: the plan's)."""
        limit = self.config.max_concurrent if max_concurrent is None else max_concurrent
        if limit is not None and self.running_count(account) >= limit:
            return Refusal.CONCURRENCY
        balance = self.balance(account)
        if balance is not None and balance < cost:
            return Refusal.CREDITS
        return None

    def draw_fault(self, kind: str) -> bool:
        probability = self.config.faults.get(kind, 0.0)
        if probability <= 0 or self.rng.random() >= probability:
            return False
        self.stats.faults[kind] += 1
        return True

    def quirk(self, name: str) -> bool:
        """Whether quirk `name` shows on this answer (quirks.py); counted in the stats."""
        rate = self.config.quirks.get(name, 0.0)
        if rate <= 0 or (rate < 1 and self.quirk_rng.random() >= rate):
            return False
        self.stats.quirks[name] += 1
        return True

    def occurrence(self, account: Account, request_hash: str) -> int:
        """0 for the first time this account sends this exact request, then 1, 2, ..."""
        key = (id(account), request_hash)
        index = self.occurrences[key]
        self.occurrences[key] = index + 1
        return index

    # --- tasks -------------------------------------------------------------
    def add_task(self, task: Task, *, charge: bool) -> None:
        """Record a created task: concurrency, stats and (unless it will fail) its cost."""
        self.tasks[task.task_id] = task
        self.record_generation(task.account, task.model, task.input_hash, task.done_s,
                               task.cost if charge and task.fail is None else 0.0)

    def record_generation(self, account: Account, model: str, input_hash: str, done_s: float,
                          cost: float) -> None:
        now = self.now()
        if done_s > now:
            heapq.heappush(account.running, done_s)
            heapq.heappush(self.running, done_s)
        while self.running and self.running[0] <= now:
            heapq.heappop(self.running)
        in_flight = sum(a.in_flight for a in self.accounts.values())
        self.stats.peak_concurrent = max(self.stats.peak_concurrent,
                                         len(self.running) + in_flight)
        self.stats.tasks_by_model[model] += 1
        self.stats.tasks_by_input[input_hash] += 1
        self.stats.tasks_by_provider[account.provider] += 1
        account.spent += cost
        used = self.stats.credits_used
        used[account.provider] = used.get(account.provider, 0.0) + cost
