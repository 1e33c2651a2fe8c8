"""Real audio for tests, made by ffmpeg: tones and silences in every provider format.

Files are generated once per test session into a pytest temp folder and
memoised here, so every test module that imports the `audio_dir` fixture sees
the same files (and ffmpeg runs once per file, not once per module).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from runner.audio.ffmpeg import ffmpeg_exe
from runner.audio.formats import FormatSpec

# Every format name the providers document (docs/providers.md, "Market API: sound-effect-v2"
# and "ElevenLabs: text to speech"), plus stable-audio's WAV.
PROVIDER_FORMATS = [
    "mp3_22050_32", "mp3_44100_32", "mp3_44100_64", "mp3_44100_96", "mp3_44100_128",
    "mp3_44100_192", "pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100",
    "pcm_48000", "ulaw_8000", "alaw_8000", "opus_48000_32", "opus_48000_64", "opus_48000_96",
    "opus_48000_128", "opus_48000_192", "wav",
]

_memo: dict[str, Path] = {}


def ffmpeg(*args: str, stdin: bytes | None = None) -> bytes:
    """Run ffmpeg quietly; its stdout. Fails the test with ffmpeg's message on error."""
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostats", "-loglevel", "error", *args],
                          input=stdin, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


def encode_args(spec: FormatSpec, rate: int | None = None) -> list[str]:
    """ffmpeg output options producing what the provider would send for `spec`."""
    if spec.raw:  # the provider sends bare samples
        fmt = {"pcm_s16le": "s16le", "pcm_mulaw": "mulaw", "pcm_alaw": "alaw"}[spec.codec.value]
        return ["-ac", "1", "-ar", str(spec.sample_rate), "-f", fmt]
    if spec.name == "wav":  # stable-audio: 16-bit stereo WAV
        return ["-ac", "2", "-ar", str(rate or 44100), "-c:a", "pcm_s16le", "-f", "wav"]
    return ["-ac", "1", *spec.ffmpeg_output_args(spec.sample_rate or 44100)]


def make(path: Path, spec: FormatSpec | str, sources: list[tuple[str, float]],
         volume: float = 0.3) -> Path:
    """Write `path` in `spec`'s provider format from ("tone:<hz>" | "silence", seconds) parts."""
    spec = FormatSpec.parse(spec) if isinstance(spec, str) else spec
    inputs: list[str] = []
    for kind, seconds in sources:
        if kind == "silence":
            inputs += ["-f", "lavfi", "-i", f"anullsrc=r=48000:cl=mono:d={seconds}"]
        else:
            hz = kind.split(":")[1]
            inputs += ["-f", "lavfi", "-i", f"sine=f={hz}:r=48000:d={seconds}"]
    graph = "".join(f"[{i}]" for i in range(len(sources)))
    graph += f"concat=n={len(sources)}:v=0:a=1,volume={volume}"
    ffmpeg(*inputs, "-filter_complex", graph, *encode_args(spec), "-y", f"file:{path}")
    return path


def sound_spans(path: Path, duration_s: float, noise_db: float = -45,
                min_silence_s: float = 0.04) -> list[tuple[float, float]]:
    """Non-silent (start, end) spans in seconds, by ffmpeg's silencedetect filter."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", f"file:{path}", "-af",
         f"silencedetect=noise={noise_db}dB:d={min_silence_s}", "-f", "null", "-"],
        capture_output=True, check=True)
    log = proc.stderr.decode()
    starts = [max(float(x), 0.0) for x in re.findall(r"silence_start: (-?[\d.]+)", log)]
    ends = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", log)]
    ends += [duration_s] * (len(starts) - len(ends))  # silence running to the end
    spans, cursor = [], 0.0
    for start, end in zip(starts, ends):
        if start > cursor + 1e-3:
            spans.append((cursor, start))
        cursor = end
    if cursor < duration_s - 1e-3:
        spans.append((cursor, duration_s))
    return spans


def loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a file, by ffmpeg's ebur128."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", f"file:{path}", "-af",
         "ebur128=peak=true:framelog=quiet", "-f", "null", "-"], capture_output=True, check=True)
    log = proc.stderr.decode()
    summary = log[log.rfind("Summary:"):]
    lufs = float(re.search(r"I:\s+(-?[\d.]+) LUFS", summary).group(1))  # type: ignore[union-attr]
    peak = float(re.search(r"Peak:\s+(-?[\d.]+) dBFS", summary).group(1))  # type: ignore[union-attr]
    return lufs, peak


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with `<format>.<ext>`: one second of a 440 Hz tone in every provider format."""
    if "formats" not in _memo:
        folder = tmp_path_factory.mktemp("audio")
        for name in PROVIDER_FORMATS:
            spec = FormatSpec.parse(name)
            make(folder / f"{name}{'.raw' if spec.raw else spec.extension}", spec,
                 [("tone:440", 1.0)])
        _memo["formats"] = folder
    return _memo["formats"]


def format_file(folder: Path, name: str) -> Path:
    spec = FormatSpec.parse(name)
    return folder / f"{name}{'.raw' if spec.raw else spec.extension}"
