"""What every step of expanding templates into jobs shares.

The context that collects problems with their lines, plain-data helpers (copy,
merge) and the file extension of a provider format. Kept apart from expand.py
so that programmes.py (narrations and dialogues) can use them without a loop.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from runner.errors import Problem
from runner.manifest.types import Pipeline
from runner.manifest.yaml_source import DocPath


@functools.cache
def extension_for(fmt: str) -> str:
    """File extension (no dot) the runner writes for a provider format: raw PCM/G.711
    answers are wrapped in WAV, transcripts are JSON."""
    if fmt == "json":
        return "json"
    from runner.audio.formats import FormatSpec

    return FormatSpec.parse(fmt).extension.lstrip(".")


@dataclass
class ExpansionContext:
    """One manifest's expansion: its pipeline, its data, and the problems found so far."""

    pipeline: Pipeline
    data: dict[str, Any]
    problems: list[Problem]
    providers: dict[str, str] = field(default_factory=dict)  # model id -> default account
    model_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)  # by model id

    def problem(self, path: DocPath, message: str, job_id: str | None = None,
                key: bool = False) -> None:
        self.problems.append(self.pipeline.document.problem(path, message, key=key,
                                                            job_id=job_id))


def plain_copy(value: Any) -> Any:
    """A deep copy of plain YAML data (dicts, lists, scalars): much cheaper than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: plain_copy(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [plain_copy(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


def merged(defaults: Any, own: Any) -> Any:
    """`own` over `defaults`, recursively for mappings; lists and scalars replace."""
    if isinstance(defaults, dict) and isinstance(own, dict):
        out = dict(defaults)
        for key, value in own.items():
            out[key] = merged(defaults.get(key), value) if key in defaults else value
        return out
    return plain_copy(own)
