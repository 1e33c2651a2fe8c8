"""Machines of one team against one real S3 server (SeaweedFS) and the sandbox.

Each "machine" is its own folder: its own build, journal and local cache. They
share only the remote cache (RUNNER_REMOTE_CACHE and the AWS_* variables that
the `remote_cache` fixture sets) and the sandbox standing in for the provider.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxServer, parse_latency
from tests.conftest import FakeClock, RemoteCacheSetup
from tests.engine.helpers import created, lockfile, provider_requests, run
from tests.team.helpers import RemoteView, machine, outputs

# 100 jobs of every kind the runner makes: market effects and speech, transcripts of
# that speech, AI/ML music, ElevenLabs direct speech, and a narration (3 segments
# and the stitch of them, whose sidecar and subtitles travel in its record).
HUNDRED = f"""
- id: sfx_{{n}}
  matrix: {{n: {list(range(1, 79))}}}
  model: elevenlabs/sound-effect-v2
  input: {{text: "Footstep {{n}} on gravel", duration_seconds: 0.5}}
- id: line_{{n}}
  matrix: {{n: {list(range(1, 13))}}}
  model: elevenlabs/text-to-speech-turbo-2-5
  input: {{text: "Line number {{n}} is spoken.", voice: Brian}}
- id: caption_{{n}}
  matrix: {{n: [1, 2, 3]}}
  model: elevenlabs/speech-to-text
  audio: {{from: "line_{{n}}"}}
- id: harp
  model: stable-audio
  input: {{prompt: calm harp, seconds_total: 1, steps: 5}}
- id: direct_{{n}}
  matrix: {{n: [1, 2]}}
  model: text-to-speech
  input: {{voice_id: JBFqnCBsd6RMkjVDRZzb, text: "Hello number {{n}}.",
          output_format: mp3_22050_32}}
- id: story
  model: elevenlabs/text-to-speech-turbo-2-5
  input: {{voice: Brian, timestamps: true}}
  output: story.mp3
  narration:
    text: "The keeper climbed.\\n\\nThe lamp was lit.\\n\\nThe ships came home."
