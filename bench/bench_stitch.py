"""Benchmark: stitching N five-second segments, and `verify_audio` per file.

    python bench/bench_stitch.py                 # 100 and 1,000 segments, mp3 out
    python bench/bench_stitch.py --sizes 100 --format opus_48000_64

Each stitch runs in a fresh child process so its peak memory is its own:
peak RSS is `resource.getrusage(RUSAGE_SELF).ru_maxrss` of that process (the
Python side: decoded batches, the held crossfade tail), and
`RUSAGE_CHILDREN.ru_maxrss` the largest ffmpeg it ran. Inputs are 5-s mp3s
at 44.1 kHz (speech-like: a tone between short silences), made once by ffmpeg
and hard-linked N times. Prints figures; asserts nothing (the target ratio of
time for 1,000 to time for 100 is at most 12).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.audio.ffmpeg import ffmpeg_exe
from runner.audio.formats import FormatSpec
from runner.audio.stitch import SegmentInput, StitchSettings, stitch
from runner.audio.verify import verify_audio

VARIANTS = 10  # distinct source clips; the rest are hard links to them


def make_inputs(folder: Path, count: int) -> list[Path]:
    sources = []
    for v in range(VARIANTS):
        path = folder / f"src{v}.mp3"
        if not path.exists():
            subprocess.run(
                [ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
                 "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=0.3",
                 "-f", "lavfi", "-i", f"sine=f={220 + 40 * v}:r=44100:d=4.4",
                 "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=0.3",
                 "-filter_complex", "[0][1][2]concat=n=3:v=0:a=1,volume=0.2",
                 "-c:a", "libmp3lame", "-b:a", "128k", "-y", str(path)], check=True)
        sources.append(path)
    paths = []
    for i in range(count):
        link = folder / f"seg{i:05d}.mp3"
        if not link.exists():
            os.link(sources[i % VARIANTS], link)
        paths.append(link)
    return paths


def child(folder: Path, count: int, fmt: str) -> None:
    """Run one stitch; print its figures as JSON on stdout."""
    spec = FormatSpec.parse("mp3_44100_128")
    paths = make_inputs(folder, count)
    segments = [SegmentInput(f"s{i:05d}", p, spec, paragraph_index=i // 10)
                for i, p in enumerate(paths)]
    out = folder / f"out{count}{FormatSpec.parse(fmt).extension}"
    start = time.perf_counter()
    result = stitch(segments, out, StitchSettings(output_format=fmt, crossfade_ms=0))
    elapsed = time.perf_counter() - start
    print(json.dumps({
        "segments": count, "seconds": elapsed,
        "audio_s": result.sidecar["duration_ms"] / 1000,
        "phases": result.timings_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_child_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def bench_verify(folder: Path, rounds: int = 2000) -> None:
    path = make_inputs(folder, 1)[0]
    spec = FormatSpec.parse("mp3_44100_128")
    verify_audio(path, spec)
    start = time.perf_counter()
    for _ in range(rounds):
        verify_audio(path, spec)
    per_file = (time.perf_counter() - start) / rounds
    print(f"verify_audio: {per_file * 1e6:.0f} µs per 5-s mp3_44100_128 "
          f"({path.stat().st_size // 1024} KiB, {rounds} rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--format", default="mp3_44100_128")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.dir, args.child, args.format)
        return
    with tempfile.TemporaryDirectory(prefix="bench-stitch-") as tmp:
        folder = Path(tmp)
        bench_verify(folder)
        times: dict[int, float] = {}
        for size in args.sizes:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", str(size), "--dir", str(folder),
                 "--format", args.format], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"stitch of {size} failed:\n{proc.stderr}")
            figures = json.loads(proc.stdout)
            times[size] = figures["seconds"]
            phases = ", ".join(f"{k} {v:.1f}" for k, v in figures["phases"].items())
            print(f"stitch {size:>5} x 5 s -> {args.format}: {figures['seconds']:.1f} s "
                  f"({figures['audio_s'] / 60:.0f} min of audio; {phases}); "
                  f"peak RSS {figures['peak_rss_mb']:.0f} MB python, "
                  f"{figures['peak_child_rss_mb']:.0f} MB largest ffmpeg")
        if 100 in times and 1000 in times:
            print(f"ratio time(1000) / time(100): {times[1000] / times[100]:.1f} (target ≤ 12)")


if __name__ == "__main__":
    main()
