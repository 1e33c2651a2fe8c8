"""Carrying out post-processing steps on a take: decode → trim → loop crossfade →
fades → normalise → encode (`process`). The engine's step around it, which finds
or buys the provider's take first, is runner.engine.postprocess.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.audio.decode import decode_pcm
from runner.audio.formats import FormatSpec
from runner.audio.loudness import LoudnessResult, encode
from runner.audio.pcm import (
    fade_in,
    fade_out,
    frames_of,
    from_le,
    loop_crossfade,
    to_le,
    trim_silence,
)
from runner.audio.steps import PostProcess
from runner.audio.verify import sniff, verify_audio
from runner.errors import AudioError
from runner.store import atomic

# Encoders of `convert.format`: fixed settings, so a take always processes to the same bytes.
_ENCODERS = {
    "ogg": (["-c:a", "libvorbis", "-q:a", "6", "-f", "ogg"], "ogg-vorbis", True),
    "wav": (["-c:a", "pcm_s16le", "-f", "wav"], "wav", False),
    "mp3": (["-c:a", "libmp3lame", "-b:a", "192k", "-f", "mp3"], "mp3", True),
}


@dataclass(frozen=True, slots=True)
class Processed:
    duration_s: float
    sample_rate: int
    channels: int
    trimmed_ms: tuple[float, float]  # silence cut at the start and at the end
    loudness: LoudnessResult | None

    def to_json(self, post: PostProcess) -> dict[str, Any]:
        return {"steps": post.describe(), "duration_s": round(self.duration_s, 3),
                "sample_rate": self.sample_rate, "channels": self.channels,
                "trimmed_ms": list(self.trimmed_ms),
                "loudness": self.loudness.to_json() if self.loudness else None}


def _output_args(post: PostProcess, spec: FormatSpec | None, rate: int) -> tuple[list[str],
                                                                                   str, bool]:
    """Encoder arguments, the container `sniff` must then find, and whether it is lossy."""
    if post.convert.format is not None:
        args, kind, lossy = _ENCODERS[post.convert.format]
        return [*args[:-2], "-ar", str(rate), *args[-2:]], kind, lossy
    if spec is None or spec.raw or spec.name == "wav":
        # Bare provider samples (pcm, G.711) are written as 16-bit WAV once processed.
        return ["-c:a", "pcm_s16le", "-ar", str(rate), "-f", "wav"], "wav", False
    kind = "ogg-opus" if spec.extension == ".opus" else "mp3"
    return spec.ffmpeg_output_args(rate), kind, True


def process(source: Path, spec: FormatSpec | None, post: PostProcess,
            destination: Path) -> Processed:
    """Apply `post` to the audio file `source`, writing `destination` (atomically)."""
    info = verify_audio(source, spec) if spec is not None else None
    convert = post.convert
    rate = convert.sample_rate or (spec.sample_rate if spec and spec.sample_rate else None) \
        or (info.sample_rate if info else 44100)
    channels = convert.channels or (info.channels if info else 1)
    if convert.format is None and spec is not None and spec.raw:
        channels = 1
    pcm = decode_pcm(source, spec, sample_rate=rate, channels=channels)
    samples = from_le(pcm.data)
    total = len(samples) // channels
    cut_start = 0
    if post.trim_silence:
        samples, cut_start = trim_silence(samples, channels, rate, post.silence_threshold_dbfs,
                                          post.keep_silence_ms)
    cut_end = total - cut_start - len(samples) // channels
    if post.loop_crossfade_ms:
        samples = loop_crossfade(samples, channels, frames_of(post.loop_crossfade_ms, rate))
    if post.fade_in_ms:
        fade_in(samples, channels, frames_of(post.fade_in_ms, rate))
    if post.fade_out_ms:
        fade_out(samples, channels, frames_of(post.fade_out_ms, rate))
    args, kind, lossy = _output_args(post, spec, rate)
    scratch = atomic.temp_beside(destination, ".pcm")
    try:
        scratch.write_bytes(to_le(samples))
        with atomic.staged(destination, suffix=".part") as tmp:
            loudness = encode(scratch, rate, channels, tmp, args, post.normalize, lossy=lossy)
            found = sniff(tmp)
            if found.kind != kind:
                raise AudioError(f"{destination.name}: post-processing wrote "
                                 f"{found.description}, not {kind}")
    finally:
        scratch.unlink(missing_ok=True)
    return Processed(len(samples) // channels / rate, rate, channels,
                     (round(cut_start * 1000 / rate, 3), round(cut_end * 1000 / rate, 3)),
                     loudness)
