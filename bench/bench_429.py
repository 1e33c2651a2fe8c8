"""Benchmark (issue 12, item 6): what a few stray 429s cost, and how fast the rate recovers.

A 429 does not always mean "you are too fast": another client on the same key,
or a per-key cap, answers 429s too. What the runner must do: after the 429s
stop, be back at the configured rate within two windows; and a steady 6% of
createTask answered 429 must cost at most 2x the clean makespan.

What: N distinct sound-effect jobs on kie against the sandbox in its own process
(`--latency 0.5`), the account configured at `requests_per_window: 50, window_s: 1`
(`max_in_flight: 100`, `polls_per_s: 500`), `runner run` as a separate process:

1. clean: no faults;
2. `--faults 429=0.02`, then `429=0.06`: that share of createTask answered 429 at
   random, all through the run;
3. recovery, random: `429=0.3` for the first 4 s, then none (set live through
   `POST /_sandbox/config`);
4. recovery, another client: the sandbox limits each key to 50/1 s and another
   client takes 30 of every window (`other_client_requests`) for the first 4 s.

How: makespan is the journal's run span (start-up excluded). For recovery, the
journal's createTask attempts (a refused one keeps no task id) give the time of
the last 429; accepted createTasks are then counted per window after it.

Targets: 2% and 6%: makespan <= 2x clean. Recovery: from the third window after
the last 429 on (that is, within two windows), >= 90% of the configured limit per
window on average.

    python bench/bench_429.py [--quick] [--jobs 300] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path

import runbench as rb

LIMIT = 50
WINDOW_S = 1.0
LIMITS = {"requests_per_window": LIMIT, "window_s": WINDOW_S, "max_in_flight": 100,
          "polls_per_s": 500}


class UnknownKnob(Exception):
    pass


def configure(url: str, knobs: dict[str, object]) -> bool:
    """Change the sandbox's knobs live; False if it does not know one of them."""
    request = urllib.request.Request(f"{url}/_sandbox/config", data=json.dumps(knobs).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=30).close()
    except urllib.error.HTTPError:
        return False
    return True


def attempts(manifest: Path) -> tuple[list[float], list[float]]:
    """(accepted createTask times, refused createTask times) of the last run."""
    path = manifest.parent / "build.sandbox" / ".runner" / "journal.sqlite"
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (run_id,) = db.execute("SELECT max(id) FROM runs").fetchone()
        rows = db.execute("SELECT created_at, task_id FROM tasks WHERE run_id = ?",
                          (run_id,)).fetchall()
    finally:
        db.close()
    return (sorted(t for t, task in rows if task), sorted(t for t, task in rows if not task))


def run_once(jobs: int, seed: int, faults: str, pin: bool,
             burst: dict[str, object] | None = None,
             sandbox_args: tuple[str, ...] = ()) -> tuple[float, list[float], list[float]]:
    """(makespan, accepted times, refused times). `burst`: knobs set for the first 4 s."""
    args = ["--latency", "0.5", "--seed", str(seed), *sandbox_args]
    if faults:
        args += ["--faults", faults]
    with tempfile.TemporaryDirectory() as tmp, rb.sandbox(args, pin=pin) as sb:
        manifest = rb.write_manifest(Path(tmp), jobs, limits=LIMITS)
        stopper = None
        if burst is not None:
            if not configure(sb.url, burst):
                raise UnknownKnob(f"this sandbox does not know {sorted(burst)}")
            calm = {k: ("" if k == "faults" else 0) for k in burst}
            stopper = threading.Timer(4.0, configure, (sb.url, calm))
            stopper.start()
        try:
            rb.run_runner(manifest, sb.url, pin=pin)
        finally:
            if stopper is not None:
                stopper.cancel()
        view = rb.journal_view(manifest)
        accepted, refused = attempts(manifest)
    return view.run_finished - view.run_started, accepted, refused


def recovery(label: str, accepted: list[float], refused: list[float]) -> bool:
    """createTasks per window, counted from the last 429; from the third window on
    (within two windows) the mean of the whole windows must be >= 90% of the limit.
    Sends come in bursts (a sliding window's slots free together), so one window may
    hold part of a burst and the next the rest: the mean, not the least, says whether
    the rate is back."""
    if not refused:
        print(f"  {label}: no 429 was met")
        return False
    last = refused[-1]
    after = [t - last for t in accepted if t > last]
    windows = [0] * (int(after[-1] / WINDOW_S) + 1) if after else []
    for t in after:
        windows[int(t / WINDOW_S)] += 1
    # Windows while jobs still waited (two windows' worth still to send): the run's
    # tail, when the batch runs out, says nothing about the rate.
    whole = [windows[k] for k in range(2, len(windows)) if sum(windows[k:]) >= 2 * LIMIT]
    share = sum(whole) / len(whole) / LIMIT if whole else float("nan")
    ok = bool(whole) and share >= 0.9
    rb.line(f"{label}: 429s / accepted", f"{len(refused)} / {len(accepted)}", "", None)
    rb.line(f"{label}: sends per window after", " ".join(map(str, windows[:10])), "", None)
    rb.line(f"{label}: from the 3rd window on", f"{share:.0%} of {LIMIT} per window",
            ">= 90% (within 2 windows)", ok)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 jobs")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-pin", dest="pin", action="store_false")
    args = parser.parse_args()
    jobs = args.jobs or (300 if args.quick else 600)
    print(f"stray 429s: {jobs} jobs, limit {LIMIT}/{WINDOW_S:g} s, 0.5 s tasks")
    clean, accepted, _ = run_once(jobs, args.seed, "", args.pin)
    rb.line("clean makespan", f"{clean:.2f} s", "", None)
    rate = rb.sustained_rate(accepted, LIMIT)
    rb.line("clean sustained rate", f"{rate:.1f}/s ({rate / (LIMIT / WINDOW_S):.0%})", "", None)
    ok = True
    for share in (0.02, 0.06):
        span, accepted, refused = run_once(jobs, args.seed, f"429={share}", args.pin)
        good = span <= 2 * clean
        ok &= good
        rb.line(f"429={share:.0%} makespan", f"{span:.2f} s ({span / clean:.2f}x), "
                f"{len(refused)} 429s", f"<= {2 * clean:.2f} s (2x)", good)
    _, accepted, refused = run_once(jobs, args.seed, "", args.pin, burst={"faults": "429=0.3"})
    ok &= recovery("random 429s for 4 s", accepted, refused)
    try:
        _, accepted, refused = run_once(jobs, args.seed, "", args.pin,
                                        burst={"other_client_requests": 30},
                                        sandbox_args=("--rate-limit", f"{LIMIT}/{WINDOW_S:g}"))
    except UnknownKnob as exc:
        print(f"  another client: not measured ({exc})")
        ok = False
    else:
        ok &= recovery("another client for 4 s", accepted, refused)
    print(rb.verdict(ok))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
