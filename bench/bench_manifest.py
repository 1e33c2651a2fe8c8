"""Benchmark: `runner validate` and `runner plan` of a generated 10,000-job manifest.

Whole process, as a user runs it (interpreter start-up and imports included).
Prints the median and best of several runs. Target (issue 2): under 1.5 s each.

    python bench/bench_manifest.py [--jobs 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SURFACES = ["gravel", "wood", "stone", "snow", "grass", "metal", "mud", "sand"]
VOICES = ["Rachel", "Aria", "Roger", "Sarah", "Laura", "George", "Brian", "Lily"]


def generate(path: Path, jobs: int, explicit: bool = False) -> None:
    """A realistic mix: explicit SFX one-shots, TTS voice lines, and matrix templates
    (or, with `explicit`, every job written out: the longest manifest for its size)."""
    lines = [
        "# yaml-language-server: $schema=../schemas/pipeline.schema.json",
        "version: 1", "name: big", "output_dir: build",
        "defaults:", "  provider: kie",
        "  elevenlabs/sound-effect-v2: {output_format: mp3_44100_128, prompt_influence: 0.4}",
        "  elevenlabs/text-to-speech-turbo-2-5: {stability: 0.5, similarity_boost: 0.75}",
        "jobs:",
    ]
    made = 0
    i = 0
    while made < jobs:
        kind = i % (2 if explicit else 3)
        if kind == 0:
            lines += [f"  - id: sfx_{i}", "    model: elevenlabs/sound-effect-v2",
                      f"    output: sfx/{i // 100}/sfx_{i}.mp3", "    input:",
                      f"      text: Impact number {i}, heavy wooden crate dropped on stone",
                      f"      duration_seconds: {1 + (i % 20) / 2}"]
            made += 1
        elif kind == 1:
            lines += [f"  - id: line_{i}", "    model: elevenlabs/text-to-speech-turbo-2-5",
                      f"    output: vo/{i // 100}/line_{i}.mp3", "    input:",
                      f"      text: \"Line {i}: We should reach the keep before the storm.\"",
                      f"      voice: {VOICES[i % len(VOICES)]}", "      speed: 1.05"]
            made += 1
        else:
            n = min(len(SURFACES) * 2, jobs - made)
            surfaces = SURFACES[: max(1, n // 2)]
            variants = 2 if n >= 2 else 1
            lines += [f"  - id: steps_{i}_{{surface}}", "    model: elevenlabs/sound-effect-v2",
                      f"    matrix: {{surface: [{', '.join(surfaces)}]}}",
                      f"    variants: {variants}",
                      "    output: steps/" + str(i) + "/{surface}_{variant}.mp3",
                      ("    input: {text: 'Footsteps on {surface}, steady pace', loop: true, "
                      "duration_seconds: 3}")]
            made += len(surfaces) * variants
        i += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runner = shutil.which("runner") or sys.exit("install the project first: pip install -e .")
    for explicit in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            manifest = work / "big.yaml"
            generate(manifest, args.jobs, explicit)
            size_kib = manifest.stat().st_size / 1024
            lines = manifest.read_text().count("\n")
            style = "every job written out" if explicit else "with matrix templates"
            print(f"manifest {style}: {args.jobs:,} jobs, {lines:,} lines, {size_kib:,.0f} KiB")
            for name, cmd in (("validate", [runner, "validate", str(manifest)]),
                              ("plan", [runner, "plan", str(manifest)]),
                              ("plan --json", [runner, "plan", "--json", str(manifest)])):
                timed(cmd, work)  # warm the page cache
                runs = [timed(cmd, work) for _ in range(args.repeat)]
                print(f"  runner {name:12s} median {statistics.median(runs):.3f} s   "
                      f"best {min(runs):.3f} s   ({args.repeat} runs; target < 1.5 s)")


if __name__ == "__main__":
    main()
