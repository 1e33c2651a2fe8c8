"""Benchmark (issue 4, rate-limit use): how much of a provider's rate limit `runner run` uses.

What: 2,000 distinct sound-effect jobs on kie against the sandbox in its own
process with `--rate-limit 100/1` (100 createTask per sliding second) and zero
latency, run twice by `runner run` as a separate process:

1. limit configured: `limits: {requests_per_window: 100, window_s: 1}`;
2. no limit configured: kie's built-in limit made 0 ("not published") so the
   submit window discovers it (`window_s: 1` still given). The pipeline schema
   rejects `requests_per_window: 0`, so this run patches the built-in account in
   the runner process (runbench.DISCOVER).

Both set `polls_per_s: 500`: kie's real 10 polls/s would cap completions at
10 jobs/s, whatever the submit rate (the sandbox does not limit polls).
In-flight cap and poll policy are kie's defaults.

How: 429s come from the sandbox's `/_sandbox/stats`; the submit rate from the
journal's `tasks.created_at` of accepted createTasks (journaled just before each
is sent). Sustained rate = (N - L) / (last submit - first submit): one window's
burst of L is free in a sliding window, the rest go at the sustained rate, so a
run that holds exactly L per window scores L / window_s.

Targets: configured: rate >= 95% of the limit and zero 429s. Discovered:
<= 5% of createTask requests answered 429 and rate >= 85% of the limit.

    python bench/bench_rate.py [--quick] [--jobs 2000] [--limit 100] [--window 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import runbench as rb


def one(label: str, jobs: int, limit: int, window_s: float, discover: bool,
        pin: bool) -> bool:
    limits: dict[str, object] = {"window_s": window_s, "polls_per_s": 500}
    if not discover:
        limits = {"requests_per_window": limit, **limits}
    with tempfile.TemporaryDirectory() as tmp, \
            rb.sandbox(["--rate-limit", f"{limit}/{window_s:g}"], pin=pin) as sb:
        manifest = rb.write_manifest(Path(tmp), jobs, limits=limits)
        run = rb.run_runner(manifest, sb.url, discover=discover, pin=pin)
        creates = sb.creates()
        view = rb.journal_view(manifest)
    accepted, refused = creates.get("200", 0), creates.get("429", 0)
    rate = rb.sustained_rate(view.submit_times, limit)
    share = rate / (limit / window_s)
    refused_share = refused / max(1, accepted + refused)
    seconds = rb.per_second(view.submit_times)
    print(f"{label}: {jobs:,} jobs, sandbox limit {limit}/{window_s:g} s, zero latency")
    rb.line("createTask answered 200 / 429", f"{accepted:,} / {refused:,}", "", None)
    if discover:
        ok_429 = refused_share <= 0.05
        rb.line("429 share of createTask", f"{refused_share:.1%}", "<= 5%", ok_429)
        ok_rate = share >= 0.85
        rb.line("sustained submit rate", f"{rate:.1f}/s ({share:.0%})", ">= 85% of limit", ok_rate)
    else:
        ok_429 = refused == 0
        rb.line("429s", f"{refused}", "0", ok_429)
        ok_rate = share >= 0.95
        rb.line("sustained submit rate", f"{rate:.1f}/s ({share:.0%})", ">= 95% of limit", ok_rate)
    rb.line("submit span", f"{view.submit_times[-1] - view.submit_times[0]:.2f} s",
            f"ideal {(jobs - limit) * window_s / limit:.2f} s", None)
    rb.line("runner wall / CPU", f"{run.wall_s:.1f} s / {run.cpu_s:.1f} s", "", None)
    rb.line("runner CPU per job", f"{run.cpu_s / jobs * 1000:.2f} ms", "", None)
    print(f"  submits per second: {seconds}")
    return ok_429 and ok_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 jobs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--only", choices=["configured", "discovered"], default=None)
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the sandbox and the runner to separate cores")
    args = parser.parse_args()
    jobs = args.jobs or (500 if args.quick else 2000)
    ok = True
    if args.only in (None, "configured"):
        ok &= one("limit configured", jobs, args.limit, args.window, False, args.pin)
    if args.only in (None, "discovered"):
        ok &= one("no limit configured (discovered)", jobs, args.limit, args.window, True,
                  args.pin)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
