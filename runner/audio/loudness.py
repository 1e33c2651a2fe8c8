"""Loudness: measuring it (EBU R128, ITU BS.1770-4) and bringing audio to a target.

Measuring is ffmpeg's `ebur128` filter with `peak=true`: gated integrated
loudness (LUFS), loudness range (LU) and true peak (dBTP, the peak of the 4x
oversampled signal, which is what a player's converter meets).

Normalising (`encode`) is two-pass, with a true-peak limiter:

    pass 1  the input is measured (by the caller while it assembled it, or here)
    pass 2  one static gain (target - measured) is applied while encoding; where
            that gain would push the true peak over the ceiling, a look-ahead
            limiter (`alimiter`) running at 4x the sample rate holds the peaks
            down, so it limits the inter-sample peaks BS.1770 measures, not only
            the sample peaks; its delay is compensated, so nothing moves in time
    check   the encoded file is measured again: limiting takes off a little
            loudness and lossy encoders overshoot the peaks, so a pass that is
            more than 0.3 LU off (or over the peak) is redone with the gain
            corrected by what was measured and the ceiling lowered by the
            overshoot, at most `MAX_PASSES` times

One gain for a whole programme keeps the relative levels of its parts, unlike
per-segment normalisation or `loudnorm`'s dynamic mode (an AGC, and, under 3 s,
a plain gain capped by the peak, which misses the target on short effects).
Nothing here needs numpy: ffmpeg does the signal work.

A target that cannot be met (silence, a clip too short to gate, or more than
`MAX_LIMITING_DB` of limiting needed) is reported in `LoudnessResult.problem`;
callers turn it into a warning, never into silence.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.audio.ffmpeg import ffmpeg_exe
from runner.errors import AudioError

TOLERANCE_LU = 1.0  # a target is met within ±1 LU (EBU R128 s1's tolerance for live programmes)
AIM_LU = 0.3  # a pass further off than this is redone
MAX_PASSES = 3  # encodes, each measured
MAX_SEARCH = 5  # limiter runs (measured, not encoded) to find the gain of one encode
SEARCH_LU = 0.2
MAX_LIMITING_DB = 10.0  # beyond this the limiter would flatten the sound: say so instead
OVERSAMPLE = 4  # the limiter's rate, as BS.1770's true-peak meter oversamples
_SILENT_LUFS = -69.9  # ebur128 reports the absolute gate, -70 LUFS, when nothing passes it
METHOD = ("EBU R128 two-pass: ffmpeg ebur128 (BS.1770-4, gated, true peak) measures; one static "
          "gain, with a look-ahead limiter at 4x the sample rate where the peaks need it; the "
          "encoded file is measured again")


@dataclass(frozen=True, slots=True)
class Measurement:
    """Integrated loudness, loudness range and true peak; None where there is nothing to
    measure (digital silence, or too little sound for the 400 ms gating blocks)."""

    integrated_lufs: float | None
    true_peak_dbtp: float | None
    range_lu: float | None = None

    def to_json(self) -> dict[str, float | None]:
        return {"lufs": self.integrated_lufs, "true_peak_dbtp": self.true_peak_dbtp,
                "lra_lu": self.range_lu}


@dataclass(frozen=True, slots=True)
class Target:
    """Integrated loudness to reach, and the true peak not to exceed."""

    lufs: float
    true_peak_dbtp: float = -1.0

    def __post_init__(self) -> None:
        if not -70 < self.lufs < 0:
            raise ValueError(f"a loudness target must be between -70 and 0 LUFS, not {self.lufs}")
        if not -20 <= self.true_peak_dbtp <= 0:
            raise ValueError("a true-peak ceiling must be between -20 and 0 dBTP, "
                             f"not {self.true_peak_dbtp}")


@dataclass(frozen=True, slots=True)
class LoudnessResult:
    """What normalisation asked, found and did; `met` is what a person checks."""

    target: Target
    before: Measurement
    after: Measurement
    gain_db: float
    limiting_db: float  # how far the limiter pulls the highest peak down (0: none)
    passes: int
    problem: str | None = None  # why the target was missed; None when met
    ceiling_dbtp: float | None = None  # the limiter's ceiling in the pass kept (None: no limiter)

    @property
    def met(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {"method": METHOD, "target_lufs": self.target.lufs,
                "max_true_peak_dbtp": self.target.true_peak_dbtp,
                "input_lufs": self.before.integrated_lufs,
                "input_true_peak_dbtp": self.before.true_peak_dbtp,
                "measured_lufs": self.after.integrated_lufs,
                "measured_true_peak_dbtp": self.after.true_peak_dbtp,
                "measured_lra_lu": self.after.range_lu,
                "gain_db": round(self.gain_db, 2), "limiting_db": round(self.limiting_db, 2),
                "passes": self.passes, "met": self.met, "problem": self.problem}


def describe_miss(result: dict[str, Any]) -> str | None:
    """The sentence for a missed target, from a `LoudnessResult.to_json()` (sidecars and
    asset payloads keep that form); None when it was met or never asked."""
    if not isinstance(result, dict) or result.get("met", True) or "target_lufs" not in result:
        return None
    return str(result.get("problem") or "the loudness target was missed")


_FLOAT = r"(-?[\d.]+|-?inf|nan)"


def parse_summary(text: str) -> Measurement:
    """The measurement in the summary ffmpeg's ebur128 filter prints at the end."""
    summary = text[text.rfind("Summary:"):]
    loud = re.search(rf"I:\s+{_FLOAT} LUFS", summary)
    peak = re.search(rf"Peak:\s+{_FLOAT} dBFS", summary)
    lra = re.search(rf"LRA:\s+{_FLOAT} LU", summary)
    if "Summary:" not in text or loud is None:
        raise AudioError(f"ffmpeg ebur128 printed no loudness summary: {text[-300:]!r}")
    integrated = _number(loud.group(1))
    if integrated is not None and integrated <= _SILENT_LUFS:
        integrated = None
    return Measurement(integrated, _number(peak.group(1)) if peak else None,
                       _number(lra.group(1)) if lra else None)


