"""The report's view of an audio file: a waveform, and something a browser can play.

Each file is decoded once by ffmpeg (input format given explicitly, from what
the file's bytes say it is) to mono 16-bit samples, reduced to `PEAKS` pairs of
min/max (drawn by the page's script), and measured on the way by ffmpeg's
`ebur128` (integrated loudness and true peak). Files a browser cannot play (G.711 mu-law
and A-law WAV: Chromium's `canPlayType('audio/wav; codecs="7"')` is empty, and
Firefox does not play them either) get a small MP3 preview made by the same
ffmpeg process. Both are cached under `<output_dir>/.runner/` by the file's
sha256, so a second report over an unchanged build spawns no ffmpeg at all.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from runner.audio.containers import parse_wav
from runner.audio.ffmpeg import ffmpeg_exe
from runner.audio.loudness import Measurement, parse_summary
from runner.audio.verify import sniff
from runner.errors import AudioError, InvalidAudio
from runner.store import atomic

PEAKS = 300  # bars per waveform: enough for a card a few hundred pixels wide
PEAKS_VERSION = 2  # 2: loudness (integrated LUFS, true peak) measured in the same decode
WAVE_HEIGHT = 40  # canvas pixels; the picture is stretched to the card's width

# ffmpeg demuxer for what `sniff` found: the format is never left to probing.
_DEMUXER = {"mp3": "mp3", "wav": "wav", "ogg-opus": "ogg", "ogg-vorbis": "ogg", "ogg": "ogg",
            "flac": "flac", "mp4": "mov", "aac": "aac", "webm": "matroska"}
# What Chromium, Firefox and Safari all play from a file:// page.
_PLAYABLE_WAV = {"pcm_u8", "pcm_s16le", "pcm_s24le", "pcm_f32le"}
_PLAYABLE = {"mp3", "ogg-opus", "ogg-vorbis", "flac", "mp4", "aac"}


@dataclass(frozen=True, slots=True)
class AudioView:
    """What the page shows for one audio file."""

    path: Path  # the file itself
    play: Path | None  # what the <audio> element loads: the file, or its preview
    preview_reason: str | None  # why a preview stands in for the file
    peaks: list[tuple[int, int]]  # (min, max) per bar, in -100..100
    duration_s: float | None
    problem: str | None = None  # the file cannot be decoded: no player, no picture
    lufs: float | None = None  # integrated loudness (None: too short or silent to gate)
    true_peak_dbtp: float | None = None

    @property
    def peaks_b64(self) -> str:
        return encode_peaks(self.peaks)


def encode_peaks(peaks: list[tuple[int, int]]) -> str:
    """Peaks as base64 of one byte per value (value + 128): 800 characters for 300 bars,
    where an SVG path of them takes about 4,000. The page's script draws them."""
    flat = bytes(v + 128 for pair in peaks for v in pair)
    return base64.b64encode(flat).decode("ascii")


def _needs_preview(path: Path) -> tuple[str | None, str | None]:
    """(ffmpeg demuxer, reason a browser cannot play it or None)."""
    found = sniff(path)
    demuxer = _DEMUXER.get(found.kind)
    if found.kind == "wav":
        try:
            codec = parse_wav(path.read_bytes()[:1 << 16]).info.codec
        except InvalidAudio:
            codec = "unknown"
        if codec not in _PLAYABLE_WAV:
            label = {"pcm_mulaw": "G.711 mu-law", "pcm_alaw": "G.711 A-law"}.get(codec, codec)
            return demuxer, f"{label} WAV, which browsers do not play"
        return demuxer, None
    if found.kind not in _PLAYABLE:
        return demuxer, f"{found.description}, which browsers may not play"
    return demuxer, None


