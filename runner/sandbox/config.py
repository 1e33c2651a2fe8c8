"""Every behaviour knob of the sandbox, and the one syntax they are written in.

The same strings work on the command line (`--latency stable-audio=20-40`) and in
`POST /_sandbox/config` JSON, so a test can drive a sandbox in another process
exactly as a person drives one from a shell. Standard library only: the CLI
imports this module at start-up.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from runner.sandbox.quirks import FAITHFUL, QuirkError, parse_quirks
from runner.sandbox.quirks import describe as describe_quirks

PROVIDERS = ("kie", "apikley", "aimlapi", "elevenlabs")
# Fault kinds and where they strike (see docs/sandbox.md).
FAULT_KINDS: dict[str, str] = {
    "429": "a generation request is refused as rate limited; nothing is created",
    "455": "a generation request is refused: service unavailable (maintenance)",
    "500": "a generation request fails with a server error; nothing is created",
    "501": "the task is created but its generation fails (state fail / error)",
    "slow": "the response is held for slow_response_s before it is sent",
    "drop": "the connection is closed without an answer (a create has already happened)",
    "truncate": "a file download stops halfway through",
    "callback_lost": "a callback is never sent",
    "callback_dup": "a callback is sent twice",
    "expire": "a result URL has already expired when it is fetched",
}


class KnobError(ValueError):
    """A knob value that cannot be parsed; its text is the message a user reads."""


@dataclass(frozen=True, slots=True)
class Latency:
    """Seconds from creation to a final state: fixed (`low_s == high_s`) or uniform."""

    low_s: float
    high_s: float

    def draw(self, rng: random.Random) -> float:
        return self.low_s if self.low_s == self.high_s else rng.uniform(self.low_s, self.high_s)

    def __str__(self) -> str:
        return f"{self.low_s:g}" if self.low_s == self.high_s else f"{self.low_s:g}-{self.high_s:g}"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `requests` generation requests per sliding window of `window_s` per key."""

    requests: int
    window_s: float

    def __str__(self) -> str:
        return f"{self.requests}/{self.window_s:g}"


# ElevenLabs concurrency per plan: (Multilingual v2 / v3 / other models, Flash / Turbo)
# (docs/providers.md, "ElevenLabs: concurrency by plan"). Requests beyond it are refused
# with 429.
ELEVENLABS_PLANS: dict[str, tuple[int, int]] = {
    "free": (2, 4), "starter": (3, 6), "creator": (5, 10), "pro": (10, 20), "scale": (15, 30),
    "business": (15, 30),
}
# What `runner run --sandbox` and `runner sandbox serve --realistic` use: the published
# limits (kie.ai's 20 createTask per 10 s, docs/providers.md "Market API: rate limits";
# apikley publishes none and resells kie) and latencies in the ranges the documents give
# (kie's callback example: 10 s; AI/ML API: "usually completes in 30-60 s"; ElevenLabs
# answers synchronously).
REALISTIC_RATE_LIMIT = "kie=20/10,apikley=20/10"
REALISTIC_LATENCY = ("elevenlabs/text-to-speech-turbo-2-5=4-12,elevenlabs/sound-effect-v2=5-15,"
                     "elevenlabs/speech-to-text=6-20,stable-audio=30-60,text-to-speech=0.5-2.5,"
                     "text-to-speech-with-timestamps=0.5-2.5,sound-generation=2-6,"
                     "speech-to-text=1-5")


def parse_latency(spec: str) -> dict[str, Latency]:
    """`2`, `1-5`, `stable-audio=20-40,elevenlabs/sound-effect-v2=3,*=0.5` (seconds)."""
    out: dict[str, Latency] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        model, sep, value = item.rpartition("=")
        model = model.strip() if sep else "*"
        low, dash, high = value.strip().removesuffix("s").partition("-")
        try:
            lo = float(low)
            hi = float(high.removesuffix("s")) if dash else lo
        except ValueError:
            raise KnobError(f"latency {item!r}: expected SECONDS or MIN-MAX, e.g. 2 or 1-5") from None
        if not (0 <= lo <= hi) or not math.isfinite(hi):
            raise KnobError(f"latency {item!r}: need 0 <= MIN <= MAX")
        out[model or "*"] = Latency(lo, hi)
    return out


