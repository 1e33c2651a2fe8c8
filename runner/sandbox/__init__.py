"""runner.sandbox: a local emulator of every provider API `runner` talks to.

Importing this package is cheap (standard library only): `create_app`,
`SandboxServer` and `SandboxProcess` load Starlette and uvicorn on first use.

    from runner.sandbox import SandboxConfig, SandboxServer, provider_urls
    with SandboxServer(SandboxConfig(latency=parse_latency("2"))) as url:
        urls = provider_urls(url)

    config.py      every behaviour knob and its syntax; quirks.py the documented oddities
    server.py      running it: in a thread (tests) or a child process (`run --sandbox`);
                   connections.py the open connections a fault can cut
    cli.py         `runner sandbox serve`
    app.py         the ASGI app: every emulated API on one router; web.py their plumbing
    market.py      the market jobs API (kie.ai, apikley); callbacks.py its callbacks
    uploads.py     the market's File Upload API and the result-file host
    aimlapi.py     AI/ML API Stable Audio
    elevenlabs.py  ElevenLabs direct; streaming.py its streamed answers
    control.py     introspection under `/_sandbox/`; openapi.py its own OpenAPI document
    redirects.py   the `redirects` knob
    validate.py    request validation as the real services do it
    state.py       what a running sandbox remembers; media.py the files it serves
    transcribe.py  speech-to-text of its own files and of any other audio
    speech.py      intelligible speech (espeak-ng); synth.py sound effects and music
    clips.py       cached, pre-encoded clips; render.py plans of clips to file bytes
    formats.py     output formats as providers name them; containers.py MP3/Ogg/WAV bytes
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.sandbox.config import (
    FAULT_KINDS,
    KnobError,
    Latency,
    RateLimit,
    SandboxConfig,
    parse_faults,
    parse_latency,
    parse_rate_limit,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from runner.sandbox.server import SandboxProcess, SandboxServer

__all__ = [
    "FAULT_KINDS", "KnobError", "Latency", "RateLimit", "SandboxConfig", "SandboxProcess",
    "SandboxServer", "create_app", "discover_provider_urls", "parse_faults", "parse_latency",
    "parse_rate_limit", "provider_urls",
]


def create_app(config: SandboxConfig | None = None) -> Starlette:
    from runner.sandbox.app import create_app as _create_app

    return _create_app(config)


def provider_urls(base_url: str, upload_base_url: str | None = None) -> dict[str, dict[str, str]]:
    """The base URLs a client uses for each provider when talking to the sandbox at `base_url`.

    kie's uploads go to `upload_base_url`, the sandbox's upload listener (kie's File
    Upload API has a host of its own); without one, to `base_url`. kie and apikley are
    distinct accounts in one sandbox: apikley lives under `/apikley`, its uploads under
    `/apikley/file-upload` (the real upload base ends in `/file-upload`).
    """
    root = base_url.rstrip("/")
    return {
        "kie": {"base_url": root, "upload_base_url": (upload_base_url or root).rstrip("/")},
        "apikley": {"base_url": f"{root}/apikley", "upload_base_url": f"{root}/apikley/file-upload"},
        "aimlapi": {"base_url": root},
        "elevenlabs": {"base_url": root},
    }


def discover_provider_urls(base_url: str, timeout_s: float = 5.0) -> dict[str, dict[str, str]]:
    """`provider_urls` for a sandbox that is already running: its upload listener is asked
    of `GET /_sandbox/hosts`. A sandbox that does not say (an older one) gets none."""
    import json
    import urllib.request

    root = base_url.rstrip("/")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    try:
        with direct.open(f"{root}/_sandbox/hosts", timeout=timeout_s) as answer:
            upload = json.load(answer).get("upload_base_url")
    except (OSError, ValueError, AttributeError):
        upload = None
    return provider_urls(root, upload if isinstance(upload, str) and upload else None)


def __getattr__(name: str) -> Any:
    if name in ("SandboxServer", "SandboxProcess"):
        from runner.sandbox import server

        return getattr(server, name)
    raise AttributeError(name)
