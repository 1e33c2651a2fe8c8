"""Per-job post-processing for game assets, as the manifest declares it.

    postprocess:
      trim_silence: true              # or {threshold_dbfs: -50, keep_ms: 40}
      loop_crossfade_ms: 120          # a seamless loop: the tail crossfaded into the head
      fade_in_ms: 5
      fade_out_ms: 80
      normalize: {lufs: -18, true_peak: -1}
      convert: {format: ogg, sample_rate: 48000, channels: 2}

Steps run in that order, whatever order the manifest lists them in: the file is
decoded at the rate and channel count `convert` asks for (so loudness is
measured as it will be heard), trimmed, looped, faded, normalised (two-pass,
true-peak limited: runner.loudness) and encoded.

The steps are part of the job's cache key, but not of the request's: a job with
post-processing has two keys, `raw_key` (what was asked of the provider, as
for any job) and its own key (the raw key and the steps). The provider's result
stays in the cache under the raw key, so changing a step reprocesses that take
and never buys the request again (runner/postprocess_run.py does the work).

This module is the declaration only (parsing, key, output extension): it is
imported while a manifest loads, so it imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.loudness import Target

if TYPE_CHECKING:
    from runner.models import ModelInfo

POST_VERSION = 1  # part of every processed key: a change of the processing changes it
CONVERT_FORMATS = ("ogg", "wav", "mp3")
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True, slots=True)
class Convert:
    """The output's container/codec, sample rate and channels (None: as the provider's)."""

    format: str | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass(frozen=True, slots=True)
class PostProcess:
    trim_silence: bool = False
    silence_threshold_dbfs: float = -50.0
    keep_silence_ms: int = 40
    loop_crossfade_ms: int = 0
    fade_in_ms: int = 0
    fade_out_ms: int = 0
    normalize: Target | None = None
    convert: Convert = Convert()

    def key_document(self) -> dict[str, Any]:
        """Every step with its value, defaults included: what the processed key hashes."""
        return {
            "v": POST_VERSION,
            "trim_silence": [self.silence_threshold_dbfs, self.keep_silence_ms]
            if self.trim_silence else None,
            "loop_crossfade_ms": self.loop_crossfade_ms,
            "fade_in_ms": self.fade_in_ms, "fade_out_ms": self.fade_out_ms,
            "normalize": [self.normalize.lufs, self.normalize.true_peak_dbtp]
            if self.normalize else None,
            "convert": [self.convert.format, self.convert.sample_rate, self.convert.channels],
        }

    def extension(self, provider_extension: str) -> str:
        """The output's extension: the converted format's, or the provider's."""
        return self.convert.format or provider_extension

    def describe(self) -> str:
        """One line for people: `trim, loop 120 ms, fade 5/80 ms, -18 LUFS, ogg 48 kHz`."""
        parts = []
        if self.trim_silence:
            parts.append(f"trim silence under {self.silence_threshold_dbfs:g} dBFS")
        if self.loop_crossfade_ms:
            parts.append(f"loop crossfade {self.loop_crossfade_ms} ms")
        if self.fade_in_ms or self.fade_out_ms:
            parts.append(f"fade in {self.fade_in_ms} ms, out {self.fade_out_ms} ms")
        if self.normalize:
            parts.append(f"normalize to {self.normalize.lufs:g} LUFS, true peak "
                         f"<= {self.normalize.true_peak_dbtp:g} dBTP")
        convert = self.convert
        if convert.format or convert.sample_rate or convert.channels:
            what = [convert.format or "same format"]
            if convert.sample_rate:
                what.append(f"{convert.sample_rate} Hz")
            if convert.channels:
                what.append("mono" if convert.channels == 1 else f"{convert.channels} channels")
            parts.append("convert to " + " ".join(what))
        return ", ".join(parts) or "re-encode only"


def processed_key(raw_key: str, post: PostProcess) -> str:
    """The key of the processed asset: the provider's take (its raw key) and the steps."""
    doc = {"raw": raw_key, "post": post.key_document()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"))
                          .encode("utf-8")).hexdigest()


def parse(raw: dict[str, Any]) -> PostProcess:
    """A `postprocess:` mapping that the pipeline schema has accepted."""
    trim = raw.get("trim_silence", False)
    trim_options = trim if isinstance(trim, dict) else {}
    normalize = raw.get("normalize")
    convert = raw.get("convert") or {}
    return PostProcess(
        trim_silence=bool(trim),
        silence_threshold_dbfs=float(trim_options.get("threshold_dbfs", -50.0)),
        keep_silence_ms=int(trim_options.get("keep_ms", 40)),
        loop_crossfade_ms=int(raw.get("loop_crossfade_ms", 0)),
        fade_in_ms=int(raw.get("fade_in_ms", 0)),
        fade_out_ms=int(raw.get("fade_out_ms", 0)),
        normalize=Target(float(normalize["lufs"]), float(normalize.get("true_peak", -1.0)))
        if isinstance(normalize, dict) and "lufs" in normalize else None,
        convert=Convert(convert.get("format"), convert.get("sample_rate"),
                        convert.get("channels")),
    )


def declared(template: dict[str, Any], defaults: dict[str, Any], model: ModelInfo,
             programme: bool) -> tuple[PostProcess | None, str | None]:
    """The job's post-processing (its own `postprocess` over `defaults.postprocess`), and
    a problem when it asks for what cannot be done. Defaults apply only where they can:
    a narration, a dialogue or a transcript is left alone by them."""
    own = template.get("postprocess")
    shared = defaults.get("postprocess")
    if own is not None and (programme or not model.makes_audio):
        what = "a narration or dialogue (set loudness_lufs on it instead)" if programme \
            else f"{model.id}, which makes {model.kind.value.replace('_', ' ')}"
        return None, f"postprocess is for single audio assets, not for {what}"
    if programme or not model.makes_audio:
        return None, None
    merged: dict[str, Any] = {}
    for source in (shared, own):
        if isinstance(source, dict):
            for name, value in source.items():
                if isinstance(value, dict) and isinstance(merged.get(name), dict):
                    merged[name] = {**merged[name], **value}
                else:
                    merged[name] = value
    if not merged:
        return None, None
    try:
        return parse(merged), None
    except (TypeError, ValueError, KeyError):
        return None, None  # the structure check has reported the malformed value


def raw_of(payload: Any) -> dict[str, str] | None:
    """The provider's result behind a processed asset, from its journal payload (what the
    lockfile keeps: the raw key and sha256); None for any other asset."""
    raw = payload.get("raw") if isinstance(payload, dict) else None
    if not isinstance(raw, dict) or not raw.get("key") or not raw.get("sha256"):
        return None
    return {"key": str(raw["key"]), "sha256": str(raw["sha256"])}
