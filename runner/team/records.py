"""The remote cache's layout: a small record per request over content-addressed bytes.

    <prefix>/cas/sha256/<digest>      a result's bytes, named by their sha256
    <prefix>/ac/v1/<request key>      which result answers that request: its digest,
                                      size, format, the provider and task that made it,
                                      when; results up to INLINE_MAX_BYTES also inline

The two halves of Bazel's remote cache (action cache over a content-addressed
store). The bytes are always written first and the record last, create-only,
so a record that exists names bytes that were complete when it was made; a
reader still checks the digest, because objects can be damaged or deleted
afterwards. The request key is the plan's cache key (runner.plan.plan): the same
request asked on any machine has the same key, and sandbox keys never equal
live ones.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from runner import __version__
from runner.plan.plan import PlannedJob
from runner.store.journal import AssetRow

LAYOUT = "v1"
RECORDS = f"ac/{LAYOUT}/"
BLOBS = "cas/sha256/"
# Results this small travel inside their record too: a lookup is one request, not
# two. Transcripts and short effects fit; base64 makes the record a third larger.
INLINE_MAX_BYTES = 32 * 1024
# A record larger than this is damaged (an inline result plus metadata stays far below).
RECORD_MAX_BYTES = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_EXT = re.compile(r"[a-z0-9]{1,10}\Z")


def record_path(key: str) -> str:
    return RECORDS + key


def blob_path(sha256: str) -> str:
    return BLOBS + sha256


def is_digest(text: str) -> bool:
    return _DIGEST.match(text) is not None


class RecordInvalid(ValueError):
    """A record that cannot be read: damaged, or not a record of this layout."""


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def from_iso(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp()


@dataclass(frozen=True, slots=True)
class Record:
    """Which result answers one request, as the team first recorded it."""

    key: str
    sha256: str
    size: int
    ext: str
    created_at: str  # when the take was made (ISO, UTC), kept by every machine that adopts it
    recorded_at: str
    format: str = ""
    provider: str = ""
    model: str = ""
    job: str = ""  # the job's id where it was made (for people; ids differ between manifests)
    task_id: str | None = None
    result_url: str | None = None
    duration_s: float | None = None
    credits: float | None = None
    payload: dict[str, Any] | None = None  # the provider's extras (alignment) or a stitch's sidecar
    inline: bytes | None = None

    @classmethod
    def of(cls, asset: AssetRow, *, job: str, provider: str, model: str, fmt: str,
           data: bytes | None, now_s: float) -> Record:
        """The record of an asset made by `job`; `data` is inlined if small enough."""
        return cls(
            key=asset.key, sha256=asset.sha256, size=asset.size, ext=asset.ext,
            created_at=iso(asset.created_at), recorded_at=iso(now_s), format=fmt,
            provider=provider, model=model, job=job, task_id=asset.task_id,
            result_url=asset.result_url, duration_s=asset.duration_s, credits=asset.credits,
            payload=asset.payload,
            inline=data if data is not None and len(data) <= INLINE_MAX_BYTES else None)

    @classmethod
    def of_job(cls, pj: PlannedJob, asset: AssetRow, data: bytes | None,
               now_s: float) -> Record:
        return cls.of(asset, job=pj.job.id, provider=pj.job.provider, model=pj.job.model.id,
                      fmt=pj.job.format, data=data, now_s=now_s)

    def to_bytes(self) -> bytes:
        body: dict[str, Any] = {
            "layout": LAYOUT, "runner": __version__, "key": self.key, "sha256": self.sha256,
            "size": self.size, "ext": self.ext, "format": self.format,
            "provider": self.provider, "model": self.model, "job": self.job,
            "task_id": self.task_id, "result_url": self.result_url,
            "duration_s": self.duration_s, "credits": self.credits, "payload": self.payload,
            "created_at": self.created_at, "recorded_at": self.recorded_at,
        }
        if self.inline is not None:
            body["inline"] = base64.b64encode(self.inline).decode("ascii")
        # Not sort_keys: a payload's keys keep their order, so that a stitch's sidecar
        # written from a restored record is byte for byte the one its maker wrote.
        return json.dumps({k: v for k, v in body.items() if v is not None},
                          separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, key: str) -> Record:
        """A record read back; RecordInvalid if it is damaged or names another request."""
        try:
            body = json.loads(data)
            if not isinstance(body, dict) or body.get("layout") != LAYOUT:
                raise RecordInvalid(f"not a record of layout {LAYOUT}")
            record = cls(
                key=str(body["key"]), sha256=str(body["sha256"]), size=int(body["size"]),
                ext=str(body["ext"]), created_at=str(body["created_at"]),
                recorded_at=str(body["recorded_at"]), format=str(body.get("format", "")),
                provider=str(body.get("provider", "")), model=str(body.get("model", "")),
                job=str(body.get("job", "")), task_id=_opt_str(body.get("task_id")),
                result_url=_opt_str(body.get("result_url")),
                duration_s=_opt_float(body.get("duration_s")),
                credits=_opt_float(body.get("credits")),
                payload=body.get("payload") if isinstance(body.get("payload"), dict) else None,
                inline=base64.b64decode(body["inline"], validate=True)
                if "inline" in body else None)
            from_iso(record.created_at)
        except RecordInvalid:
            raise
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise RecordInvalid(f"unreadable ({type(exc).__name__}: {exc})") from exc
        if record.key != key:
            raise RecordInvalid(f"it is the record of another request ({record.key[:12]})")
        if not is_digest(record.sha256) or record.size < 0 or not _EXT.match(record.ext):
            raise RecordInvalid("its digest, size or extension is malformed")
        if record.inline is not None and not matches(record.inline, record.sha256, record.size):
            raise RecordInvalid("its inline bytes do not match its digest")
        return record

    def asset_fields(self) -> dict[str, Any]:
        """Keyword arguments of `Journal.record_asset` for this take."""
        return {"sha256": self.sha256, "size": self.size, "ext": self.ext,
                "duration_s": self.duration_s, "credits": self.credits,
                "task_id": self.task_id, "result_url": self.result_url,
                "payload": self.payload, "created_at": from_iso(self.created_at)}


def matches(data: bytes, sha256: str, size: int) -> bool:
    return len(data) == size and hashlib.sha256(data).hexdigest() == sha256


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)
