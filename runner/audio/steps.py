"""Post-processing steps as data: what to do to a take, its key and its description.

Declared in a manifest (runner.manifest.postprocess reads them) and carried out
by runner.audio.process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from runner.audio.loudness import Target

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