"""


def test_machine_b_gets_all_100_results_from_the_team_with_no_provider_request(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup) -> None:
    a = machine(tmp_path, "a", HUNDRED)
    code, plan, result, tally = run(a, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert len(plan.jobs) == 100
    assert tally.remote is not None
    assert (tally.remote.misses, tally.remote.stored) == (100, 100)
    assert len(RemoteView().records()) == 100

    b = machine(tmp_path, "b", HUNDRED)  # another folder: empty local cache, no lockfile
    before = provider_requests(sandbox.url)
    code, plan, result, tally = run(b, sandbox.url)
    assert code == ExitCode.OK, tally.failures
    assert provider_requests(sandbox.url) == before  # not one request of any kind
    assert tally.requests_submitted == 0
    assert set(result.outcomes.values()) == {JobOutcome.CACHED}
    assert tally.remote is not None and tally.remote.hits == 100
    assert tally.remote.bytes_moved > 0 and tally.remote.busy_s > 0
    built_a, built_b = outputs(a), outputs(b)
    assert len(built_a) > 100  # outputs, transcript and narration companions, lockfile
    assert built_b == built_a  # every byte, the lockfile's included


def test_the_summary_and_the_progress_show_what_the_remote_cache_did(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        capsys: object) -> None:
    jobs = """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
    """
    a, b = machine(tmp_path, "a", jobs), machine(tmp_path, "b", jobs)
    args = ["run", "--sandbox-url", sandbox.url, "--no-progress", "-v"]
    assert main([*args[:1], str(a), *args[1:]]) == 0
    assert main([*args[:1], str(b), *args[1:]]) == 0
    out, err = capsys.readouterr()  # type: ignore[attr-defined]
    summaries = [line for line in out.splitlines() if line.startswith("remote cache:")]
    assert len(summaries) == 2
    assert summaries[0].startswith("remote cache: 0 hit(s), 1 miss(es), 1 recorded;")
    assert summaries[1].startswith("remote cache: 1 hit(s), 0 miss(es), 0 recorded;")
    assert "MB moved, busy" in summaries[1]
    assert "remote miss" in err and "remote stored" in err and "remote hit" in err


def test_two_machines_started_together_buy_each_request_once_each_and_keep_the_first_take(
        tmp_path: Path, sandbox: SandboxServer, fake_clock: FakeClock,
        remote_cache: RemoteCacheSetup) -> None:
    # Tasks finish only when the test moves the sandbox's clock: both machines look in
    # the remote cache, miss and submit all 100 requests before either has a result, so
    # every request is bought by both and recorded by whichever is first.
    sandbox.config.latency = parse_latency("1")
    jobs = f"""
        - id: sfx_{{n}}
          matrix: {{n: {list(range(100))}}}
          model: elevenlabs/sound-effect-v2
          input: {{text: "Rain drop {{n}}", duration_seconds: 0.5}}
    """
    a = machine(tmp_path, "a", jobs)
    b = machine(tmp_path, "b", jobs)
    for manifest in (a, b):  # look less often while the clock stands still
        manifest.write_text(manifest.read_text().replace(
            "initial_interval_s: 0.02, max_interval_s: 0.05",
            "initial_interval_s: 0.3, max_interval_s: 0.5"))
    command = [sys.executable, "-m", "runner", "run", "--sandbox-url", sandbox.url,
               "--no-progress"]
    machines = [subprocess.Popen([*command, str(m)], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=os.environ.copy())
                for m in (a, b)]
    try:
        deadline = time.monotonic() + 180  # a hang guard only
        while created(sandbox.url) < 200:
            assert time.monotonic() < deadline, "the machines did not submit their requests"
            assert all(p.poll() is None for p in machines), [p.communicate() for p in machines]
            time.sleep(0.2)
        fake_clock.advance(60)
        finished = [p.communicate(timeout=180) for p in machines]
    finally:
        for p in machines:
            p.kill() if p.poll() is None else None
    for p, (out, err) in zip(machines, finished, strict=True):
        assert p.returncode == 0, (out, err)
    assert created(sandbox.url) == 200
    for manifest in (a, b):  # each request bought once per machine
        with sqlite3.connect(manifest.parent / "out.sandbox" / ".runner" / "journal.sqlite") as db:
            per_key = db.execute("SELECT key, count(*) FROM tasks GROUP BY key").fetchall()
        assert len(per_key) == 100 and {n for _, n in per_key} == {1}
    lock_a, lock_b = lockfile(a), lockfile(b)
    view = RemoteView()
    for job_id, entry in lock_a.items():
        assert lock_b[job_id]["sha256"] == entry["sha256"], job_id  # the same take
        record = view.record(entry["key"])
        assert record is not None and record.sha256 == entry["sha256"]  # the first recorded
    assert outputs(a) == outputs(b)
    recorded = adopted = 0
    for out, _ in finished:
        line = next(x for x in out.splitlines() if x.startswith("remote cache:"))
        recorded += int(line.split(" recorded")[0].rsplit(" ", 1)[1])
        adopted += int(line.split(" adopted")[0].rsplit(" ", 1)[1]) if "adopted" in line else 0
    assert (recorded, adopted) == (100, 100)  # every request: one recorded it, one adopted
    takes_a = {e["sha256"] for e in lock_a.values()}
    assert len(takes_a) == 100


def test_wrong_credentials_stop_the_run_with_a_clear_error_and_nothing_is_bought(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        monkeypatch: object, capsys: object) -> None:
    wrong = "not-the-secret-9876543210"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)  # type: ignore[attr-defined]
    manifest = machine(tmp_path, "a", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
    """)
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress"])
    out, err = capsys.readouterr()  # type: ignore[attr-defined]
    assert code == ExitCode.JOBS_FAILED
    assert f"remote cache {remote_cache.url} at {remote_cache.server.endpoint}" in err
    assert "access denied (403 SignatureDoesNotMatch): check AWS_ACCESS_KEY_ID and " \
           "AWS_SECRET_ACCESS_KEY" in err
    assert wrong not in out + err and remote_cache.env["AWS_SECRET_ACCESS_KEY"] not in out + err
    assert created(sandbox.url) == 0 and provider_requests(sandbox.url) == {}
    assert not (manifest.parent / "out.sandbox" / "t.lock.json").exists()
    # The explicit way round: without the remote cache the run buys as before.
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress",
                 "--remote-cache-mode", "off"])
    assert code == ExitCode.OK and created(sandbox.url) == 1


