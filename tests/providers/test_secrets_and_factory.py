"""The API key never reaches a message, and `make_adapter` picks the protocol's adapter."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
import pytest

from runner.catalog.accounts import BUILTIN
from runner.catalog.models import MODELS
from runner.errors import ProviderError
from runner.providers import AimlapiAdapter, ElevenLabsAdapter, MarketAdapter, make_adapter
from runner.providers.base import Adapter, Request
from runner.providers.http import make_client

from .conftest import API_KEY, Sandbox, Sink, closed_port_url
from .mock import Script, account, reply

pytestmark = pytest.mark.anyio

SECRET = "sk-live-SECRET-4d3c2b1a0f9e8d7c"


def echo(request: httpx.Request) -> httpx.Response:
    """A provider that quotes the credentials it was sent back in its error message."""
    sent = request.headers.get("authorization") or request.headers.get("xi-api-key") or ""
    text = f"key {sent} is not valid"
    return reply({"code": 422, "msg": text, "message": text,
                  "detail": {"code": "invalid_parameters", "message": text}}, 422)


def assert_secret_absent(error: BaseException) -> None:
    seen = [str(error), repr(error), *map(str, error.args)]
    cause = error.__cause__
    while cause is not None:
        seen += [str(cause), repr(cause)]
        cause = cause.__cause__
    for text in seen:
        assert SECRET not in text, text


def requests() -> list[tuple[str, Request]]:
    return [("kie", Request("j", MODELS["elevenlabs/sound-effect-v2"], {"text": "x"})),
            ("aimlapi", Request("j", MODELS["stable-audio"], {"prompt": "x"})),
            ("elevenlabs", Request("j", MODELS["sound-generation"], {"text": "x"}))]


async def call(adapter: Adapter, request: Request, tmp_path: Path) -> None:
    if adapter.synchronous:
        await adapter.generate(request, Sink(tmp_path / "out"))
    else:
        await adapter.submit(request)


@pytest.mark.parametrize(("name", "request_"), requests())
async def test_key_echoed_by_the_provider_is_blanked(name: str, request_: Request,
                                                     tmp_path: Path) -> None:
    script = Script(echo)
    async with script.client() as client:
        adapter = make_adapter(account(name), SECRET, client)
        assert SECRET not in repr(adapter)
        with pytest.raises(ProviderError) as caught:
            await call(adapter, request_, tmp_path)
    assert "***" in str(caught.value)
    assert_secret_absent(caught.value)


@pytest.mark.parametrize(("name", "request_"), requests())
async def test_key_absent_from_sandbox_and_transport_errors(
        sandbox: Sandbox, client: httpx.AsyncClient, name: str, request_: Request,
        tmp_path: Path) -> None:
    sandbox.knobs(api_keys=[API_KEY])
    adapter = make_adapter(sandbox.account(name), SECRET, client)
    with pytest.raises(ProviderError) as refused:  # 401
        await call(adapter, request_, tmp_path)
    assert_secret_absent(refused.value)
    sandbox.knobs(api_keys=None, faults={"drop": 1})
    with pytest.raises(ProviderError) as dropped:
        await call(adapter, request_, tmp_path)
    assert_secret_absent(dropped.value)
    closed = make_adapter(dataclasses.replace(sandbox.account(name), base_url=closed_port_url()),
                          SECRET, client)
    with pytest.raises(ProviderError) as unreachable:
        await call(closed, request_, tmp_path)
    assert_secret_absent(unreachable.value)
    async with make_client(read_timeout_s=0.1) as impatient:
        sandbox.knobs(faults={"slow": 1}, slow_response_s=0.5)
        with pytest.raises(ProviderError) as slow:
            await call(make_adapter(sandbox.account(name), SECRET, impatient), request_, tmp_path)
    assert_secret_absent(slow.value)


async def test_make_adapter_by_family() -> None:
    async with make_client() as client:
        kinds = {name: type(make_adapter(acc, "k" * 20, client, webhook_hmac_key="h"))
                 for name, acc in BUILTIN.items()}
    assert kinds == {"kie": MarketAdapter, "apikley": MarketAdapter,
                     "aimlapi": AimlapiAdapter, "elevenlabs": ElevenLabsAdapter}


def test_adapters_satisfy_the_protocol() -> None:
    # The protocol is structural; mypy checks these assignments (tests are type-checked).
    client = httpx.AsyncClient()
    adapters: list[Adapter] = [MarketAdapter(BUILTIN["kie"], "k", client),
                               AimlapiAdapter(BUILTIN["aimlapi"], "k", client),
                               ElevenLabsAdapter(BUILTIN["elevenlabs"], "k", client)]
    assert [a.synchronous for a in adapters] == [False, False, True]
