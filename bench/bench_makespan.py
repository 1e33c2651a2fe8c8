"""Benchmark (issue 4, makespan): 1,000 jobs of 1 s each, 50 tasks in flight.

What: 1,000 distinct sound-effect jobs on kie against the sandbox in its own
process with `--latency 1` (every task takes 1 s) and `--rate-limit 100/1`;
the manifest configures the same limit (`requests_per_window: 100, window_s: 1`),
`max_in_flight: 50` and `polls_per_s: 500` (kie's real 10 polls/s would be
the bottleneck instead); the poll policy is kie's default (first look at 2 s,
until the latency is learned). `runner run` is a separate process.

How: the run's makespan is the journal's run span (`runs.started_at` to
`finished_at`: plan and process start-up excluded); the process wall time is
printed beside it. The lower bound is max(N / rate, N x latency / in-flight)
= max(10 s, 20 s) = 20 s for the defaults.

Target: makespan within 10% of the bound.

    python bench/bench_makespan.py [--quick] [--jobs 1000] [--latency 1] [--in-flight 50]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import runbench as rb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 jobs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per task")
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--limit", type=int, default=100, help="createTask per second")
    parser.add_argument("--initial-poll", type=float, default=None,
                        help="poll.initial_interval_s (default: kie's, 2 s)")
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    jobs = args.jobs or (300 if args.quick else 1000)
    limits = {"requests_per_window": args.limit, "window_s": 1, "max_in_flight": args.in_flight,
              "polls_per_s": 500}
    poll = {"initial_interval_s": args.initial_poll} if args.initial_poll else None
    bound_s = max(jobs / args.limit, jobs * args.latency / args.in_flight)
    with tempfile.TemporaryDirectory() as tmp, \
            rb.sandbox(["--latency", f"{args.latency:g}", "--rate-limit", f"{args.limit}/1"],
                       pin=args.pin) as sb:
        manifest = rb.write_manifest(Path(tmp), jobs, limits=limits, poll=poll)
        run = rb.run_runner(manifest, sb.url, pin=args.pin)
        stats = sb.stats()
        view = rb.journal_view(manifest)
    span_s = view.run_finished - view.run_started
    ok = span_s <= 1.10 * bound_s
    print(f"makespan: {jobs:,} jobs, {args.latency:g} s each, {args.in_flight} in flight, "
          f"limit {args.limit}/s")
    rb.line("bound max(N/rate, N*lat/in-flight)", f"{bound_s:.2f} s", "", None)
    rb.line("makespan (journal run span)", f"{span_s:.2f} s ({span_s / bound_s:.3f}x)",
            f"<= {1.10 * bound_s:.2f} s (1.10x)", ok)
    rb.line("process wall time", f"{run.wall_s:.2f} s ({run.wall_s / bound_s:.3f}x)", "", None)
    rb.line("first submit .. last outcome", f"{view.last_outcome - view.submit_times[0]:.2f} s",
            "", None)
    rb.line("peak concurrent tasks (sandbox)", f"{stats['peak_concurrent_tasks']}",
            f"<= {args.in_flight}", None)
    polls = stats["requests"].get("GET /api/v1/jobs/recordInfo", {}).get("200", 0)
    rb.line("polls per job", f"{polls / jobs:.2f}", "", None)
    rb.line("429s", f"{stats['requests'].get(rb.CREATE, {}).get('429', 0)}", "", None)
    rb.line("runner CPU per job", f"{run.cpu_s / jobs * 1000:.2f} ms", "", None)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
