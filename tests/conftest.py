"""Shared fixtures: a real sandbox server on 127.0.0.1 with a free port, a fake clock,
and the real servers of tests/services.py (an S3 store, PostgreSQL, Redis), each
started once per session.

Tests configure the sandbox through `sandbox_config` (a fresh `SandboxConfig` whose
clock is `fake_clock`) or by changing `sandbox.config` of the running server: the
app reads its knobs live.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest

from runner.sandbox import SandboxConfig, SandboxServer
from tests.services import (
    PostgresServer,
    RedisServer,
    S3Server,
    ServiceUnavailable,
    required,
)

Server = TypeVar("Server", S3Server, PostgresServer, RedisServer)


class FakeClock:
    """Sandbox time that moves only when a test says so."""

    def __init__(self, start_s: float = 1_760_000_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox_config(fake_clock: FakeClock) -> SandboxConfig:
    return SandboxConfig(clock=fake_clock)


@pytest.fixture
def sandbox(sandbox_config: SandboxConfig) -> Iterator[SandboxServer]:
    """A running sandbox; `sandbox.url` is its base URL, `sandbox.config` its live knobs."""
    server = SandboxServer(sandbox_config)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _serving(server: Server, name: str) -> Iterator[Server]:
    """`server` started for the whole session. When it cannot start, the tests that use
    it skip with the reason, or fail where RUNNER_REQUIRE_SERVICES is set (`.ci/run`)."""
    try:
        server.start()
    except ServiceUnavailable as exc:
        server.stop()  # whatever did start (a process that failed its health check)
        if required():
            pytest.fail(f"the {name} could not start: {exc}")
        pytest.skip(f"no {name}: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server (SeaweedFS)."""
    yield from _serving(S3Server(tmp_path_factory.mktemp("seaweedfs")), "S3 server")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL 15 cluster."""
    yield from _serving(PostgresServer(), "PostgreSQL server")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis server."""
    yield from _serving(RedisServer(tmp_path_factory.mktemp("redis")), "Redis server")


@pytest.fixture
def coordinator_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """RUNNER_COORDINATOR set to a fresh database of the session's PostgreSQL: tests share
    the server, never each other's claims or budgets."""
    url = postgres_server.create_database()
    monkeypatch.setenv("RUNNER_COORDINATOR", url)
    return url


@pytest.fixture
def limiter_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """RUNNER_LIMITER set to the session's Redis, emptied for this test."""
    redis_server.flush()
    monkeypatch.setenv("RUNNER_LIMITER", redis_server.url)
    return redis_server.url


@dataclass(frozen=True)
class RemoteCacheSetup:
    server: S3Server
    prefix: str  # this test's own corner of the bucket
    env: dict[str, str]

    @property
    def url(self) -> str:
        return self.env["RUNNER_REMOTE_CACHE"]


@pytest.fixture
def remote_cache(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> RemoteCacheSetup:
    """RUNNER_REMOTE_CACHE and the AWS_* variables set for a fresh prefix of the session's
    S3 server: tests share the server, never each other's objects."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    env = s3_server.env(prefix)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return RemoteCacheSetup(s3_server, prefix, env)
