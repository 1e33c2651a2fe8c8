"""Shared fixtures: a real sandbox server on 127.0.0.1 with a free port, and a fake clock.

Tests configure the sandbox through `sandbox_config` (a fresh `SandboxConfig` whose
clock is `fake_clock`) or by changing `sandbox.config` of the running server: the
app reads its knobs live.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runner.sandbox import SandboxConfig, SandboxServer


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
