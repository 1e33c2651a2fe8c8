"""Benchmark (issue 5): no-op re-run of a 10,000-job pipeline, beside ninja and make.

What: a 10,000-job manifest (distinct sound effects on kie) is run once in full
against the sandbox in its own process (zero latency, 1,000 requests/s allowed).
Then `runner run` is run again with nothing to do (every job up to date), as a
whole process, as a user runs it: interpreter start-up, imports, manifest
parsing and validation, planning (cache keys, output checks), journal and
lockfile included. Beside it, in the same run and interleaved, the no-op of an
equivalent build with well-known build tools: 10,000 targets, each an output
file made from its own source file (`cp`), in as many folders as the runner's
outputs, built once, then re-run with nothing to do:
`ninja` (Debian's ninja-build: `apt-get install -y ninja-build`) and GNU `make`.

How: wall time of each whole process (and its CPU from `os.wait4`), repeated,
medians printed with the ratio runner / ninja and runner / make. The re-runs
must make no request: the sandbox's createTask count is checked unchanged.

Target: runner's no-op under 2 s (median). The ratio to ninja is reported.

    python bench/bench_noop.py [--quick] [--jobs 10000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import runbench as rb

LIMITS = {"requests_per_window": 1000, "window_s": 1, "polls_per_s": 1000}


def timed(cmd: list[str], cwd: Path, expect: str | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - started
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.decode(errors="replace")
    if proc.returncode != 0 or (expect is not None and expect not in text):
        raise SystemExit(f"{' '.join(cmd)} ({proc.returncode}):\n{text[-2000:]}")
    return wall_s, usage.ru_utime + usage.ru_stime


def build_tree(root: Path, jobs: int) -> None:
    """Sources, build.ninja and Makefile for `jobs` targets out/sfx/<i // 100>/sfx_<i>.mp3."""
    src = root / "src"
    src.mkdir(parents=True)
    ninja = ["rule gen", "  command = cp $in $out", ""]
    outputs = []
    make_rules = []
    for i in range(jobs):
        (src / f"sfx_{i}.txt").write_text(f"Impact {i}, a crate dropped on stone\n")
        out = f"out/sfx/{i // 100}/sfx_{i}.mp3"
        outputs.append(out)
        ninja.append(f"build {out}: gen src/sfx_{i}.txt")
        make_rules.append(f"{out}: src/sfx_{i}.txt\n\t@mkdir -p $(@D) && cp $< $@")
    (root / "build.ninja").write_text("\n".join(ninja) + "\n")
    (root / "Makefile").write_text("all: " + " \\\n  ".join(outputs) + "\n.PHONY: all\n\n"
                                   + "\n".join(make_rules) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs, 3 repeats")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    jobs = args.jobs or (2000 if args.quick else 10_000)
    repeat = args.repeat or (3 if args.quick else 7)
    tools = {name: path for name in ("ninja", "make") if (path := shutil.which(name))}
    if "ninja" not in tools:
        print("ninja not found: apt-get install -y ninja-build (compared with make only)")
    with tempfile.TemporaryDirectory() as tmp, rb.sandbox([], pin=args.pin) as sb:
        work = Path(tmp)
        (work / "runner").mkdir()
        manifest = rb.write_manifest(work / "runner", jobs, limits=LIMITS)
        full = rb.run_runner(manifest, sb.url, pin=args.pin)
        created = sb.creates().get("200", 0)
        print(f"no-op: {jobs:,} jobs; first full run {full.wall_s:.1f} s, "
              f"CPU {full.cpu_s / jobs * 1000:.2f} ms/job, peak RSS {full.max_rss_mb:.0f} MB, "
              f"{created:,} tasks created")
        runner_cmd = [rb.runner_exe(), "run", str(manifest), "--sandbox-url", sb.url]
        commands = {"runner run": (runner_cmd, work / "runner", f"{jobs} up to date")}
        for name, path in tools.items():
            root = work / name
            build_tree(root, jobs)
            started = time.perf_counter()
            subprocess.run([path, "-j2"] if name == "make" else [path], cwd=root, check=True,
                           stdout=subprocess.DEVNULL)
            print(f"  first {name} build: {time.perf_counter() - started:.1f} s")
            expect = "no work to do" if name == "ninja" else "Nothing to be done"
            commands[name] = ([path], root, expect)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for name, (cmd, cwd, expect) in commands.items():
            timed(cmd, cwd, expect)  # warm the page cache
        for _ in range(repeat):
            for name, (cmd, cwd, expect) in commands.items():
                wall_s, cpu_s = timed(cmd, cwd, expect)
                walls[name].append(wall_s)
                cpus[name].append(cpu_s)
        if sb.creates().get("200", 0) != created:
            raise SystemExit("a no-op run sent requests")
    median = {name: statistics.median(values) for name, values in walls.items()}
    for name in commands:
        print(f"  {name:10s} no-op median {median[name]:.3f} s  best {min(walls[name]):.3f} s  "
              f"CPU median {statistics.median(cpus[name]):.3f} s  ({repeat} runs)")
    ok = median["runner run"] < 2.0
    rb.line("runner run no-op (median)", f"{median['runner run']:.3f} s", "< 2 s", ok)
    for name in tools:
        rb.line(f"ratio runner / {name}", f"{median['runner run'] / median[name]:.1f}x", "",
                None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
