"""What the adapters share: reading answers, Retry-After, and keeping the key out of messages.

Each adapter classifies its own provider's answers (market.py, aimlapi.py,
elevenlabs.py); this module holds only the pieces that are the same everywhere.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from runner.errors import RequestRejected
from runner.providers.http import USER_AGENT

Clock = Callable[[], float]

# How much of an unreadable answer (an HTML error page, say) goes into a message.
_EXCERPT_CHARS = 160


def ua_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """A browser-like User-Agent unless the client already sends a deliberate one.

    `runner.providers.http.make_client` sets it; a bare `httpx.AsyncClient` would send
    `python-httpx/...`, which Cloudflare answers with a 403 "error code: 1010"
    on the kie.ai hosts (docs/providers.md, "Market API: hosts and auth").
    """
    agent = client.headers.get("user-agent", "")
    return {} if agent and not agent.startswith("python-httpx/") else {"User-Agent": USER_AGENT}


def bearer(api_key: str) -> dict[str, str]:
    """The Bearer header; none for a missing key, which the provider answers with a 401
    (an empty `Bearer ` is not even a legal header value)."""
    key = api_key.strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def read_json(response: httpx.Response) -> Any | None:
    """The answer's JSON, or None when it is not JSON (an HTML error page, an empty body)."""
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def message_of(body: Mapping[str, Any]) -> str:
    """The envelope's message: market model pages say `msg`, other pages `message`."""
    for key in ("msg", "message"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, list) and value:  # NestJS validation: a list of sentences
            return "; ".join(str(item) for item in value)
    return ""


def excerpt(response: httpx.Response) -> str:
    """A one-line excerpt of a non-JSON answer, for messages."""
    text = " ".join(response.content[:2048].decode("utf-8", "replace").split())
    return text[:_EXCERPT_CHARS] + ("…" if len(text) > _EXCERPT_CHARS else "")


def cloudflare_block(response: httpx.Response, *, provider: str, job_id: str | None = None,
                     task_id: str | None = None) -> RequestRejected | None:
    """Cloudflare's bare 403 "error code: 1010" (a banned User-Agent), which is not an auth
    failure: the key was never looked at (docs/providers.md, "Market API: hosts and auth")."""
    if response.status_code == 403 and b"error code: 1010" in response.content[:512]:
        return RequestRejected(
            "Cloudflare refused the request because of its User-Agent (HTTP 403 \"error code: "
            "1010\"); the API key was not checked. Send a browser-like User-Agent, as "
            "runner.providers.http.make_client does", provider=provider, job_id=job_id, task_id=task_id,
            status=403, code="1010")
    return None


def retry_after_s(response: httpx.Response, clock: Clock = time.time) -> float | None:
    """`Retry-After` (or ElevenLabs' `retry-after-ms`) in seconds: a number or an HTTP date."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        seconds = _number(millis)
        if seconds is not None:
            return max(0.0, seconds / 1000)
    value = response.headers.get("retry-after")
    if not value:
        return None
    seconds = _number(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - clock())


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def number(value: Any) -> float | None:
    """A JSON number (or numeric string) as float; None for anything else, bools included."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _number(value)
    return None


def redact(text: str, secret: str) -> str:
    """`text` with the API key blanked out, should a provider ever echo it back.

    Keys shorter than 8 characters are left alone: blanking them would mangle
    ordinary words, and no provider issues keys that short.
    """
    return text.replace(secret, "***") if len(secret) >= 8 else text
