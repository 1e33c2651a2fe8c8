"""Provider adapters: one small class per protocol over an injected httpx client.

    base.py       the interface the engine sees: the Adapter protocol, Request, TaskStatus, ...
    market.py     kie.ai and apikley (the market jobs API)
    aimlapi.py    AI/ML API (stable-audio)
    elevenlabs.py ElevenLabs direct (synchronous)
    common.py     what they share: answer reading, Retry-After, keeping keys out
    http.py       the HTTP boundary: one client per run, httpx errors translated once
    transport.py  HTTP over aiohttp's connection pool, behind httpx's interface
    download.py   fetching results: streamed, capped, verified, kept by digest
"""

from __future__ import annotations

import time

import httpx

from runner.catalog.accounts import ProviderAccount
from runner.catalog.models import Family
from runner.providers.aimlapi import AimlapiAdapter
from runner.providers.base import Adapter
from runner.providers.common import Clock
from runner.providers.elevenlabs import ElevenLabsAdapter
from runner.providers.market import MarketAdapter

__all__ = ["AimlapiAdapter", "ElevenLabsAdapter", "MarketAdapter", "make_adapter"]


def make_adapter(account: ProviderAccount, api_key: str, client: httpx.AsyncClient, *,
                 webhook_hmac_key: str | None = None, clock: Clock = time.time,
                 callback_max_age_s: float = 300.0) -> Adapter:
    """The adapter for `account`'s protocol (its `family`).

    The keyword options concern market callbacks (the only provider that sends
    them) and are ignored by the others, so the engine can pass the same options
    for every account. `client` should come from `runner.providers.http.make_client()`.
    """
    if account.family is Family.MARKET:
        return MarketAdapter(account, api_key, client, webhook_hmac_key=webhook_hmac_key,
                             clock=clock, callback_max_age_s=callback_max_age_s)
    if account.family is Family.AIMLAPI:
        return AimlapiAdapter(account, api_key, client)
    if account.family is Family.ELEVENLABS:
        return ElevenLabsAdapter(account, api_key, client)
    raise ValueError(f"no adapter for provider family {account.family!r}")
