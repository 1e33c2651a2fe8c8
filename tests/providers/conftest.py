"""Fixtures for the adapter tests: one sandbox on 127.0.0.1 for the session, fresh knobs per test.

The sandbox runs in a thread of this process (`SandboxServer`), so a test sets
its knobs by assigning to the live `SandboxConfig`; every test starts from the
defaults (zero latency, no faults, no limits) and an empty sandbox.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runner.audio.verify import AudioInfo, verify_audio
from runner.catalog.accounts import BUILTIN, ProviderAccount
from runner.providers.base import TaskState, TaskStatus
from runner.providers.http import make_client
from runner.sandbox import SandboxConfig, SandboxServer, provider_urls

# Long and distinctive, so that tests can assert it never shows up in a message.
API_KEY = "sk-runner-test-7f3a9c1e5b2d4f6a8c0e"


class Sandbox:
    """The running sandbox as tests see it: URLs, accounts, knobs and its clock."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.url = server.url
        self.urls = provider_urls(server.url, server.upload_url)

    def knobs(self, **changes: Any) -> None:
        """Set knobs with the same syntax as `POST /_sandbox/config` (e.g. faults={"429": 1})."""
        self.server.config.update(changes)

    def account(self, name: str) -> ProviderAccount:
        urls = self.urls[name]
        return dataclasses.replace(BUILTIN[name], base_url=urls["base_url"],
                                   upload_base_url=urls.get("upload_base_url", urls["base_url"]))

    def advance(self, seconds: float) -> None:
        """Move sandbox time forward (tasks finish by sandbox time, not by waiting)."""
        self.server.sandbox.state.clock_offset_s += seconds

    def stats(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = self.server.sandbox.state.stats.snapshot()
        return snapshot


def _restore_defaults(server: SandboxServer) -> None:
    defaults = SandboxConfig()
    for f in dataclasses.fields(SandboxConfig):
        if f.name not in ("clock", "sleep"):
            setattr(server.config, f.name, getattr(defaults, f.name))
    server.sandbox.reset()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    server = SandboxServer(SandboxConfig())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[Sandbox]:
    _restore_defaults(sandbox_server)
    yield Sandbox(sandbox_server)
    _restore_defaults(sandbox_server)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(read_timeout_s=10.0) as shared:
        yield shared


async def download(client: httpx.AsyncClient, url: str, path: Path) -> Path:
    response = await client.get(url)
    assert response.status_code == 200, response.text[:200]
    path.write_bytes(response.content)
    return path


class Sink:
    """A synchronous adapter's sink that writes chunks to a file and counts them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.chunks = 0
        path.write_bytes(b"")

    async def __call__(self, chunk: bytes) -> None:
        self.chunks += 1
        with self.path.open("ab") as out:
            out.write(chunk)


def verify(path: Path, fmt: str) -> AudioInfo:
    """The file is well-formed audio of `fmt`, and ffmpeg decodes it to the end."""
    return verify_audio(path, fmt, decode_check=True)


def closed_port_url() -> str:
    """A loopback URL nothing listens on (a port that was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_final(status: TaskStatus, state: TaskState) -> None:
    assert status.state is state, (status.state, status.provider_state, status.fail_message)
