"""The narrow interface between the engine and a provider.

An adapter turns a job's validated input into requests and the provider's
answers into `TaskStatus`/`TaskResult`, raising the `ProviderError` subclass
that says what the answer means (runner.errors). It never retries and never
sleeps: the engine's retry policy and limiter decide that.

Asynchronous providers (market, AI/ML API): `submit` → `Submitted(task_id)`,
then `status(task_id)` until the task is final, then the engine downloads
`TaskResult.urls`. Synchronous providers (ElevenLabs direct): `generate`
returns the audio itself, written into the sink the engine passes in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import httpx

from runner.catalog.accounts import ProviderAccount
from runner.catalog.models import ModelInfo


class TaskState(StrEnum):
    PENDING = "pending"  # waiting, queuing, generating, or any state not known to be final
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What a finished task produced."""

    task_id: str
    urls: tuple[str, ...] = ()  # files to download (audio)
    payload: dict[str, Any] | None = None  # JSON result: transcript, timestamps
    credits: float | None = None  # as reported by the provider
    raw: Mapping[str, Any] = field(default_factory=dict)  # the provider's record, for the journal


@dataclass(frozen=True, slots=True)
class TaskStatus:
    task_id: str
    state: TaskState
    provider_state: str  # the provider's own word (waiting, queuing, generating, ...)
    result: TaskResult | None = None
    fail_code: str | None = None
    fail_message: str | None = None
    # Provider-reported timings, when given (market createTime/completeTime), in seconds.
    run_time_s: float | None = None


@dataclass(frozen=True, slots=True)
class Submitted:
    task_id: str


@dataclass(frozen=True, slots=True)
class Request:
    """One generation request, as the engine hands it to an adapter."""

    job_id: str
    model: ModelInfo
    input: dict[str, Any]  # validated; the audio field already filled for transcription
    callback_url: str | None = None
    audio_file: Path | None = None  # ElevenLabs direct STT: the local file to send


# The engine's writer for synchronous results: called with each chunk of audio.
Sink = Callable[[bytes], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SyncResult:
    """A synchronous generation: the audio went into the sink; this is the rest."""

    request_id: str | None
    credits: float | None
    payload: dict[str, Any] | None = None  # alignment (with-timestamps) or transcript
    content_type: str | None = None


class Adapter(Protocol):
    account: ProviderAccount
    synchronous: bool

    async def submit(self, request: Request) -> Submitted:
        """Create a task. Raises ProviderError subclasses; TransportError(request_sent=True)
        means the task may exist."""

    async def status(self, task_id: str) -> TaskStatus:
        """The task's current state (a poll)."""

    async def generate(self, request: Request, sink: Sink) -> SyncResult:
        """Synchronous providers: make the asset, streaming its bytes into `sink`."""

    async def upload(self, path: Path, file_name: str) -> str:
        """Upload a local file for a transcription job; returns its download URL."""

    async def refresh_url(self, url: str) -> str | None:
        """A fresh download URL for an expired result URL, where the provider offers one."""

    def callback_task_id(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The task a callback is about, its signature (where there is a key) checked
        for exactly that task; raises RequestRejected if malformed or not signed.
        Nothing else in the body is trusted: the engine asks the provider."""


AdapterFactory = Callable[[ProviderAccount, str, httpx.AsyncClient], Adapter]
