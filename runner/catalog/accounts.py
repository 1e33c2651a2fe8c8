"""Provider accounts: where requests go, with which key, within which limits.

Built-in accounts need no configuration; a manifest may override any field or
declare extra accounts of a built-in type (a second kie key, say). Base URLs can
also be overridden from the environment, which wins over the manifest:
`RUNNER_<NAME>_BASE_URL` and `RUNNER_<NAME>_UPLOAD_BASE_URL`, NAME being the
account name upper-cased with other characters turned into `_`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from runner.catalog.models import Family


@dataclass(frozen=True, slots=True)
class Limits:
    """An account's budget. `requests_per_window` generation requests in any
    `window_s` seconds (a sliding window: never a burst above it), at most
    `max_in_flight` unfinished tasks, `polls_per_s` status polls, and at most
    `max_downloads` results being downloaded and stored at once.

    No provider publishes a download limit; the cap is the runner's own. Without
    it, a wave of tasks finishing together starts as many downloads, whose storing
    holds the event loop while the next wave's requests wait: bench_makespan went
    from 1.07x to 1.09-1.13x of its bound. Eight streams still fill any link."""

    requests_per_window: int
    window_s: float
    max_in_flight: int
    polls_per_s: float
    max_downloads: int = 8


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Fast at first, slower later, as the providers advise; give up at the deadline."""

    initial_interval_s: float
    max_interval_s: float
    deadline_s: float
    # The market documents `recordInfo is null` for a task that exists but is not
    # visible yet: until this long after its creation, "not found" means "wait".
    visibility_grace_s: float = 120.0


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    name: str
    type: str  # kie | apikley | aimlapi | elevenlabs
    family: Family
    base_url: str
    upload_base_url: str
    api_key_env: str
    limits: Limits
    poll: PollPolicy

    def api_key(self, env: Mapping[str, str]) -> str | None:
        value = env.get(self.api_key_env, "").strip()
        return value or None


_MARKET_POLL = PollPolicy(initial_interval_s=2.0, max_interval_s=30.0, deadline_s=900.0)

# Sources: kie.ai Getting Started §8 (20 createTask per 10 s, "100+" running tasks,
# task-detail 10 req/s); apikley "may differ" and publishes nothing else, so it
# gets kie's; AI/ML API publishes no generation limit (conservative guesses; its
# sample polls every 10 s, 600 s timeout); ElevenLabs caps concurrency by plan
# (Creator: 5 for multilingual, 10 for turbo/flash) with no per-minute limit.
BUILTIN: dict[str, ProviderAccount] = {
    a.name: a
    for a in (
        ProviderAccount(
            "kie", "kie", Family.MARKET, "https://api.kie.ai", "https://kieai.redpandaai.co",
            "KIE_API_KEY", Limits(20, 10.0, 100, 10.0), _MARKET_POLL,
        ),
        ProviderAccount(
            "apikley", "apikley", Family.MARKET, "https://api.apikley.ru",
            "https://api.apikley.ru/file-upload", "APIKLEY_API_KEY",
            Limits(20, 10.0, 100, 10.0), _MARKET_POLL,
        ),
        ProviderAccount(
            "aimlapi", "aimlapi", Family.AIMLAPI, "https://api.aimlapi.com",
            "https://api.aimlapi.com", "AIMLAPI_KEY", Limits(10, 10.0, 20, 5.0),
            PollPolicy(initial_interval_s=5.0, max_interval_s=10.0, deadline_s=600.0),
        ),
        ProviderAccount(
            "elevenlabs", "elevenlabs", Family.ELEVENLABS, "https://api.elevenlabs.io",
            "https://api.elevenlabs.io", "ELEVENLABS_API_KEY", Limits(100, 1.0, 5, 10.0),
            PollPolicy(initial_interval_s=1.0, max_interval_s=5.0, deadline_s=300.0),
        ),
    )
}

# The account a model goes to when a job names none and `defaults.provider`
# does not serve it.
DEFAULT_FOR_FAMILY = {Family.MARKET: "kie", Family.AIMLAPI: "aimlapi",
                      Family.ELEVENLABS: "elevenlabs"}


def env_name(account: str, suffix: str) -> str:
    return f"RUNNER_{re.sub(r'[^A-Za-z0-9]', '_', account).upper()}_{suffix}"


def resolve_accounts(
    declared: Mapping[str, Mapping[str, Any]], env: Mapping[str, str]
) -> dict[str, ProviderAccount]:
    """Built-in accounts, overridden and extended by the manifest, then by the environment.

    `declared` has already passed the pipeline schema; an extra account without a
    valid `type` is reported by the manifest checks, not here.
    """
    accounts = dict(BUILTIN)
    for name, spec in declared.items():
        base = BUILTIN.get(name) or BUILTIN.get(str(spec.get("type", "")))
        if base is None:
            continue
        if "type" in spec and name in BUILTIN and spec["type"] != name:
            base = BUILTIN[str(spec["type"])]
        limits = replace(base.limits, **spec.get("limits", {}))
        poll = replace(base.poll, **spec.get("poll", {}))
        default_env = base.api_key_env if name == base.name else env_name(name, "API_KEY")
        accounts[name] = replace(
            base,
            name=name,
            base_url=str(spec.get("base_url", base.base_url)).rstrip("/"),
            upload_base_url=str(spec.get("upload_base_url", base.upload_base_url)).rstrip("/"),
            api_key_env=str(spec.get("api_key_env", default_env)),
            limits=limits,
            poll=poll,
        )
    for name, account in list(accounts.items()):
        base_url = env.get(env_name(name, "BASE_URL"))
        upload = env.get(env_name(name, "UPLOAD_BASE_URL"))
        if base_url or upload:
            accounts[name] = replace(
                account,
                base_url=(base_url or account.base_url).rstrip("/"),
                upload_base_url=(upload or base_url or account.upload_base_url).rstrip("/"),
            )
    return accounts
