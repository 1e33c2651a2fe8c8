"""Helpers for end-to-end runs against the sandbox: manifests, runs, checks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import httpx

from runner.audio.decode import decode
from runner.audio.formats import FormatSpec
from runner.audio.verify import verify_audio
from runner.cli.run import RunOptions, run_pipeline
from runner.engine.retry import RetryPolicy

# Fast polling: the sandbox answers at once (its clock is the test's), so the
# runner need not wait the providers' advised 2 s before its first look.
FAST = """
providers:
  kie:
    poll: {initial_interval_s: 0.02, max_interval_s: 0.05}
    limits: {requests_per_window: 200, window_s: 1, polls_per_s: 500}
  apikley:
    poll: {initial_interval_s: 0.02, max_interval_s: 0.05}
    limits: {requests_per_window: 200, window_s: 1, polls_per_s: 500}
  aimlapi:
    poll: {initial_interval_s: 0.02, max_interval_s: 0.05}
    limits: {requests_per_window: 200, window_s: 1, polls_per_s: 500}
"""
# Retries without the real backoff's seconds: the decisions are the same.
QUICK_RETRIES = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)


def write_manifest(folder: Path, jobs: str, *, extra: str = "", name: str = "t") -> Path:
    manifest = folder / f"{name}.yaml"
    manifest.write_text(f"version: 1\nname: {name}\noutput_dir: out\n"
                        + textwrap.dedent(FAST).strip() + "\n" + textwrap.dedent(extra).strip()
                        + "\njobs:\n" + textwrap.indent(textwrap.dedent(jobs).strip(), "  ")
                        + "\n", encoding="utf-8")
    return manifest


def run(manifest: Path, sandbox_url: str, **options: Any) -> tuple[int, Any, Any, Any]:
    options.setdefault("retry_policy", QUICK_RETRIES)
    return run_pipeline(manifest, RunOptions(sandbox_url=sandbox_url, grace_s=2.0, **options))


def stats(sandbox_url: str) -> dict[str, Any]:
    return httpx.get(f"{sandbox_url}/_sandbox/stats").json()  # type: ignore[no-any-return]


def provider_requests(sandbox_url: str) -> dict[str, Any]:
    """Requests per endpoint and status, leaving out the test's own /_sandbox calls."""
    return {endpoint: codes for endpoint, codes in stats(sandbox_url)["requests"].items()
            if "/_sandbox/" not in endpoint}


def created(sandbox_url: str) -> int:
    """Tasks (and synchronous generations) the sandbox created, all models."""
    return int(stats(sandbox_url)["tasks"]["total"])


def lockfile(manifest: Path) -> dict[str, Any]:
    out = manifest.parent / "out.sandbox" / f"{manifest.stem}.lock.json"
    return json.loads(out.read_text())["jobs"]  # type: ignore[no-any-return]


def output(manifest: Path, relative: str) -> Path:
    return manifest.parent / "out.sandbox" / relative


def assert_audio(path: Path, fmt: str, min_s: float = 0.2) -> float:
    """The file is the asked-for format and ffmpeg decodes it to at least `min_s`."""
    spec = FormatSpec.parse(fmt)
    info = verify_audio(path, spec)
    seconds = len(decode(path, spec)) / 1000.0
    assert seconds >= min_s, (path, seconds)
    assert abs(seconds - info.duration_s) < 0.1, (path, seconds, info.duration_s)
    return seconds
