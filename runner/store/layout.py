"""Where a build's files live, for a live run and for a sandbox run.

A sandbox run never touches the live build: its outputs, lockfile, journal and
cache sit in `<output_dir>.sandbox/`. Cache keys carry the target too, so a
sandbox result can never satisfy a live job even if files were copied across.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol


class Manifest(Protocol):
    """What a layout needs of a pipeline: its file and the output folder it names."""

    @property
    def path(self) -> Path: ...

    @property
    def output_dir(self) -> Path: ...

# The build's own folder inside output_dir: journal and content cache. No output
# may be written into it (runner.manifest.checks).
STATE_DIR = ".runner"


class Target(StrEnum):
    LIVE = "live"
    SANDBOX = "sandbox"


@dataclass(frozen=True, slots=True)
class BuildLayout:
    target: Target
    output_dir: Path
    lockfile: Path
    state_dir: Path  # runner's own files: journal and content-addressed cache

    @property
    def journal(self) -> Path:
        return self.state_dir / "journal.sqlite"

    def cache_dir(self, env: Mapping[str, str]) -> Path:
        """The content cache: `RUNNER_CACHE_DIR` (shared between checkouts) or the build's own."""
        return Path(env.get("RUNNER_CACHE_DIR") or self.state_dir / "cache")

    def output_path(self, relative: str) -> Path:
        return self.output_dir / relative


def layout_for(pipeline: Manifest, target: Target) -> BuildLayout:
    stem = pipeline.path.name.removesuffix(".yaml").removesuffix(".yml")
    if target is Target.LIVE:
        output_dir = pipeline.output_dir
        lockfile = pipeline.path.with_name(f"{stem}.lock.json")
    else:
        output_dir = pipeline.output_dir.with_name(pipeline.output_dir.name + ".sandbox")
        lockfile = output_dir / f"{stem}.lock.json"
    return BuildLayout(target, output_dir, lockfile, output_dir / STATE_DIR)


def has_build(layout: BuildLayout) -> bool:
    """Has a run of this target ever recorded anything? (Reading never creates either.)"""
    return layout.lockfile.exists() or layout.journal.exists()


def layout_to_read(pipeline: Manifest, sandbox: bool) -> tuple[BuildLayout, str | None]:
    """The build a reading command (plan, status, report, clean) reads, and a sentence
    when it is most likely the wrong one: no live build, but a sandbox build, exists."""
    layout = layout_for(pipeline, Target.SANDBOX if sandbox else Target.LIVE)
    if sandbox or has_build(layout):
        return layout, None
    other = layout_for(pipeline, Target.SANDBOX)
    if not has_build(other):
        return layout, None
    return layout, (f"no live build of {os.path.relpath(pipeline.path)} yet "
                    f"({os.path.relpath(layout.output_dir)}); a sandbox build exists "
                    f"({os.path.relpath(other.output_dir)}): add --sandbox to read it")


def describe(layout: BuildLayout) -> str:
    """Which build a command reads, in one line."""
    return (f"{layout.target.value} build: {os.path.relpath(layout.output_dir)} "
            f"(lockfile {os.path.relpath(layout.lockfile)})")
