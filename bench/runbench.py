"""Shared by the `runner run` benchmarks (bench_rate, bench_makespan, bench_scale,
bench_noop): generated manifests, the sandbox in its own process, `runner run` as a
child process measured on its own, and what the journal and the sandbox saw.

Not a benchmark itself. The runner is always a separate process, so its CPU time
and peak RSS (from `os.wait4`) are its own and not the sandbox's or this script's.
On a machine with two or more cores the sandbox is pinned to one core and the
runner to another, so neither steals the other's core.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.sandbox import SandboxProcess

CREATE = "POST /api/v1/jobs/createTask"


def runner_exe() -> str:
    """The installed `runner` command, as a user runs it (next to this interpreter first)."""
    beside = Path(sys.executable).with_name("runner")
    if beside.exists():
        return str(beside)
    return shutil.which("runner") or sys.exit("install the project first: pip install -e .")


def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def write_manifest(folder: Path, jobs: int, *, limits: dict[str, Any],
                   poll: dict[str, Any] | None = None, name: str = "bench",
                   duration_s: float = 0.5, first: int = 0) -> Path:
    """`jobs` distinct sound effects on kie (each its own request: no cache hits),
    every job written out, with the given account limits and poll policy."""
    def flow(mapping: dict[str, Any]) -> str:
        return "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"

    lines = ["version: 1", f"name: {name}", "output_dir: build", "providers:", "  kie:",
             f"    limits: {flow(limits)}"]
    if poll:
        lines.append(f"    poll: {flow(poll)}")
    lines.append("jobs:")
    for i in range(first, first + jobs):
        lines += [f"  - id: sfx_{i}", "    model: elevenlabs/sound-effect-v2",
                  f"    output: sfx/{i // 100}/sfx_{i}.mp3",
                  (f"    input: {{text: 'Impact {i}, a crate dropped on stone', "
                  f"duration_seconds: {duration_s}}}")]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Sandbox:
    url: str
    pid: int | None

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/_sandbox/stats", timeout=30) as answer:
            return json.loads(answer.read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/_sandbox/reset", data=b"{}",
                                         method="POST")
        urllib.request.urlopen(request, timeout=30).close()

    def creates(self) -> dict[str, int]:
        """createTask answers by HTTP status ("200", "429", ...)."""
        return self.stats()["requests"].get(CREATE, {})


@contextmanager
def sandbox(args: Sequence[str], *, pin: bool = True) -> Iterator[Sandbox]:
    """The sandbox in its own process (pinned to the first core when `pin`)."""
    process = SandboxProcess(list(args))
    with process as url:
        if pin and len(cores()) >= 2 and process.pid is not None:
            os.sched_setaffinity(process.pid, {cores()[0]})
        yield Sandbox(url, process.pid)


@dataclass
class Measured:
    """One `runner run` process: wall time, its own CPU time and peak RSS."""

    code: int
    wall_s: float
    user_s: float
    sys_s: float
    max_rss_mb: float
    output: str

    @property
    def cpu_s(self) -> float:
        return self.user_s + self.sys_s


# `runner run` with the kie account's built-in limit made "not published" (0), so the
# submit window discovers it: the pipeline schema does not let a manifest say 0.
DISCOVER = ("import dataclasses as d, sys; import runner.catalog.accounts as a; "
            "k = a.BUILTIN['kie']; a.BUILTIN['kie'] = d.replace(k, limits=d.replace("
            "k.limits, requests_per_window=0)); from runner.cli.main import main; "
            "sys.exit(main(sys.argv[1:]))")


def run_runner(manifest: Path, sandbox_url: str | None, *, pin: bool = True,
               extra: Sequence[str] = (), check: bool = True, discover: bool = False,
               env: dict[str, str] | None = None) -> Measured:
    """`runner run MANIFEST --sandbox-url URL` as a child process (on the last core when
    `pin`); its rusage comes from wait4, so it is this child's alone. `discover`: with
    no configured rate limit for kie (see DISCOVER)."""
    launcher = [sys.executable, "-c", DISCOVER] if discover else [runner_exe()]
    cmd = [*launcher, "run", str(manifest), *extra]
    if sandbox_url is not None:
        cmd += ["--sandbox-url", sandbox_url]
    log = manifest.parent / "runner-output.txt"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=manifest.parent, stdout=out, stderr=subprocess.STDOUT,
                                env=None if env is None else {**os.environ, **env})
        if pin and len(cores()) >= 2:
            os.sched_setaffinity(proc.pid, {cores()[-1]})
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if check and proc.returncode != 0:
        raise SystemExit(f"runner run failed ({proc.returncode}):\n{text[-3000:]}")
    return Measured(proc.returncode, wall_s, usage.ru_utime, usage.ru_stime,
                    usage.ru_maxrss / 1024, text)


@dataclass
class JournalView:
    """The last run's tasks as the journal recorded them (wall-clock seconds)."""

    submit_times: list[float]  # accepted createTasks, sorted (journaled just before sending)
    refused: int  # requests answered "not created" (429s and the like)
    run_started: float
    run_finished: float
    last_outcome: float


def journal_view(manifest: Path) -> JournalView:
    path = manifest.parent / "build.sandbox" / ".runner" / "journal.sqlite"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        run_id, started, finished = db.execute(
            "SELECT id, started_at, finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        times = sorted(t for (t,) in db.execute(
            "SELECT created_at FROM tasks WHERE run_id = ? AND task_id IS NOT NULL", (run_id,)))
        refused = db.execute("SELECT count(*) FROM tasks WHERE run_id = ? AND task_id IS NULL",
                             (run_id,)).fetchone()[0]
        last = db.execute("SELECT max(at) FROM outcomes WHERE run_id = ?",
                          (run_id,)).fetchone()[0]
    finally:
        db.close()
    return JournalView(times, int(refused), started, finished or started, last or started)


def sustained_rate(times: Sequence[float], burst: int) -> float:
    """Requests per second after the first window's burst: the first `burst` requests
    are free in any sliding window, the other N - burst take (last - first) seconds.
    A run that holds exactly L per window scores L / window_s."""
    if len(times) <= burst + 1:
        return float("nan")
    return (len(times) - burst) / (times[-1] - times[0])


def per_second(times: Sequence[float]) -> list[int]:
    """Requests in each whole second since the first."""
    if not times:
        return []
    counts = [0] * (int(times[-1] - times[0]) + 1)
    for t in times:
        counts[int(t - times[0])] += 1
    return counts


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def line(name: str, value: str, target: str, ok: bool | None) -> None:
    mark = "" if ok is None else verdict(ok)
    print(f"  {name:34s} {value:>22s}   target {target:22s} {mark}")