def _number(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def meter_args(*, pcm_rate: int | None = None, pcm_channels: int | None = None) -> list[str]:
    """ffmpeg arguments that measure stdin (raw s16le when a rate is given)."""
    source = ["-f", "s16le", "-ar", str(pcm_rate), "-ac", str(pcm_channels)] if pcm_rate else []
    return [ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", "-loglevel", "info", *source,
            "-i", "pipe:0", "-af", "ebur128=peak=true:framelog=quiet", "-f", "null", "-"]


def measure(path: Path, *, pcm_rate: int | None = None,
            pcm_channels: int | None = None) -> Measurement:
    """Measure a file (raw s16le when `pcm_rate` is given, else whatever ffmpeg finds)."""
    source = ["-f", "s16le", "-ar", str(pcm_rate), "-ac", str(pcm_channels)] if pcm_rate else []
    args = [ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", "-loglevel", "info", *source,
            "-i", f"file:{path}", "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet",
            "-f", "null", "-"]
    proc = _run(args)
    text = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise AudioError(f"{path}: ffmpeg could not measure its loudness: {_tail(text)}")
    return parse_summary(text)


def _run(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(list(args), capture_output=True, check=False)
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg ({args[0]}): {exc}") from exc


def _tail(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _filters(gain_db: float, ceiling_dbtp: float | None, rate: int) -> list[str]:
    chain = []
    if abs(gain_db) >= 0.005:
        chain.append(f"volume={gain_db:.3f}dB:precision=double")
    if ceiling_dbtp is not None:
        limit = 10 ** (ceiling_dbtp / 20)
        # level=false: no make-up gain (alimiter's default normalises its output);
        # latency=true: its look-ahead delay is compensated, so offsets stay exact.
        chain += [f"aresample={rate * OVERSAMPLE}",
                  f"alimiter=limit={limit:.6f}:attack=2:release=60:level=false:latency=true",
                  f"aresample={rate}"]
    return ["-af", ",".join(chain)] if chain else []


def _encode(pcm: Path, rate: int, channels: int, destination: Path, output_args: Sequence[str],
            gain_db: float, ceiling_dbtp: float | None) -> None:
    args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-f", "s16le", "-ar", str(rate), "-ac", str(channels), "-i", f"file:{pcm}",
            *_filters(gain_db, ceiling_dbtp, rate), "-map_metadata", "-1",
            "-fflags", "+bitexact", *output_args, "-y", f"file:{destination}"]
    proc = _run(args)
    if proc.returncode != 0:
        raise AudioError(f"{destination.name}: ffmpeg could not encode it: "
                         f"{_tail(proc.stderr.decode('utf-8', 'replace'))}")


def _measure_chain(pcm: Path, rate: int, channels: int, gain_db: float,
                   ceiling_dbtp: float | None) -> Measurement:
    """What `_encode` would produce before the encoder, measured without encoding it: the
    search for the gain runs the limiter and the meter only (an MP3 encode costs twice
    as much as both, bench/bench_stitch.py)."""
    chain = _filters(gain_db, ceiling_dbtp, rate)
    graph = (chain[1] + "," if chain else "") + "ebur128=peak=true:framelog=quiet"
    args = [ffmpeg_exe(), "-hide_banner", "-nostats", "-nostdin", "-loglevel", "info",
            "-f", "s16le", "-ar", str(rate), "-ac", str(channels), "-i", f"file:{pcm}",
            "-af", graph, "-f", "null", "-"]
    proc = _run(args)
    text = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise AudioError(f"ffmpeg could not measure the limited programme: {_tail(text)}")
    return parse_summary(text)


def _search_gain(pcm: Path, rate: int, channels: int, aim_lufs: float, peak_dbtp: float,
                 ceiling_dbtp: float, gain_db: float) -> float:
    """The gain whose limited result measures within `SEARCH_LU` of `aim_lufs`.

    Without limiting, loudness moves one for one with the gain. With it, less: each step
    uses the slope seen between the last two tries (a secant step), so two or three
    tries usually suffice. Never more gain than `MAX_LIMITING_DB` of limiting allows.
    """
    cap = ceiling_dbtp + MAX_LIMITING_DB - peak_dbtp
    gain = min(gain_db, cap)
    if peak_dbtp + gain <= ceiling_dbtp:
        return gain  # no limiter: the result is exactly the input plus the gain
    previous: tuple[float, float] | None = None
    for _ in range(MAX_SEARCH):
        lufs = _measure_chain(pcm, rate, channels, gain, ceiling_dbtp).integrated_lufs
        if lufs is None:
            break
        off = aim_lufs - lufs
        if abs(off) <= SEARCH_LU:
            break
        slope = 1.0
        if previous is not None and abs(gain - previous[0]) > 1e-6:
            slope = min(1.0, max(0.1, (lufs - previous[1]) / (gain - previous[0])))
        previous = (gain, lufs)
        new_gain = min(gain + off / slope, cap)
        if abs(new_gain - gain) < 0.02:
            break  # held at the cap
        gain = new_gain
    return gain


def encode(pcm: Path, rate: int, channels: int, destination: Path, output_args: Sequence[str],
           target: Target | None = None, *, measured: Measurement | None = None,
           lossy: bool = True) -> LoudnessResult | None:
    """Encode raw s16le `pcm` into `destination` with `output_args`, normalised to
    `target` when one is given (None: encoded as it is, and None is returned).

    `measured` is the input's measurement when the caller already has it (a stitch
    measures while it assembles); otherwise the input is measured here first.
    """
    if target is None:
        _encode(pcm, rate, channels, destination, output_args, 0.0, None)
        return None
    before = measured or measure(pcm, pcm_rate=rate, pcm_channels=channels)
    if before.integrated_lufs is None:
        _encode(pcm, rate, channels, destination, output_args, 0.0, None)
        return LoudnessResult(target, before, measure(destination), 0.0, 0.0, 1, problem=(
            f"target {target.lufs:g} LUFS not applied: the audio has no measurable loudness "
            "(silence, or under 0.4 s of sound)"))
    peak = before.true_peak_dbtp if before.true_peak_dbtp is not None else -120.0
    # Start under the ceiling by what encoding usually adds: a lossy codec overshoots.
    ceiling = target.true_peak_dbtp - (0.5 if lossy else 0.1)
    gain = target.lufs - before.integrated_lufs
    aim = target.lufs  # what the search aims for, corrected by what the encoder shifts
    best: LoudnessResult | None = None
    last: LoudnessResult | None = None
    for attempt in range(1, MAX_PASSES + 1):
        gain = _search_gain(pcm, rate, channels, aim, peak, ceiling, gain)
        limiting = max(0.0, peak + gain - ceiling)
        used_ceiling = ceiling if limiting > 0 else None
        if last is not None and abs(gain - last.gain_db) < 0.02 \
                and used_ceiling == last.ceiling_dbtp:
            break  # held at the limiting cap: another pass would write the same file
        _encode(pcm, rate, channels, destination, output_args, gain, used_ceiling)
        after = measure(destination)
        last = LoudnessResult(target, before, after, gain, limiting, attempt,
                              _miss(target, after, limiting), used_ceiling)
        if best is None or _score(last) < _score(best):
            best = last
        if after.integrated_lufs is None:
            break
        off = target.lufs - after.integrated_lufs
        over = (after.true_peak_dbtp if after.true_peak_dbtp is not None else -120.0) \
            - target.true_peak_dbtp
        if abs(off) <= AIM_LU and over <= 0:
            break
        if over > 0:  # the encoder overshot the peaks: hold them lower
            ceiling -= over + 0.1
        aim += off
        gain += off
    assert best is not None and last is not None
    if best is not last:  # an earlier pass came closer: that one is the output
        _encode(pcm, rate, channels, destination, output_args, best.gain_db, best.ceiling_dbtp)
    return best


def _score(result: LoudnessResult) -> tuple[int, float]:
    """Met beats missed; then nearer the target."""
    lufs = result.after.integrated_lufs
    return (0 if result.met else 1,
            abs(result.target.lufs - lufs) if lufs is not None else math.inf)


def _miss(target: Target, after: Measurement, limiting_db: float) -> str | None:
    lufs, peak = after.integrated_lufs, after.true_peak_dbtp
    if lufs is None:
        return f"target {target.lufs:g} LUFS missed: the result has no measurable loudness"
    problems = []
    if abs(lufs - target.lufs) > TOLERANCE_LU:
        why = (f" ({limiting_db:.1f} dB of peak limiting is the most applied; lower the target "
               "or raise the true-peak ceiling)") if limiting_db >= MAX_LIMITING_DB - 0.05 else ""
        problems.append(f"target {target.lufs:g} LUFS missed: measured {lufs:.1f} LUFS{why}")
    if peak is not None and peak > target.true_peak_dbtp + 0.05:
        problems.append(f"true peak {peak:.1f} dBTP is above the {target.true_peak_dbtp:g} dBTP "
                        "ceiling")
    return "; ".join(problems) or None