def test_no_credentials_at_all_is_a_usage_error(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        monkeypatch: object, capsys: object) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # type: ignore[attr-defined]
    manifest = machine(tmp_path, "a", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
    """)
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress"])
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert code == ExitCode.INVALID
    assert "no credentials: set AWS_SECRET_ACCESS_KEY" in err
    assert created(sandbox.url) == 0


def test_the_lockfile_pins_its_take_even_where_the_team_recorded_another(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup) -> None:
    jobs = """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
    """
    a = machine(tmp_path, "a", jobs)
    assert run(a, sandbox.url)[0] == 0
    first = lockfile(a)["door"]
    # A forced job pays for a new take on purpose: the remote cache does not answer for
    # it, and the new take is not swapped for the team's.
    code, _, result, _ = run(a, sandbox.url, force=["door"])
    assert code == 0 and result.outcomes == {"door": JobOutcome.DONE}
    second = lockfile(a)["door"]
    assert second["sha256"] != first["sha256"] and created(sandbox.url) == 2
    assert RemoteView().record(first["key"]).sha256 == first["sha256"]  # type: ignore[union-attr]
    # Another checkout of this lockfile restores the take it pins, from the remote cache.
    c = machine(tmp_path, "c", jobs)
    (c.parent / "out.sandbox").mkdir()
    (c.parent / "out.sandbox" / "t.lock.json").write_text(
        (a.parent / "out.sandbox" / "t.lock.json").read_text())
    code, _, result, _ = run(c, sandbox.url)
    assert code == 0 and result.outcomes == {"door": JobOutcome.CACHED}
    assert created(sandbox.url) == 2
    assert outputs(c) == outputs(a)
    # A pinned take that is gone from the remote cache: the team's take, with a warning,
    # rather than a new purchase.
    RemoteView().delete(f"cas/sha256/{second['sha256']}")
    d = machine(tmp_path, "d", jobs)
    (d.parent / "out.sandbox").mkdir()
    (d.parent / "out.sandbox" / "t.lock.json").write_text(
        (a.parent / "out.sandbox" / "t.lock.json").read_text())
    code, _, result, tally = run(d, sandbox.url)
    assert code == 0 and result.outcomes == {"door": JobOutcome.CACHED}
    assert created(sandbox.url) == 2
    assert lockfile(d)["door"]["sha256"] == first["sha256"]
    assert any("the take the lockfile pins: its bytes are missing" in w and
               "restored the team's take instead" in w for w in tally.warnings), tally.warnings


def test_read_mode_restores_but_records_nothing(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup) -> None:
    a = machine(tmp_path, "a", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
    """)
    assert run(a, sandbox.url)[0] == 0
    b = machine(tmp_path, "b", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
        - id: bell
          model: elevenlabs/sound-effect-v2
          input: {text: Bell, duration_seconds: 1}
    """)
    code, _, result, _ = run(b, sandbox.url, remote_cache_mode="read")
    assert code == 0
    assert result.outcomes == {"door": JobOutcome.CACHED, "bell": JobOutcome.DONE}
    assert len(RemoteView().records()) == 1  # bell was bought, not recorded
    assert json.loads((b.parent / "out.sandbox" / "t.lock.json").read_text())["jobs"]["bell"]