def parse_rate_limit(spec: str) -> dict[str, RateLimit]:
    """`20/10` = 20 requests per 10 s for every provider; `kie=20/10,apikley=20/10` per
    provider (kie, apikley, aimlapi, elevenlabs; `*=` any other); `none` = no limit."""
    out: dict[str, RateLimit] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if item.lower() in ("none", "off"):
            continue
        provider, sep, value = item.rpartition("=")
        provider = provider.strip() if sep else "*"
        if provider not in ("*", *PROVIDERS):
            raise KnobError(f"rate limit {item!r}: expected [PROVIDER=]N/SECONDS with PROVIDER "
                            f"one of {', '.join(PROVIDERS)}")
        count, slash, window = value.partition("/")
        try:
            requests = int(count)
            window_s = float(window.strip().removesuffix("s")) if slash else 1.0
        except ValueError:
            raise KnobError(f"rate limit {item!r}: expected N/SECONDS, e.g. 20/10") from None
        if requests < 1 or window_s <= 0:
            raise KnobError(f"rate limit {item!r}: need N >= 1 and SECONDS > 0")
        out[provider] = RateLimit(requests, window_s)
    return out


def describe_rate_limit(limits: Mapping[str, RateLimit]) -> str | None:
    if not limits:
        return None
    return ",".join(str(lim) if who == "*" else f"{who}={lim}" for who, lim in limits.items())


def parse_faults(spec: str) -> dict[str, float]:
    """`429=0.1,500=0.05,drop=0.01`: probabilities in [0, 1] per fault kind."""
    out: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        if kind not in FAULT_KINDS:
            raise KnobError(f"fault {kind!r}: expected one of {', '.join(FAULT_KINDS)}")
        try:
            probability = float(value) if sep else 1.0
        except ValueError:
            raise KnobError(f"fault {item!r}: expected KIND=PROBABILITY") from None
        if not 0 <= probability <= 1:
            raise KnobError(f"fault {item!r}: probability must be within [0, 1]")
        out[kind] = probability
    return out


