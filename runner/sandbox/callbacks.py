"""Market callbacks: a POST of the task record to `callBackUrl` when a task ends.

Delivery is driven by the sandbox clock: a dispatcher wakes every few
milliseconds and sends what is due, so a test that advances a fake clock gets
its callback without sleeping. A failed delivery (no 2xx, or no answer within
the timeout) is retried after 1 s, 2 s, ... of sandbox time, `callback_attempts`
times in all (the real schedule is not documented). Only loopback targets are
ever contacted. With a webhook HMAC key, callbacks are signed as kie.ai does:
`X-Webhook-Signature = base64(HMAC-SHA256(taskId + "." + timestamp, key))`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import json
from collections.abc import Callable
from typing import Any

import httpx

from runner.sandbox.state import Task
from runner.sandbox.web import Sandbox, is_loopback_url

_TICK_S = 0.01


def signature(task_id: str, timestamp: str, key: str) -> str:
    digest = hmac.new(key.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class CallbackDispatcher:
    """Posts each finished task's record to its `callBackUrl`, when the sandbox clock says."""

    def __init__(self, sandbox: Sandbox,
                 body: Callable[[Sandbox, Task], dict[str, Any]]) -> None:
        self._sandbox = sandbox
        self._body = body  # what a callback carries (runner.sandbox.market.callback_body)
        self._queue: list[tuple[float, int, str, int]] = []  # (due, seq, task id, attempt)
        self._seq = 0
        self._runner: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def reset(self) -> None:
        self._queue.clear()

    def schedule(self, task: Task) -> None:
        """Queue the callback of a task that has a `callBackUrl` (lost/duplicated by faults)."""
        state = self._sandbox.state
        if state.draw_fault("callback_lost"):
            state.stats.callbacks["lost"] += 1
            return
        copies = 2 if state.draw_fault("callback_dup") else 1
        if copies == 2:
            state.stats.callbacks["duplicated"] += 1
        for _ in range(copies):
            self._push(task.done_s, task.task_id, 1)
        self._ensure_running()

    def _push(self, due: float, task_id: str, attempt: int) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (due, self._seq, task_id, attempt))

    def _ensure_running(self) -> None:
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            now = self._sandbox.state.now()
            while self._queue and self._queue[0][0] <= now:
                _, _, task_id, attempt = heapq.heappop(self._queue)
                sending = asyncio.get_running_loop().create_task(self._deliver(task_id, attempt))
                self._sending.add(sending)
                sending.add_done_callback(self._sending.discard)
            await asyncio.sleep(_TICK_S)

    async def _deliver(self, task_id: str, attempt: int) -> None:
        sandbox = self._sandbox
        task = sandbox.state.tasks.get(task_id)
        if task is None or not task.callback_url:
            return  # forgotten by a reset
        stats = sandbox.state.stats.callbacks
        if not is_loopback_url(task.callback_url):
            stats["refused_non_loopback"] += 1
            return
        body = self._body(sandbox, task)
        headers = {"content-type": "application/json", "user-agent": "runner-sandbox-callback"}
        key = sandbox.config.webhook_hmac_key
        if key:
            timestamp = str(int(sandbox.state.now()))
            headers["x-webhook-timestamp"] = timestamp
            headers["x-webhook-signature"] = signature(task.task_id, timestamp, key)
        stats["sent"] += 1
        try:
            response = await self._http().post(
                task.callback_url, content=json.dumps(body, ensure_ascii=False).encode(),
                headers=headers, timeout=sandbox.config.callback_timeout_s,
            )
            ok = 200 <= response.status_code < 300
        except httpx.HTTPError:
            ok = False
        if ok:
            stats["delivered"] += 1
            return
        stats["failed"] += 1
        if attempt < sandbox.config.callback_attempts:
            self._push(sandbox.state.now() + 2 ** (attempt - 1), task_id, attempt + 1)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
        for sending in list(self._sending):
            sending.cancel()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
