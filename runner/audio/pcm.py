"""Edits on interleaved 16-bit samples (`array('h')`): trim silence, fades, loop crossfades.

Shared by the stitch (narration segments) and per-job post-processing. Every
scan over a whole clip is done by C-level `max`/`min` over windows; Python-level
loops only ever run over a fade's or a crossfade's worth of samples.
"""

from __future__ import annotations

import math
import sys
from array import array


def from_le(data: bytes) -> array[int]:
    """s16le bytes as samples, whatever this machine's byte order."""
    samples = array("h", data[:len(data) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def to_le(samples: array[int]) -> bytes:
    if sys.byteorder == "little":
        return samples.tobytes()
    copy = array("h", samples)
    copy.byteswap()
    return copy.tobytes()


def frames_of(ms: float, rate: int) -> int:
    return round(ms * rate / 1000)


def fade_in(samples: array[int], channels: int, frames: int) -> None:
    """Linear fade-in over the first `frames` (at most half the clip), in place."""
    n = min(frames, len(samples) // channels // 2)
    for i in range(n * channels):
        samples[i] = round(samples[i] * (((i // channels) + 0.5) / n))


def fade_out(samples: array[int], channels: int, frames: int) -> None:
    """Linear fade-out over the last `frames` (at most half the clip), in place."""
    n = min(frames, len(samples) // channels // 2)
    last = len(samples) - 1
    for i in range(n * channels):
        samples[last - i] = round(samples[last - i] * (((i // channels) + 0.5) / n))


def loud_span(samples: array[int], channels: int, threshold: int) -> tuple[int, int] | None:
    """First and one-past-last frame with a sample above `threshold`; None if all quiet.

    Scans coarse windows, then finer ones inside the hit: a Python-level loop only
    ever runs over the last 64 samples.
    """
    first = _find_loud(samples, 0, len(samples), threshold, forward=True)
    if first is None:
        return None
    last = _find_loud(samples, first, len(samples), threshold, forward=False)
    assert last is not None
    return first // channels, last // channels + 1


def _find_loud(samples: array[int], lo: int, hi: int, threshold: int, *, forward: bool,
               step: int = 4096) -> int | None:
    """Index of the first (or last) sample in samples[lo:hi] louder than `threshold`."""
    starts = range(lo, hi, step) if forward else range(lo + (hi - 1 - lo) // step * step, lo - 1,
                                                         -step)
    for start in starts:
        end = min(start + step, hi)
        window = samples[start:end]
        if max(window) > threshold or min(window) < -threshold:
            if step <= 64:
                hits = [i for i, v in enumerate(window) if v > threshold or v < -threshold]
                return start + (hits[0] if forward else hits[-1])
            return _find_loud(samples, start, end, threshold, forward=forward, step=step // 16)
    return None


def trim_silence(samples: array[int], channels: int, rate: int, threshold_dbfs: float,
                 keep_ms: float) -> tuple[array[int], int]:
    """Cut silence (every sample under `threshold_dbfs`) at both ends, keeping `keep_ms`
    of it as a margin; returns (samples, frames cut at the start). An all-quiet clip is
    kept whole: its length may be intended."""
    threshold = int(32767 * 10 ** (threshold_dbfs / 20))
    span = loud_span(samples, channels, threshold)
    if span is None:
        return samples, 0
    keep = frames_of(keep_ms, rate)
    start, end = max(span[0] - keep, 0), min(span[1] + keep, len(samples) // channels)
    return samples[start * channels:end * channels], start


def loop_crossfade(samples: array[int], channels: int, frames: int) -> array[int]:
    """A seamless loop: the last `frames` are crossfaded into the first ones and cut off.

    Played in a loop, the end of the result runs on into its beginning, which starts
    as the old tail (the natural continuation of where the end stops) and turns into
    the old head. Equal-power curves, because the two ends are different sound, not
    the same sound in phase. The result is `frames` shorter; at most half the clip
    is used.
    """
    n = min(frames, len(samples) // channels // 2)
    if n <= 0:
        return array("h", samples)
    body_end = len(samples) - n * channels
    head, tail = samples[:n * channels], samples[body_end:]
    mixed = array("h", bytes(2 * n * channels))
    for i in range(n * channels):
        t = ((i // channels) + 0.5) / n
        value = tail[i] * math.cos(t * math.pi / 2) + head[i] * math.sin(t * math.pi / 2)
        mixed[i] = max(-32768, min(32767, round(value)))
    return mixed + samples[n * channels:body_end]