@dataclass
class SandboxConfig:
    """All knobs. Mutable: `POST /_sandbox/config` updates a running sandbox in place."""

    # Seconds from createTask to a final state, per model id ("*" = every other model).
    latency: dict[str, Latency] = field(default_factory=dict)
    # Generation requests per sliding window, per provider ("*" = every other provider).
    rate_limit: dict[str, RateLimit] = field(default_factory=dict)
    # Tasks (market, AI/ML) or requests in flight (ElevenLabs) per key; None = unlimited
    # (ElevenLabs: the plan's limit below).
    max_concurrent: int | None = None
    # ElevenLabs concurrency and the `maximum-concurrent-requests` header follow this plan
    # (ELEVENLABS_PLANS); None = unlimited, no header.
    elevenlabs_plan: str | None = "creator"
    # Documented behaviours a client must cope with, as rates in [0, 1] (quirks.py).
    quirks: dict[str, float] = field(default_factory=lambda: dict(FAITHFUL))
    # Starting balance of every key; None = unlimited.
    credits: float | None = None
    # Keys that are accepted; None = any non-empty key.
    api_keys: frozenset[str] | None = None
    webhook_hmac_key: str | None = None
    # Result URLs stop working this long after the task finished (docs: 24 h); None = never.
    result_ttl_s: float | None = 24 * 3600.0
    upload_ttl_s: float = 24 * 3600.0
    faults: dict[str, float] = field(default_factory=dict)
    slow_response_s: float = 30.0
    seed: int = 0
    callback_timeout_s: float = 15.0
    callback_attempts: int = 3
    # A new market task is not visible to recordInfo for this long: the documented
    # `{"code": 422, "msg": "recordInfo is null"}`, or with `invisible_answer: "null"`
    # `{"code": 200, "msg": "success", "data": null}`.
    invisible_s: float = 0.0
    invisible_answer: str = "422"
    # Generation requests another client makes on every key in each rate-limit
    # window: they fill the key's window, so this client meets 429s below the limit.
    other_client_requests: int = 0
    # Path prefix -> Location: a request under the prefix is answered with a redirect
    # (307 for POST, 302 otherwise) unless it already came to the Location's host.
    # `{path}` in the Location is the request's path and query (see redirects.py).
    redirects: dict[str, str] = field(default_factory=dict)
    # Time as the sandbox sees it (seconds since the epoch); tests inject a fake one.
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    def latency_for(self, model: str) -> Latency:
        return self.latency.get(model) or self.latency.get("*") or Latency(0.0, 0.0)

    def rate_limit_for(self, provider: str) -> RateLimit | None:
        return self.rate_limit.get(provider) or self.rate_limit.get("*")

    def elevenlabs_limit(self, flash_or_turbo: bool) -> int | None:
        """Requests in flight an ElevenLabs key may have for a model of this kind."""
        if self.max_concurrent is not None:
            return self.max_concurrent
        plan = ELEVENLABS_PLANS.get(self.elevenlabs_plan or "")
        return None if plan is None else plan[1 if flash_or_turbo else 0]

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update given as JSON-like values or knob strings; all or nothing."""
        parsed: dict[str, Any] = {}
        for name, value in changes.items():
            parsed[name] = _parse_knob(name, value)
        for name, value in parsed.items():
            setattr(self, name, value)

    def describe(self) -> dict[str, Any]:
        """The knobs as JSON (keys and the webhook secret are never shown)."""
        return {
            "latency": {model: str(lat) for model, lat in self.latency.items()},
            "rate_limit": describe_rate_limit(self.rate_limit),
            "max_concurrent": self.max_concurrent,
            "elevenlabs_plan": self.elevenlabs_plan,
            "quirks": describe_quirks(self.quirks),
            "credits": self.credits,
            "api_keys": None if self.api_keys is None else f"{len(self.api_keys)} key(s)",
            "webhook_signing": self.webhook_hmac_key is not None,
            "result_ttl_s": self.result_ttl_s,
            "upload_ttl_s": self.upload_ttl_s,
            "faults": dict(self.faults),
            "slow_response_s": self.slow_response_s,
            "seed": self.seed,
            "callback_timeout_s": self.callback_timeout_s,
            "callback_attempts": self.callback_attempts,
            "invisible_s": self.invisible_s,
            "invisible_answer": self.invisible_answer,
            "other_client_requests": self.other_client_requests,
            "redirects": dict(self.redirects),
        }


_UPDATABLE = {f.name for f in fields(SandboxConfig)} - {"clock", "sleep"}


def _parse_knob(name: str, value: Any) -> Any:
    if name not in _UPDATABLE:
        raise KnobError(f"unknown knob {name!r}; known: {', '.join(sorted(_UPDATABLE))}")
    if name == "latency":
        if isinstance(value, (int, float)):
            return {"*": Latency(float(value), float(value))}
        if isinstance(value, dict):
            return {m: next(iter(parse_latency(str(v)).values())) for m, v in value.items()}
        return parse_latency(str(value))
    if name == "rate_limit":
        if value is None:
            return {}
        if isinstance(value, dict) and "requests" in value:
            return parse_rate_limit(f"{value.get('requests')}/{value.get('window_s')}")
        if isinstance(value, dict):
            return parse_rate_limit(",".join(f"{k}={v}" for k, v in value.items()))
        return parse_rate_limit(str(value))
    if name == "quirks":
        try:
            if isinstance(value, dict):
                return parse_quirks(",".join(f"{k}={v}" for k, v in value.items()))
            return parse_quirks(str(value))
        except QuirkError as exc:
            raise KnobError(str(exc)) from None
    if name == "elevenlabs_plan":
        if value is not None and value not in ELEVENLABS_PLANS:
            raise KnobError(f"elevenlabs_plan: expected one of {', '.join(ELEVENLABS_PLANS)} "
                            "or null")
        return value
    if name == "faults":
        if isinstance(value, dict):
            return parse_faults(",".join(f"{k}={v}" for k, v in value.items()))
        return parse_faults(str(value))
    if name == "api_keys":
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(k, str) and k for k in value):
            raise KnobError("api_keys: expected a list of non-empty strings, or null")
        return frozenset(value)
    if name == "webhook_hmac_key":
        if value is not None and not isinstance(value, str):
            raise KnobError("webhook_hmac_key: expected a string or null")
        return value
    if name == "invisible_answer":
        if value not in ("422", "null"):
            raise KnobError("invisible_answer: expected \"422\" or \"null\"")
        return value
    if name == "redirects":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and k.startswith("/") and isinstance(v, str) and v
                for k, v in value.items()):
            raise KnobError("redirects: expected {\"/path/prefix\": \"LOCATION\", ...}")
        return dict(value)
    optional = name in ("max_concurrent", "credits", "result_ttl_s")
    if value is None and optional:
        return None
    kind = int if name in ("max_concurrent", "seed", "callback_attempts",
                           "other_client_requests") else float
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise KnobError(f"{name}: expected a number{' or null' if optional else ''}") from None
    if number < 0:
        raise KnobError(f"{name}: must not be negative")
    return number
