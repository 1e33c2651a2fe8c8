"""Benchmark (issue 4, overhead and memory): a 10,000-job run's CPU per job and peak RSS.

What: 10,000 distinct sound-effect jobs (0.5 s mp3 each) on kie against the
sandbox in its own process (zero latency, no rate limit), run by `runner run` as
a separate process. The manifest allows 1,000 createTask per second and 1,000
polls per second, so the runner itself is the bottleneck; in-flight cap and poll
policy are kie's defaults.

How: the runner's CPU time (user + sys) and peak RSS come from `os.wait4` on
its process alone (the sandbox and this script are other processes). On two or
more cores the sandbox and the runner are pinned to different cores.

Targets: CPU per job <= 3 ms; peak RSS <= 200 MB. (The providers allow a few
requests per second per account, so 3 ms of CPU per job is ample: the HTTP layer
goes through httpx's public API only, runner/providers/http.py.)

The build folder is a temp folder: `TMPDIR=/dev/shm python bench/bench_scale.py`
puts it on tmpfs, and the difference between the two runs is what the disk's
fsyncs and file creations cost (one new file per job, its output; the cache's
copy is appended to a pack).

On ext4 without a journal (this project's VMs: `ext4_fsync_nojournal` in a
profile) creating a file skips over every inode of its block group deleted in
the last one to six minutes (`recently_deleted` in fs/ext4/ialloc.c). So a run
right after another run's 10,000 files were deleted pays up to a fifth more CPU
per job. For figures that compare, give each run a folder whose block group saw
no recent deletions: a new top-level folder gets one of its own (ext4 spreads
those), e.g. `TMPDIR=$(mktemp -d /rbench.XXXX) python bench/bench_scale.py`.
(The 200 MB download's memory is bench_download.py.)

    python bench/bench_scale.py [--quick] [--jobs 10000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import runbench as rb

LIMITS = {"requests_per_window": 1000, "window_s": 1, "polls_per_s": 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    jobs = args.jobs or (2000 if args.quick else 10_000)
    with tempfile.TemporaryDirectory() as tmp, rb.sandbox([], pin=args.pin) as sb:
        manifest = rb.write_manifest(Path(tmp), jobs, limits=LIMITS)
        run = rb.run_runner(manifest, sb.url, pin=args.pin)
        creates = sb.creates()
        view = rb.journal_view(manifest)
    per_job_ms = run.cpu_s / jobs * 1000
    print(f"scale: {jobs:,} jobs, zero latency, sandbox in its own process")
    rb.line("tasks created (sandbox)", f"{creates.get('200', 0):,}", f"{jobs:,}", None)
    rb.line("runner wall time", f"{run.wall_s:.1f} s", "", None)
    rb.line("throughput", f"{jobs / (view.run_finished - view.run_started):.1f} jobs/s", "",
            None)
    rb.line("runner CPU user + sys", f"{run.user_s:.1f} + {run.sys_s:.1f} s", "", None)
    ok_cpu = per_job_ms <= 3.0
    rb.line("runner CPU per job", f"{per_job_ms:.2f} ms", "<= 3 ms", ok_cpu)
    ok_rss = run.max_rss_mb <= 200
    rb.line("runner peak RSS", f"{run.max_rss_mb:.0f} MB", "<= 200 MB", ok_rss)
    return 0 if ok_cpu and ok_rss else 1


if __name__ == "__main__":
    raise SystemExit(main())
