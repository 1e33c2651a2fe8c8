"""Machines of one team sharing the team's ledger (a real PostgreSQL) and the sandbox.

Each "machine" is its own folder: build, journal and local cache. What they share
is RUNNER_COORDINATOR (the `coordinator_url` fixture's database), sometimes the
remote cache, and the sandbox standing in for the provider account.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.retry import JobOutcome
from runner.plan.housekeeping import read_plan
from runner.sandbox import SandboxServer, parse_latency
from runner.team.coordinator import ClaimRequest, Coordinator
from tests.conftest import FakeClock, RemoteCacheSetup
from tests.engine.helpers import created, lockfile, run, stats
from tests.team.helpers import machine, outputs

EFFECTS = """
- id: sfx_{n}
  matrix: {n: [1, 2, 3, 4, 5, 6]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Footstep {n} on gravel", duration_seconds: 0.5}
- id: line
  model: elevenlabs/text-to-speech-turbo-2-5
  input: {text: "The gate is open.", voice: Brian}
"""
DIRECT = """
- id: hello
  model: text-to-speech
  input: {voice_id: JBFqnCBsd6RMkjVDRZzb, text: "Hello there.", output_format: mp3_22050_32}
"""


def audio(manifest: Path) -> dict[str, bytes]:
    return {name: data for name, data in outputs(manifest).items() if name.endswith(".mp3")}


def keys_of(manifest: Path, sandbox_url: str) -> dict[str, str]:
    """The keys a run against this sandbox claims: the request's, at this sandbox."""
    from runner.sandbox import discover_provider_urls

    plan, _ = read_plan(manifest, sandbox=True, strict=False)
    kie = discover_provider_urls(sandbox_url)["kie"]["base_url"]
    return {p.job.id: f"{p.key}@{kie}" for p in plan.jobs}


def claims_of(url: str, pipeline: str = "t") -> list:  # type: ignore[type-arg]
    async def read() -> list:  # type: ignore[type-arg]
        coordinator = Coordinator(url)
        await coordinator.open()
        try:
            async def every(conn):  # type: ignore[no-untyped-def]
                cur = await conn.execute("SELECT key, state, host, pid, task_id, job_id FROM "
                                         "runner_claims WHERE pipeline = %s", (pipeline,))
                return await cur.fetchall()
            return await coordinator._transaction(every)  # type: ignore[no-any-return]
        finally:
            await coordinator.close()
    return asyncio.run(read())


def test_a_second_machine_collects_what_the_first_bought_instead_of_buying_it(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str) -> None:
    a, b = machine(tmp_path, "a", EFFECTS), machine(tmp_path, "b", EFFECTS)
    code, _, result, tally = run(a, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert set(result.outcomes.values()) == {JobOutcome.DONE} and created(sandbox.url) == 7
    assert {row[1] for row in claims_of(coordinator_url)} == {"done"}

    code, _, result, tally = run(b, sandbox.url)  # no remote cache: it collects the tasks
    assert code == ExitCode.OK, tally.failures
    assert created(sandbox.url) == 7  # nothing bought again
    assert tally.requests_submitted == 0 and tally.credits == 0  # a paid for them
    assert set(result.outcomes.values()) == {JobOutcome.CACHED}
    assert tally.team is not None and tally.team.taken == 7
    assert audio(b) == audio(a) and len(audio(a)) == 7
    lock_a, lock_b = lockfile(a), lockfile(b)
    assert {j: e["task_id"] for j, e in lock_b.items()} == \
        {j: e["task_id"] for j, e in lock_a.items()}


def test_a_synchronous_answer_cannot_be_collected_again_without_a_remote_cache(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    a, b = machine(tmp_path, "a", DIRECT), machine(tmp_path, "b", DIRECT)
    assert main(["run", str(a), "--sandbox-url", sandbox.url, "--no-progress"]) == 0
    capsys.readouterr()
    code = main(["run", str(b), "--sandbox-url", sandbox.url, "--no-progress"])
    out = capsys.readouterr().err
    assert code == ExitCode.JOBS_FAILED and created(sandbox.url) == 1
    assert "skipped     hello [elevenlabs]: bought by " in out
    assert "set RUNNER_REMOTE_CACHE so that machines share their takes, or run with --force " \
           "hello to buy one for this machine" in out
    # The way out it names: a forced job buys a take for this machine on purpose.
    code = main(["run", str(b), "--sandbox-url", sandbox.url, "--no-progress",
                 "--force", "hello"])
    assert code == ExitCode.OK and created(sandbox.url) == 2


def test_machines_started_together_buy_each_request_once_in_all(
        tmp_path: Path, sandbox: SandboxServer, fake_clock: FakeClock,
        coordinator_url: str, remote_cache: RemoteCacheSetup) -> None:
    # Tasks finish only when the test moves the sandbox's clock: both machines claim,
    # the holders submit, the others wait; then every result is shared once.
    sandbox.config.latency = parse_latency("1")
    jobs = """
        - id: sfx_{n}
          matrix: {n: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]}
          model: elevenlabs/sound-effect-v2
          input: {text: "Rain drop {n}", duration_seconds: 0.5}
    """
    a, b = machine(tmp_path, "a", jobs), machine(tmp_path, "b", jobs)
    for manifest in (a, b):  # look less often while the clock stands still
        manifest.write_text(manifest.read_text().replace(
            "initial_interval_s: 0.02, max_interval_s: 0.05",
            "initial_interval_s: 0.3, max_interval_s: 0.5"))
    command = [sys.executable, "-m", "runner", "run", "--sandbox-url", sandbox.url,
               "--no-progress", "-v"]
    machines = [subprocess.Popen([*command, str(m)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=os.environ.copy())
                for m in (a, b)]
    try:
        deadline = time.monotonic() + 120  # a hang guard only
        while len([c for c in claims_of(coordinator_url) if c[1] == "submitted"]) < 20:
            assert time.monotonic() < deadline, "the machines did not submit their requests"
            assert all(p.poll() is None for p in machines), [p.communicate() for p in machines]
            time.sleep(0.2)
        holders = {(row[2], row[3]) for row in claims_of(coordinator_url)}
        fake_clock.advance(60)
        finished = [p.communicate(timeout=120) for p in machines]
    finally:
        for p in machines:
            p.kill() if p.poll() is None else None
    for p, (out, err) in zip(machines, finished, strict=True):
        assert p.returncode == 0, (out, err)
    assert created(sandbox.url) == 20  # once in all, not once per machine
    assert max(stats(sandbox.url)["tasks"]["by_input_hash"].values()) == 1
    assert 1 <= len(holders) <= 2  # whichever machine claimed a request first bought it
    assert audio(a) == audio(b) and len(audio(a)) == 20
    # Each request: one machine bought it, the other took its result (after waiting
    # for it, or finding it done when it came to it).
    bought = taken = 0
    for out, _ in finished:
        counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (done|cached)",
                                                          out.splitlines()[0])}
        bought += counts.get("done", 0)
        taken += counts.get("cached", 0)
        # Taken from the other machine: after waiting for its claim, or straight from
        # the remote cache when the result was recorded before this machine looked.
        lines = out.splitlines()
        team = next((x for x in lines if x.startswith("team: ")), "team: 0 waited, 0 built")
        remote = next(x for x in lines if x.startswith("remote cache: "))
        from_claims = int(team.split(", ")[1].split(" built")[0])
        from_remote = int(remote.split("remote cache: ")[1].split(" hit")[0])
        # (a result taken after waiting comes from the remote cache too: counted in both)
        cached = counts.get("cached", 0)
        assert from_claims <= cached <= from_claims + from_remote, (team, remote)
    assert (bought, taken) == (20, 20)


def test_a_request_a_dead_machine_was_sending_is_uncertain_until_a_person_decides(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    b = machine(tmp_path, "b", EFFECTS)
    key = keys_of(b, sandbox.url)["line"]

    async def die_while_sending() -> None:
        other = Coordinator(coordinator_url, lease_s=0.5)
        await other.open()
        ask = ClaimRequest(key, "t", "sandbox", "line", "kie")
        await other.claim(ask)
        assert await other.sending(key)
        assert other._heartbeat is not None and other._pool is not None
        other._heartbeat.cancel()  # as a kill -9: no more beats, nothing let go
        await other._pool.close()
        await asyncio.sleep(0.6)  # its lease runs out (the server's clock decides)

    asyncio.run(die_while_sending())
    code = main(["run", str(b), "--sandbox-url", sandbox.url, "--no-progress"])
    out = capsys.readouterr().out
    assert code == ExitCode.JOBS_FAILED
    assert created(sandbox.url) == 6  # the effects, not the line
    assert "sent (or was about to send) this request at" in out
    assert "--resubmit-uncertain line" in out
    code = main(["run", str(b), "--sandbox-url", sandbox.url, "--no-progress",
                 "--resubmit-uncertain", "line"])
    assert code == ExitCode.OK and created(sandbox.url) == 7


def test_runner_status_shows_what_other_machines_hold(
        tmp_path: Path, coordinator_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    b = machine(tmp_path, "b", EFFECTS)
    keys = {job_id: f"sha256:{job_id}" for job_id in ("sfx_1", "sfx_2", "line")}

    async def hold() -> tuple[str, int]:
        other = Coordinator(coordinator_url, lease_s=300)
        await other.open()
        await other.set_budget("team-sfx", 500)
        await other.claim(ClaimRequest(keys["sfx_1"], "t", "sandbox", "sfx_1", "kie",
                                       "team-sfx", 12))
        await other.sending(keys["sfx_1"])
        await other.submitted(keys["sfx_1"], "task-abc")
        await other.claim(ClaimRequest(keys["sfx_2"], "t", "sandbox", "sfx_2", "kie"))
        await other.claim(ClaimRequest(keys["line"], "t", "live", "line", "kie"))  # not this
        assert other._heartbeat is not None and other._pool is not None
        other._heartbeat.cancel()
        await other._pool.close()  # gone, its claims still held for 300 s
        return other.host, other.pid

    host, pid = asyncio.run(hold())
    assert main(["status", str(b), "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert "team (postgresql://runner@127.0.0.1:" in out and "2 open claim(s)" in out
    team = out.split("team (", 1)[1].splitlines()
    line = next(x for x in team if x.strip().startswith("sfx_1 "))
    assert "submitted" in line and "task task-abc" in line
    assert f"held by {host} (pid {pid}) since 20" in line and "s left" in line
    assert any(x.strip().startswith("sfx_2 ") and "waiting to send" in x for x in team)
    assert "shared budget 'team-sfx' 500: 0 spent, 12 reserved" in out
    assert main(["status", str(b), "--sandbox", "--json"]) == 0
    rows = {row["job_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["sfx_1"]["claim"]["task_id"] == "task-abc"
    assert rows["sfx_1"]["claim"]["pid"] == pid and rows["sfx_3"]["claim"] is None


def test_configuration_mistakes_stop_the_run_before_anything_is_bought(
        tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], postgres_server: object) -> None:
    a = machine(tmp_path, "a", EFFECTS)
    args = ["run", str(a), "--sandbox-url", sandbox.url, "--no-progress"]
    monkeypatch.delenv("RUNNER_COORDINATOR", raising=False)
    assert main([*args, "--budget", "team=100"]) == ExitCode.INVALID
    assert "--budget team: a shared budget lives in the team's coordinator: set " \
           "RUNNER_COORDINATOR" in capsys.readouterr().err
    monkeypatch.setenv("RUNNER_COORDINATOR", "mysql://runner:hunter2@127.0.0.1/x")
    assert main(args) == ExitCode.INVALID
    err = capsys.readouterr().err
    assert "RUNNER_COORDINATOR: expected postgresql://" in err and "hunter2" not in err
    from tests.services import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    monkeypatch.setenv("RUNNER_COORDINATOR", postgres_server.url("no_such_db"))
    code = main(args)
    err = capsys.readouterr().err
    assert code != ExitCode.OK and 'database "no_such_db" does not exist' in err
    monkeypatch.setenv("RUNNER_COORDINATOR", postgres_server.url("postgres"))
    assert main([*args, "--budget", "nobody-made-it"]) == ExitCode.INVALID
    assert "no such shared budget" in capsys.readouterr().err
    assert main([*args, "--budget", "x=5", "--max-credits", "6"]) == ExitCode.INVALID
    assert "disagree" in capsys.readouterr().err
    assert main([*args, "--budget", "bad name=5"]) == ExitCode.INVALID
    assert created(sandbox.url) == 0
    assert not (a.parent / "out.sandbox" / "t.lock.json").exists()


def test_a_shared_budget_spans_machines_and_runs(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Seven requests of 1 credit each (the sandbox's prices) against a budget of 5.
    a, b = machine(tmp_path, "a", EFFECTS), machine(tmp_path, "b", EFFECTS)
    code = main(["run", str(a), "--sandbox-url", sandbox.url, "--no-progress",
                 "--budget", "team-sfx=5"])
    out = capsys.readouterr().out
    assert code == ExitCode.JOBS_FAILED
    assert created(sandbox.url) == 5 and stats(sandbox.url)["credits_used"]["total"] == 5
    assert "5 done, 2 skipped" in out
    assert "budget stopped the run: shared budget 'team-sfx' 5: 5 spent, 0 reserved" in out
    # Another machine joins the budget as it is: what a bought, b takes for nothing;
    # the rest does not fit either.
    code = main(["run", str(b), "--sandbox-url", sandbox.url, "--no-progress",
                 "--budget", "team-sfx"])
    out = capsys.readouterr().out
    assert code == ExitCode.JOBS_FAILED and created(sandbox.url) == 5
    assert "5 cached, 2 skipped" in out and "team: 0 waited for another machine, 5 built " \
                                           "by another machine (not bought here)" in out
    # Raising the cap (a team's decision, said once) lets the rest through.
    code = main(["run", str(b), "--sandbox-url", sandbox.url, "--no-progress",
                 "--budget", "team-sfx", "--max-credits", "7"])
    out, err = capsys.readouterr()
    assert code == ExitCode.OK and created(sandbox.url) == 7
    assert "shared budget 'team-sfx': cap changed from 5 to 7 by this run" in out + err


# 25+ words: the sandbox makes a 10 s sound of it and bills ceil(1.2 x 10) = 12 credits,
# where the plan estimates 4 s (5 credits) and the worst case is the market's longest,
# 22 s (27 credits): tests/engine/test_budget.py, for --max-credits.
LONG_PROMPT = ("A long and winding description of a heavy wooden cart rolling slowly over wet "
               "cobblestones in a quiet medieval town at dawn while distant church bells ring "
               "and a dog barks twice")


def long_effects(root: Path, name: str, count: int) -> Path:
    """A machine with `count` sound effects of its own (no duration: the model picks)."""
    manifest = machine(root, name, f"""
        - id: cart_{{n}}
          matrix: {{n: [{', '.join(map(str, range(count)))}]}}
          model: elevenlabs/sound-effect-v2
          input: {{text: "{LONG_PROMPT} ({name} {{n}})"}}
    """)
    text = manifest.read_text()
    limits = "requests_per_window: 200, window_s: 1, polls_per_s: 500"
    assert limits in text
    manifest.write_text(text.replace(limits, f"{limits}, max_in_flight: 50", 1))
    return manifest


def test_a_shared_budget_reserves_the_worst_case_and_settles_to_the_bill(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str) -> None:
    """Issue 12's rule, kept by the team's ledger: two machines started together under
    one `--budget` reserve each request's worst case (27), not its estimate (5), in
    PostgreSQL, and settle to what the sandbox billed (12). Reserving the estimate
    would let 20 requests be in flight at once against a budget of 100: 240 billed."""
    cap = 100
    manifests = [long_effects(tmp_path, name, 25) for name in ("a", "b")]
    command = [sys.executable, "-m", "runner", "run", "--sandbox-url", sandbox.url,
               "--no-progress", "--budget", f"carts={cap}"]
    machines = [subprocess.Popen([*command, str(m)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=os.environ.copy())
                for m in manifests]
    try:
        finished = [p.communicate(timeout=180) for p in machines]  # a hang guard only
    finally:
        for p in machines:
            p.kill() if p.poll() is None else None
    billed = stats(sandbox.url)["credits_used"]["total"]
    bought = created(sandbox.url)
    print(f"\n50 effects estimated at 5, billed 12, worst case 27, one shared budget of "
          f"{cap}: {bought} bought, {billed:g} billed")
    assert billed <= cap, billed
    assert bought >= 5 and billed == 12 * bought  # the budget was used, each billed 12
    # The ledger settled every reservation to the bill: nothing left reserved.
    (spent, reserved), = ledger_rows(coordinator_url, "SELECT spent, reserved FROM "
                                     "runner_budgets WHERE name = 'carts'")
    assert (float(spent), float(reserved)) == (billed, 0.0)
    skipped = 0
    for p, (out, err) in zip(machines, finished, strict=True):
        assert p.returncode == ExitCode.JOBS_FAILED, (out, err)
        assert f"budget stopped the run: shared budget 'carts' {cap}: " in out, out
        for line in err.splitlines():
            if re.match(r"\s*\+[\d.]+s skipped ", line):
                skipped += 1
                assert "shared budget 'carts'" in line and \
                    "this job may cost up to 27 (estimated 5)" in line, line
    assert skipped == 50 - bought


def test_the_build_lock_and_the_team_ledger_work_together(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str) -> None:
    """One build, one run (the build lock, per folder) and one purchase per request
    across machines (the ledger): a run of a build another process holds waits for it,
    whatever the ledger says; a run of another build of the same manifest does not wait
    for that lock, and buys what nobody has claimed; the waiting run then takes it."""
    from runner.store.buildlock import BuildLock

    a, b = machine(tmp_path, "a", EFFECTS), machine(tmp_path, "b", EFFECTS)
    command = [sys.executable, "-m", "runner", "run", "--sandbox-url", sandbox.url,
               "--no-progress"]
    holder = BuildLock(a.parent / "out.sandbox" / ".runner", "runner run")
    assert holder.try_acquire()  # another run of build a, as far as anyone can tell
    errors = tmp_path / "a.err"
    try:
        with errors.open("w") as err:
            waiting = subprocess.Popen([*command, str(a)], stdout=subprocess.PIPE, stderr=err,
                                       text=True, env=os.environ.copy())
        deadline = time.monotonic() + 120  # hang guards only
        while "waiting for the build in " not in errors.read_text():
            assert waiting.poll() is None, (waiting.communicate(), errors.read_text())
            assert time.monotonic() < deadline, "the run of build a did not wait for its lock"
            time.sleep(0.05)
        # Build b is another folder: its own lock, free. It buys everything, while the
        # run of build a waits for a's lock (held by this test).
        other = subprocess.run([*command, str(b)], check=False, capture_output=True, text=True,
                               env=os.environ.copy(), timeout=120)
        assert other.returncode == ExitCode.OK, (other.stdout, other.stderr)
        assert "waiting for the build" not in other.stderr
        assert "7 done" in other.stdout and created(sandbox.url) == 7
        assert waiting.poll() is None  # still waiting for build a's lock
        assert not ledger_rows(coordinator_url, "SELECT key FROM runner_claims WHERE "
                               "state <> 'done'")
    finally:
        holder.release()
    try:
        out, _ = waiting.communicate(timeout=120)
    finally:
        waiting.kill() if waiting.poll() is None else None
    err_text = errors.read_text()
    assert waiting.returncode == ExitCode.OK, (out, err_text)
    assert err_text.count("waiting for the build in ") == 1
    assert "a/out.sandbox" in err_text and "(runner run)" in err_text
    # Everything was bought by build b: build a collects those tasks, buys nothing.
    assert "7 cached" in out and "7 built by another machine (not bought here)" in out
    assert created(sandbox.url) == 7 and audio(a) == audio(b)


def ledger_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def test_a_forced_job_still_reserves_in_the_shared_budget(
        tmp_path: Path, sandbox: SandboxServer, coordinator_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`--force` buys a new take on purpose: no other machine's claim is waited for, but
    the shared budget is the team's money and applies to it as to any request."""
    a = machine(tmp_path, "a", EFFECTS)
    args = ["run", str(a), "--sandbox-url", sandbox.url, "--no-progress"]
    assert main([*args, "--budget", "team-sfx=7"]) == ExitCode.OK  # 7 requests at 1
    assert created(sandbox.url) == 7
    capsys.readouterr()
    # The budget is spent: a forced job is not bought.
    code = main([*args, "--budget", "team-sfx", "--force", "sfx_1"])
    out = capsys.readouterr().out
    assert code == ExitCode.JOBS_FAILED and created(sandbox.url) == 7
    assert "shared budget 'team-sfx' 7: 7 spent, 0 reserved" in out
    # With room in it, the new take is bought, reserved and settled like any request.
    assert main([*args, "--budget", "team-sfx=8", "--force", "sfx_1"]) == ExitCode.OK
    assert created(sandbox.url) == 8
    (spent, reserved), = ledger_rows(coordinator_url, "SELECT spent, reserved FROM "
                                     "runner_budgets WHERE name = 'team-sfx'")
    assert (float(spent), float(reserved)) == (8.0, 0.0)
