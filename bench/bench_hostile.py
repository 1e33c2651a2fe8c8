"""Benchmark: `runner validate` of large and hostile manifests, whole process.

Issue 13's target: every file up to 50 MB is refused (or accepted) within 2 s
and 300 MB. Prints, for each file: its size, the exit code, the wall time, the
CPU time (user + system: steadier than wall time on a shared machine) and the
peak resident memory of the `runner validate` process, and the first line it
printed. Each file is validated `--runs` times (3 by default) and the run of median
wall time is shown, with the range of wall times beside it: on a shared machine one
run can be a fifth slower than the next. The runner's modules are byte-compiled first, as an installed package's
are: where PYTHONDONTWRITEBYTECODE is set, every run would compile them again.

    python bench/bench_hostile.py [--quick] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HEAD = "version: 1\nname: big\njobs:\n"
SFX = "elevenlabs/sound-effect-v2"
TTS = "elevenlabs/text-to-speech-turbo-2-5"
TARGET_S, TARGET_MB = 2.0, 300.0
CAP = 99_999  # jobs: just under the most a manifest may make


def jobs_file(path: Path, size: int, job: str, most: int | None = None) -> int:
    """`job` (with N for the index) repeated until the file is `size` bytes, or there are
    `most` jobs."""
    parts, total, i = [HEAD], len(HEAD), 0
    while total < size and (most is None or i < most):
        text = job.replace("N", str(i))
        parts.append(text)
        total += len(text)
        i += 1
    path.write_text("".join(parts))
    return i


def make(folder: Path, scale: float) -> list[tuple[str, Path]]:
    mb = int(50_000_000 * scale)
    made = []
    sentence = "The keeper climbed the stair again, and the lamp was lit at dusk. " * 8
    path = folder / "valid_tts.yaml"
    count = jobs_file(path, mb, f"  - id: line_N\n    model: {TTS}\n    input: {{voice: Brian, "
                                f"text: '{sentence} N'}}\n")
    made.append((f"{mb / 1e6:.0f} MB, {count:,} TTS jobs (valid)", path))
    path = folder / "valid_tts_blocks.yaml"  # inputs written as the examples write them
    count = jobs_file(path, mb, f"  - id: line_N\n    model: {TTS}\n    input:\n"
                                f"      voice: Brian\n      text: {sentence} N\n")
    made.append((f"{mb / 1e6:.0f} MB, {count:,} TTS jobs, inputs as blocks (valid)", path))
    # The most jobs a manifest may make, in 50 MB: the most work per byte of a valid file.
    path = folder / "valid_tts_cap.yaml"
    job = f"  - id: line_N\n    model: {TTS}\n    input: {{voice: Brian, text: 'T N'}}\n"
    bare = sum(len(job.replace("N", str(i))) for i in range(CAP))  # the jobs without texts
    count = jobs_file(path, mb, job.replace("T", sentence[:(mb - len(HEAD) - bare) // CAP]), CAP)
    made.append((f"{mb / 1e6:.0f} MB, {count:,} TTS jobs, the most allowed (valid)", path))
    path = folder / "valid_sfx_folders.yaml"  # every output in a folder of its own
    count = jobs_file(path, mb, f"  - id: sfx_N\n    model: {SFX}\n    input:\n"
                      "      text: Steps on gravel N\n      duration_seconds: 2.5\n"
                      "      prompt_influence: 0.4\n    output: sfx/kind_N/N.mp3\n"
                      "    notes: take N of the gravel steps\n", CAP)
    size = path.stat().st_size / 1e6
    made.append((f"{size:.0f} MB, {count:,} SFX jobs, a folder each (valid)", path))
    path = folder / "valid_pyyaml.yaml"  # as yaml.safe_dump writes it: texts over lines
    job = yaml.safe_dump([{"id": "line_N", "model": TTS,
                           "input": {"voice": "Brian", "text": f"{sentence} N"}}], sort_keys=False)
    count = jobs_file(path, mb, job)
    made.append((f"{mb / 1e6:.0f} MB, {count:,} TTS jobs, written by PyYAML (valid)", path))
    path = folder / "over_cap.yaml"
    count = jobs_file(path, mb, f"  - id: sfx_N\n    model: {SFX}\n    input: {{text: 'Steps on "
                                "gravel N', duration_seconds: 2.5}\n    output: sfx/N.mp3\n")
    made.append((f"{mb / 1e6:.0f} MB, {count:,} SFX jobs (over the 100,000 cap)", path))
    path = folder / "nan_at_the_end.yaml"
    count = jobs_file(path, mb, f"  - id: line_N\n    model: {TTS}\n    input: {{voice: Brian, "
                                f"text: '{sentence} N'}}\n")
    with path.open("a") as fh:
        fh.write(f"  - id: last\n    model: {SFX}\n    input: {{text: x, duration_seconds: .nan}}\n")
    made.append((f"{mb / 1e6:.0f} MB, {count:,} jobs, a NaN on the last line", path))
    path = folder / "string_20mb.yaml"
    path.write_text(HEAD + f"  - id: a\n    model: {SFX}\n    input:\n      text: "
                    + "x" * int(20_000_000 * scale) + "\n")
    made.append((f"a {20 * scale:.0f} MB string", path))
    path = folder / "deep.yaml"
    path.write_text(HEAD + f"  - id: a\n    model: {SFX}\n    input:\n      text: hi\n"
                    "      x: " + "[" * 100_000 + "]" * 100_000 + "\n")
    made.append(("nesting 100,000 levels deep", path))
    levels = ["a: &a [" + ",".join(["lol"] * 10) + "]"]
    for i, name in enumerate("bcdefghij"):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{'abcdefghij'[i]}"] * 10) + "]")
    path = folder / "alias_bomb.yaml"
    path.write_text("\n".join(levels) + "\n")
    made.append(("an alias bomb (10**10 values)", path))
    return made


def measure(path: Path) -> tuple[int, float, float, float, str]:
    exe = shutil.which("runner") or sys.exit("install the project first: pip install -e .")
    started = time.perf_counter()
    proc = subprocess.Popen([exe, "validate", path.name], cwd=path.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    first = out.decode(errors="replace").splitlines()[0] if out else ""
    cpu = usage.ru_utime + usage.ru_stime
    return proc.returncode, elapsed, cpu, usage.ru_maxrss / 1024, first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="files a tenth of the size")
    parser.add_argument("--runs", type=int, default=3, help="runs per file (median shown)")
    parser.add_argument("--make", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    if args.make:
        for label, path in make(Path(args.make), scale):
            print(f"{path.name}\t{label}")
        return
    import runner

    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(runner.__file__).parent)],
                   check=True, stdout=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        # Made by a child process: Linux counts the peak memory of a process from its
        # fork, so a parent that had held the 50 MB texts would inflate every figure.
        listing = subprocess.run([sys.executable, __file__, "--make", tmp]
                                 + (["--quick"] if args.quick else []), check=True,
                                 capture_output=True, text=True).stdout
        cases = [(label, Path(tmp) / name) for name, label in
                 (line.split("\t", 1) for line in listing.splitlines())]
        print(f"runner validate, whole process (target: {TARGET_S:g} s, {TARGET_MB:g} MB)")
        for label, path in cases:
            runs = sorted((measure(path) for _ in range(max(1, args.runs))),
                          key=lambda run: run[1])
            code, elapsed, cpu, rss_mb, first = runs[len(runs) // 2]
            spread = f"({runs[0][1]:.2f}-{runs[-1][1]:.2f})" if len(runs) > 1 else ""
            mark = "ok" if elapsed <= TARGET_S and rss_mb <= TARGET_MB else "OVER"
            print(f"  {label:<52} exit {code}  {elapsed:6.2f} s wall {spread:<11}  "
                  f"{cpu:6.2f} s cpu  {rss_mb:6.0f} MB  {mark}")
            print(f"      {first[:150]}")


if __name__ == "__main__":
    main()
