"""The lockfile: what each job's asset is, so that a build can be reproduced.

One entry per job, keys sorted, two-space JSON: a change to one job is a small
diff, and two branches that touch different jobs merge cleanly. Written
atomically (temp file in the same folder, fsync, rename).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import StoreError
from runner.store import atomic
from runner.store.cache import leftover_temps

LOCK_VERSION = 1


@dataclass(frozen=True, slots=True)
class LockEntry:
    key: str
    provider: str
    model: str
    output: str
    sha256: str
    size: int
    created_at: str
    task_id: str | None = None  # market/AI-ML task id, or ElevenLabs request-id
    result_url: str | None = None
    duration_s: float | None = None
    credits: float | None = None
    variant: int = 1
    # Narration segments: digest of the neighbours' text the take was made with.
    context: str | None = None
    # Extra files written beside the output (transcript .txt/.srt/.vtt, narration sidecar).
    companions: dict[str, str] = field(default_factory=dict)
    # A post-processed job: the provider's result behind the output ({key, sha256}).
    raw: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        # Field by field, not dataclasses.asdict: this runs for every job of every run.
        values = ((name, getattr(self, name)) for name in self.__dataclass_fields__)
        return {k: v for k, v in values if v is not None and v != {}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LockEntry:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def read_lockfile(path: Path) -> dict[str, LockEntry]:
    """The entries of a lockfile; an absent lockfile is an empty build."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path}: cannot read the lockfile ({exc}); fix or delete it") from exc
    if not isinstance(raw, dict) or raw.get("version") != LOCK_VERSION:
        raise StoreError(f"{path}: not a runner lockfile of version {LOCK_VERSION}")
    try:
        return {job_id: LockEntry.from_json(e) for job_id, e in raw.get("jobs", {}).items()}
    except TypeError as exc:
        raise StoreError(f"{path}: malformed entry ({exc})") from exc


def render_lockfile(pipeline_name: str, entries: dict[str, LockEntry]) -> str:
    body = {
        "version": LOCK_VERSION,
        "pipeline": pipeline_name,
        "jobs": {job_id: entries[job_id].to_json() for job_id in sorted(entries)},
    }
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_lockfile(path: Path, pipeline_name: str, entries: dict[str, LockEntry]) -> bool:
    """Write the lockfile if its content changed; returns whether it was written."""
    text = render_lockfile(pipeline_name, entries)
    for tmp in leftover_temps(path.parent).get(path.name, ()):
        tmp.unlink(missing_ok=True)  # a write of an earlier run cut short by a kill
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except FileNotFoundError:
        pass
    atomic.write_text(path, text)
    return True