def _peaks(samples: array[int], bars: int) -> list[tuple[int, int]]:
    if not samples:
        return []
    step = len(samples) / bars
    out = []
    for i in range(min(bars, len(samples))):
        part = samples[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]
        # Round away from zero so a quiet but non-silent bar still shows one unit.
        out.append((-((-min(part) * 100 + 32767) // 32768), (max(part) * 100 + 32767) // 32768))
    return out


def _decode(path: Path, demuxer: str | None, duration_hint_s: float | None,
            preview: Path | None) -> tuple[list[tuple[int, int]], float, Measurement]:
    """Peaks, decoded duration and loudness; also writes `preview` (MP3) when given, all in
    one ffmpeg process. The loudness meter sits before the downmix and resampling that
    the peaks need, so it measures the file as it is."""
    # Long programmes decode at a lower rate: the envelope is the same, the work is not.
    rate = 4000 if duration_hint_s and duration_hint_s > 600 else 16000
    args = [ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "info", "-nostdin",
            *(["-f", demuxer] if demuxer else []), "-i", f"file:{path}",
            "-map", "0:a:0", "-af", "ebur128=peak=true:framelog=quiet", "-ac", "1",
            "-ar", str(rate), "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"]
    if preview is not None:
        args += ["-map", "0:a:0", "-ac", "1", "-c:a", "libmp3lame", "-b:a", "96k", "-f", "mp3",
                 "-y", f"file:{preview}"]
    try:
        proc = subprocess.run(args, capture_output=True, check=False)
    except OSError as exc:
        raise InvalidAudio(f"cannot run ffmpeg: {exc}", path=str(path)) from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"]
        # At info level the log ends with statistics: the error is the last line saying so.
        errors = [line for line in lines if re.search(r"error|invalid", line, re.IGNORECASE)]
        raise InvalidAudio(f"ffmpeg cannot decode it: {(errors or lines)[-1].strip()}",
                           path=str(path))
    samples = array("h")
    samples.frombytes(proc.stdout[:len(proc.stdout) // 2 * 2])
    if sys.byteorder == "big":
        samples.byteswap()
    try:
        measured = parse_summary(proc.stderr.decode("utf-8", "replace"))
    except AudioError:
        measured = Measurement(None, None)
    return _peaks(samples, PEAKS), len(samples) / rate, measured


class AudioViews:
    """Waveforms and previews for one build, cached in `state_dir` by content."""

    def __init__(self, state_dir: Path) -> None:
        self.peaks_dir = state_dir / "peaks"
        self.previews_dir = state_dir / "previews"

    def _cached(self, sha256: str) -> dict[str, object] | None:
        try:
            data = json.loads((self.peaks_dir / f"{sha256}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("v") == PEAKS_VERSION else None

    def view(self, path: Path, sha256: str, duration_hint_s: float | None,
             copy_reason: str | None = None) -> AudioView:
        """The view of one file whose content hashes to `sha256`. With `copy_reason`
        the page always plays an MP3 copy (the file lies outside the report's folder)."""
        preview = self.previews_dir / f"{sha256}.mp3"
        cached = self._cached(sha256)
        if cached is not None:
            reason = copy_reason or cached.get("preview")
            if not reason or preview.exists():
                raw = cached.get("peaks")
                duration = cached.get("duration_s")
                return AudioView(
                    path, preview if reason else path, str(reason) if reason else None,
                    [(int(lo), int(hi)) for lo, hi in raw] if isinstance(raw, list) else [],
                    float(duration) if isinstance(duration, int | float) else None,
                    lufs=_float(cached.get("lufs")), true_peak_dbtp=_float(cached.get("tp")))
        try:
            demuxer, unplayable = _needs_preview(path)
            reason = copy_reason or unplayable
            if reason is None:
                peaks, duration, measured = _decode(path, demuxer, duration_hint_s, None)
            else:
                self.previews_dir.mkdir(parents=True, exist_ok=True)
                with atomic.staged(preview) as tmp:
                    peaks, duration, measured = _decode(path, demuxer, duration_hint_s, tmp)
        except InvalidAudio as exc:
            return AudioView(path, None, None, [], duration_hint_s, problem=exc.problem)
        except (AudioError, OSError) as exc:  # no ffmpeg, unreadable file: say so, go on
            return AudioView(path, None, None, [], duration_hint_s, problem=str(exc))
        self.peaks_dir.mkdir(parents=True, exist_ok=True)
        # The cache records why the file itself cannot play, never a copy's reason:
        # the same sha may be an output in one build and an outside source in another.
        atomic.write_text(self.peaks_dir / f"{sha256}.json", json.dumps(
            {"v": PEAKS_VERSION, "duration_s": round(duration, 3), "preview": unplayable,
             "lufs": measured.integrated_lufs, "tp": measured.true_peak_dbtp,
             "peaks": peaks}, separators=(",", ":")))
        return AudioView(path, preview if reason else path, reason, peaks, duration,
                         lufs=measured.integrated_lufs, true_peak_dbtp=measured.true_peak_dbtp)

    def views(self, files: list[tuple[Path, str, float | None, str | None]]
              ) -> dict[Path, AudioView]:
        """Views of many files, decoded in parallel (one ffmpeg per file, each mostly
        waiting on its own process, so threads are enough)."""
        if not files:
            return {}
        workers = max(1, min(len(files), os.cpu_count() or 2))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda f: self.view(*f), files))
        return {view.path: view for view in results}


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
