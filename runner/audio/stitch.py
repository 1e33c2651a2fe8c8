"""Stitching narration segments into one programme, in time linear in their number.

Segments are decoded (ffmpeg, batched) to one rate and channel count, trimmed
of leading/trailing silence, faded at their edges, and appended to a single
stream of 16-bit samples with silences between them, or a crossfade where the
gap is zero. Nothing is ever re-copied: each segment's samples are written
once, and only a crossfade's worth of the programme's tail is held back in
memory, so time is O(total samples) and memory O(one decode batch), however
many segments there are. The stream goes to a scratch file beside the output
and, at the same time, into ffmpeg's `ebur128` scanner.

Loudness: the programme is measured (ffmpeg `ebur128`: BS.1770-4 integrated,
gated, and true peak) in that same pass, then brought to its target while it is
encoded: one static gain for the whole programme, which keeps the relative levels
of its segments, with a true-peak limiter where the gain would push the peaks over
`max_true_peak_dbtp`; the encoded file is measured again and the pass redone if it
missed (runner.audio.loudness). The sidecar records asked, measured and done; a target
that cannot be met is said there (`met: false`, `problem`), and the run warns.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.audio.decode import decode_many
from runner.audio.formats import Codec, FormatSpec
from runner.audio.loudness import Measurement, Target, encode, meter_args, parse_summary
from runner.audio.pcm import fade_in, fade_out, from_le, to_le, trim_silence
from runner.audio.verify import AudioInfo, verify_audio
from runner.errors import AudioError
from runner.store import atomic

SIDECAR_VERSION = 2  # 2: loudness is measured again after encoding, and says `met`
_LOSSY = (Codec.MP3, Codec.OPUS)  # encoders that overshoot the peaks they are given


@dataclass(frozen=True, slots=True)
class StitchSettings:
    """How segments become a programme. Times in ms, levels in dBFS / LUFS / dBTP.

    `crossfade_ms` applies at seams whose gap is 0: a crossfade and a silence
    are alternatives, overlapping audio across a silence means nothing.
    """

    gap_ms: int = 250
    paragraph_gap_ms: int = 800
    crossfade_ms: int = 0
    fade_ms: int = 5
    trim_silence: bool = True
    silence_threshold_dbfs: float = -50.0
    keep_silence_ms: int = 40
    target_lufs: float | None = -16.0
    max_true_peak_dbtp: float = -1.0
    output_format: str = "mp3_44100_128"

    def __post_init__(self) -> None:
        for name in ("gap_ms", "paragraph_gap_ms", "crossfade_ms", "fade_ms", "keep_silence_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0, not {getattr(self, name)}")
        if not -120 < self.silence_threshold_dbfs < 0:
            raise ValueError("silence_threshold_dbfs must be between -120 and 0")
        if self.target_lufs is not None and not -70 < self.target_lufs < 0:
            raise ValueError("target_lufs must be between -70 and 0 LUFS")
        if not -20 <= self.max_true_peak_dbtp <= 0:
            raise ValueError("max_true_peak_dbtp must be between -20 and 0 dBTP")
        FormatSpec.parse(self.output_format)

    @property
    def output_spec(self) -> FormatSpec:
        return FormatSpec.parse(self.output_format)


@dataclass(frozen=True, slots=True)
class SegmentInput:
    segment_id: str
    path: Path
    spec: FormatSpec | None = None  # None: whatever ffmpeg can decode, unverified
    paragraph_index: int = 0


@dataclass(frozen=True, slots=True)
class StitchResult:
    path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    info: AudioInfo
    timings_s: dict[str, float]  # wall time per phase: decode+assemble, measure, export


Progress = Callable[[int, int], None]


def _to_ms(frames: int, rate: int) -> float:
    return round(frames * 1000 / rate, 3)


def _frames(ms: float, rate: int) -> int:
    return round(ms * rate / 1000)


class _Programme:
    """Appends segments to a sample stream, holding back only a crossfade's worth of tail."""

    def __init__(self, sinks: Sequence[Callable[[bytes], object]], channels: int, hold: int):
        self._sinks, self._ch, self._hold = sinks, channels, hold * channels
        self._tail = array("h")
        self.frames = 0  # frames placed so far, held tail included

    def _emit(self, samples: array[int]) -> None:
        if samples:
            data = to_le(samples)
            for sink in self._sinks:
                sink(data)

    def place(self, seg: array[int], gap: int, crossfade: int) -> tuple[int, int]:
        """Place `seg` after `gap` frames of silence, or overlapping by up to `crossfade`.

        Returns (offset in frames, crossfade frames actually used).
        """
        ch, tail = self._ch, self._tail
        overlap = min(crossfade, len(tail) // ch, len(seg) // ch) if gap == 0 else 0
        keep = len(tail) - overlap * ch
        self._emit(tail[:keep])
        if gap:
            self._emit(array("h", bytes(2 * gap * ch)))
        body = _mix(tail[keep:], seg[:overlap * ch], ch) + seg[overlap * ch:]
        split = max(len(body) - self._hold, 0)
        self._emit(body[:split])
        self._tail = body[split:]
        offset = self.frames + gap - overlap
        self.frames = offset + len(seg) // ch
        return offset, overlap

    def close(self) -> None:
        self._emit(self._tail)
        self._tail = array("h")


def _mix(out_part: array[int], in_part: array[int], ch: int) -> array[int]:
    """Linear crossfade: the outgoing tail ramps down as the incoming head ramps up."""
    n = len(in_part) // ch
    return array("h", (round(a + (b - a) * ((i // ch) + 0.5) / n)
                       for i, (a, b) in enumerate(zip(out_part, in_part))))


def _trim(seg: array[int], ch: int, rate: int, settings: StitchSettings) -> tuple[array[int], int]:
    """Trim silence at both ends keeping a margin; returns (samples, frames cut at start)."""
    if not settings.trim_silence:
        return seg, 0
    return trim_silence(seg, ch, rate, settings.silence_threshold_dbfs, settings.keep_silence_ms)


def _start_meter(rate: int, channels: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """ffmpeg's EBU R128 scanner reading the programme from a pipe as it is built."""
    args = meter_args(pcm_rate=rate, pcm_channels=channels)
    try:
        return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=log)
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg ({args[0]}): {exc}") from exc


def _finish_meter(meter: subprocess.Popen[bytes], log: IO[bytes]) -> Measurement:
    """Wait for the scanner: the programme's loudness before normalisation (pass 1)."""
    assert meter.stdin is not None
    meter.stdin.close()
    code = meter.wait()
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    if code != 0:
        raise AudioError(f"ffmpeg ebur128 failed (exit {code}): {text.strip()[-300:]}")
    return parse_summary(text)


def _assemble(segments: Sequence[SegmentInput], settings: StitchSettings, rate: int,
              channels: int, sinks: Sequence[Callable[[bytes], object]],
              progress: Progress | None) -> tuple[list[dict[str, Any]], int]:
    """Decode, trim, fade and place every segment once; the sidecar entries and total frames."""
    crossfade = _frames(settings.crossfade_ms, rate)
    fade = _frames(settings.fade_ms, rate)
    programme = _Programme(sinks, channels, hold=crossfade)
    decoded = decode_many([(s.path, s.spec) for s in segments], sample_rate=rate,
                          channels=channels)
    placed: list[dict[str, Any]] = []
    previous: SegmentInput | None = None
    for index, (segment, data) in enumerate(zip(segments, decoded, strict=True)):
        samples = from_le(data)
        source_frames = len(samples) // channels
        samples, cut = _trim(samples, channels, rate, settings)
        if fade:
            fade_in(samples, channels, fade)
            fade_out(samples, channels, fade)
        gap_ms = 0 if previous is None else (
            settings.paragraph_gap_ms if segment.paragraph_index != previous.paragraph_index
            else settings.gap_ms)
        offset, overlap = programme.place(samples, _frames(gap_ms, rate), crossfade)
        frames = len(samples) // channels
        placed.append({
            "id": segment.segment_id, "source": str(segment.path),
            "paragraph_index": segment.paragraph_index,
            "offset_ms": _to_ms(offset, rate), "duration_ms": _to_ms(frames, rate),
            "gap_before_ms": _to_ms(_frames(gap_ms, rate), rate),
            "crossfade_ms": _to_ms(overlap, rate),
            "trim_start_ms": _to_ms(cut, rate),
            "trim_end_ms": _to_ms(source_frames - cut - frames, rate),
            "source_duration_ms": _to_ms(source_frames, rate),
        })
        previous = segment
        if progress is not None:
            progress(index + 1, len(segments))
    programme.close()
    return placed, programme.frames


def stitch(
    segments: Sequence[SegmentInput],
    destination: str | Path,
    settings: StitchSettings | None = None,
    *,
    sidecar_path: str | Path | None = None,
    progress: Progress | None = None,
) -> StitchResult:
    """Stitch `segments` (in order) into `destination`; write the sidecar JSON beside it.

    The sidecar (default `<destination>.json`) lists each segment's offset and
    duration in the programme, the gap before it, the crossfade used, and how
    much silence was trimmed from its source, so word timings can be shifted.
    Inputs with a spec are verified first, so a bad one is named before any work.
    """
    settings = settings or StitchSettings()
    destination = Path(destination)
    sidecar_file = Path(sidecar_path) if sidecar_path else destination.with_name(
        destination.name + ".json")
    if not segments:
        raise AudioError(f"{destination}: nothing to stitch (no segments)")
    if len({s.segment_id for s in segments}) != len(segments):
        raise AudioError(f"{destination}: segment ids are not unique")
    out_spec = settings.output_spec
    known = [verify_audio(s.path, s.spec) for s in segments if s.spec is not None]
    rate = out_spec.sample_rate or max((i.sample_rate for i in known), default=44100)
    # pcm/ulaw/alaw outputs are mono by definition (they mirror the providers' formats).
    channels = 1 if out_spec.raw else max((i.channels for i in known), default=1)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    scratch = atomic.temp_beside(destination, ".pcm")
    meter: subprocess.Popen[bytes] | None = None
    try:
        with open(scratch, "wb") as pcm_file, tempfile.TemporaryFile() as meter_log:
            sinks: list[Callable[[bytes], object]] = [pcm_file.write]
            if settings.target_lufs is not None:
                meter = _start_meter(rate, channels, meter_log)
                assert meter.stdin is not None
                sinks.append(meter.stdin.write)
            try:
                placed, total_frames = _assemble(segments, settings, rate, channels, sinks,
                                                 progress)
            except BrokenPipeError as exc:
                raise AudioError(f"{destination}: the loudness meter (ffmpeg) exited early") \
                    from exc
            timings["assemble_s"] = time.perf_counter() - clock
            measured = _finish_meter(meter, meter_log) if meter is not None else None
            timings["measure_wait_s"] = time.perf_counter() - clock - timings["assemble_s"]
        export_start = time.perf_counter()
        target = None if settings.target_lufs is None else \
            Target(settings.target_lufs, settings.max_true_peak_dbtp)
        with atomic.staged(destination, suffix=out_spec.extension) as tmp:
            normalised = encode(scratch, rate, channels, tmp, out_spec.ffmpeg_output_args(rate),
                                target, measured=measured, lossy=out_spec.codec in _LOSSY)
            info = verify_audio(tmp, out_spec)
        timings["export_s"] = time.perf_counter() - export_start
    finally:
        if meter is not None and meter.poll() is None:
            meter.kill()
            meter.wait()
        scratch.unlink(missing_ok=True)
    loudness = normalised.to_json() if normalised is not None else {"target_lufs": None}
    sidecar = {
        "version": SIDECAR_VERSION, "output": destination.name, "format": out_spec.name,
        "sample_rate": rate, "channels": channels, "duration_ms": _to_ms(total_frames, rate),
        "loudness": loudness, "settings": dataclasses.asdict(settings), "segments": placed,
    }
    atomic.write_text(sidecar_file, json.dumps(sidecar, indent=2) + "\n")
    return StitchResult(destination, sidecar_file, sidecar, info, timings)
