"""The AI/ML API adapter (stable-audio) against the sandbox over real HTTP."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from runner.catalog.models import MODELS
from runner.errors import (
    AccountRefused,
    ProviderUnavailable,
    RateLimited,
    RequestRejected,
    TransportError,
)
from runner.providers.aimlapi import AimlapiAdapter
from runner.providers.base import Request, TaskState

from .conftest import API_KEY, Sandbox, assert_final, closed_port_url, download, verify

pytestmark = pytest.mark.anyio

STABLE = MODELS["stable-audio"]
MUSIC = {"prompt": "lo-fi hip-hop with soft piano", "seconds_total": 2, "steps": 10}


def adapter(sandbox: Sandbox, client: httpx.AsyncClient, key: str = API_KEY) -> AimlapiAdapter:
    return AimlapiAdapter(sandbox.account("aimlapi"), key, client)


async def test_stable_audio(sandbox: Sandbox, client: httpx.AsyncClient, tmp_path: Path) -> None:
    aiml = adapter(sandbox, client)
    task = await aiml.submit(Request("music", STABLE, dict(MUSIC)))
    assert task.task_id.endswith(":stable-audio")
    status = await aiml.status(task.task_id)
    assert_final(status, TaskState.SUCCEEDED)
    assert status.provider_state == "completed" and status.result is not None
    assert status.result.credits == 252 * 10  # 252 tokens per step
    info = verify(await download(client, status.result.urls[0], tmp_path / "m.wav"), "wav")
    assert (info.channels, info.sample_rate) == (2, 44100)
    assert info.duration_s == pytest.approx(2.0, abs=0.05)


async def test_queued_then_generating(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.knobs(latency="20")
    aiml = adapter(sandbox, client)
    task = await aiml.submit(Request("music", STABLE, dict(MUSIC)))
    first = await aiml.status(task.task_id)
    assert (first.state, first.provider_state) == (TaskState.PENDING, "queued")
    sandbox.advance(10)
    assert (await aiml.status(task.task_id)).provider_state == "generating"


async def test_refused_key(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.knobs(api_keys=[API_KEY])
    with pytest.raises(AccountRefused) as caught:
        await adapter(sandbox, client, "sk-wrong-key-000000000000").submit(
            Request("m", STABLE, dict(MUSIC)))
    assert caught.value.status == 401 and "API key refused" in str(caught.value)


async def test_out_of_credits_is_403(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.knobs(credits=100)
    with pytest.raises(AccountRefused) as caught:
        await adapter(sandbox, client).submit(Request("m", STABLE, dict(MUSIC)))
    assert caught.value.status == 403
    assert "out of credits: You've run out of credits" in str(caught.value)


async def test_rate_limited(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.knobs(rate_limit="1/60")
    aiml = adapter(sandbox, client)
    await aiml.submit(Request("a", STABLE, dict(MUSIC)))
    with pytest.raises(RateLimited) as caught:
        await aiml.submit(Request("b", STABLE, dict(MUSIC)))
    assert caught.value.status == 429


@pytest.mark.parametrize(("fault", "kind", "http_status"), [
    ("429", RateLimited, 429), ("455", ProviderUnavailable, 503),
    ("500", ProviderUnavailable, 500),
])
async def test_injected_faults(sandbox: Sandbox, client: httpx.AsyncClient, fault: str,
                               kind: type[Exception], http_status: int) -> None:
    sandbox.knobs(faults={fault: 1})
    with pytest.raises(kind) as caught:
        await adapter(sandbox, client).submit(Request("m", STABLE, dict(MUSIC)))
    assert getattr(caught.value, "status") == http_status  # noqa: B009


async def test_generation_error(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    sandbox.knobs(faults={"501": 1})
    aiml = adapter(sandbox, client)
    status = await aiml.status((await aiml.submit(Request("m", STABLE, dict(MUSIC)))).task_id)
    assert_final(status, TaskState.FAILED)
    assert (status.fail_code, status.fail_message) == ("GenerationError",
                                                       "Audio generation failed")


async def test_out_of_range_input_carries_the_hint(sandbox: Sandbox,
                                                   client: httpx.AsyncClient) -> None:
    with pytest.raises(RequestRejected) as caught:
        await adapter(sandbox, client).submit(Request("m", STABLE, {**MUSIC,
                                                                    "seconds_total": 99}))
    assert caught.value.status == 400
    assert ("Body validation error!; seconds_total: ensure this value is less than or equal "
            "to 47 (expected <= 47, received 99)") in str(caught.value)


async def test_unknown_generation(sandbox: Sandbox, client: httpx.AsyncClient) -> None:
    with pytest.raises(RequestRejected) as caught:
        await adapter(sandbox, client).status("0000:stable-audio")
    assert caught.value.status == 404 and "Generation not found" in str(caught.value)


async def test_dropped_and_refused_connections(sandbox: Sandbox,
                                               client: httpx.AsyncClient) -> None:
    sandbox.knobs(faults={"drop": 1})
    with pytest.raises(TransportError) as dropped:
        await adapter(sandbox, client).submit(Request("m", STABLE, dict(MUSIC)))
    assert dropped.value.request_sent is True
    account = dataclasses.replace(sandbox.account("aimlapi"), base_url=closed_port_url())
    with pytest.raises(TransportError) as refused:
        await AimlapiAdapter(account, API_KEY, client).submit(Request("m", STABLE, dict(MUSIC)))
    assert refused.value.request_sent is False


async def test_what_is_not_offered(sandbox: Sandbox, client: httpx.AsyncClient,
                                   tmp_path: Path) -> None:
    aiml = adapter(sandbox, client)

    async def sink(chunk: bytes) -> None:
        raise AssertionError("nothing to write")

    with pytest.raises(RequestRejected, match="no file upload"):
        await aiml.upload(tmp_path / "x.wav", "x.wav")
    with pytest.raises(RequestRejected, match="asynchronous"):
        await aiml.generate(Request("m", STABLE, dict(MUSIC)), sink)
    with pytest.raises(RequestRejected, match="no callbacks"):
        aiml.callback_task_id(b"{}", {})
    assert await aiml.refresh_url("https://cdn.aimlapi.com/x.wav") is None
