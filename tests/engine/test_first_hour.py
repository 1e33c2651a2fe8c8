"""A newcomer's first hour, as a person meets it: missing keys, the sandbox and
live builds side by side, pipes that close, an unreachable provider, an output
edited by hand, plans that agree with runs, and clean."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.retry import JobOutcome, RetryPolicy
from runner.sandbox import SandboxServer
from runner.store.cache import ContentCache
from tests.engine.helpers import created, lockfile, output, run, write_manifest

JOBS = """
- id: hit_{n}
  matrix: {n: [1, 2, 3]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
"""


def runner_exe() -> str:
    exe = shutil.which("runner")
    assert exe, "the console script is installed by `pip install -e .`"
    return exe


def test_every_missing_key_is_named_in_one_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KIE_API_KEY", "AIMLAPI_KEY", "ELEVENLABS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    manifest = write_manifest(tmp_path, JOBS + """
- id: music
  model: stable-audio
  input: {prompt: calm harp, steps: 10}
- id: line
  model: text-to-speech
  input: {text: Hello there, voice_id: JBFqnCBsd6RMkjVDRZzb}
""")
    assert main(["run", str(manifest), "--no-progress"]) == ExitCode.INVALID
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for name in ("KIE_API_KEY", "AIMLAPI_KEY", "ELEVENLABS_API_KEY", "--sandbox"):
        assert name in err[0]


def test_the_retry_hint_repeats_the_sandbox_url(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    sandbox.config.update({"faults": "501=1.0"})  # every generation fails
    manifest = write_manifest(tmp_path, JOBS)
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress", "-q"])
    assert code == ExitCode.JOBS_FAILED
    hint = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("to retry them:")]
    assert hint and f"--sandbox-url {sandbox.url} --only hit_1 hit_2 hit_3" in hint[0]


def test_reading_commands_name_their_build_and_point_at_the_sandbox_one(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = write_manifest(tmp_path, JOBS)
    before = sorted(p.name for p in tmp_path.iterdir())
    # Before anything ran: reading creates nothing, and a report has nothing to show.
    assert main(["status", str(manifest)]) == 0
    assert main(["plan", str(manifest)]) == 0
    assert main(["report", str(manifest)]) == ExitCode.INVALID
    assert "has never run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert run(manifest, sandbox.url)[0] == 0
    capsys.readouterr()
    for command in ("status", "report"):
        assert main([command, str(manifest)]) == ExitCode.INVALID
        err = capsys.readouterr().err
        assert "no live build" in err and "add --sandbox" in err, err
    assert main(["plan", str(manifest)]) == 0
    captured = capsys.readouterr()
    assert "live build: out (lockfile t.lock.json)" in captured.out
    assert "a sandbox build exists (out.sandbox): add --sandbox" in captured.err
    assert main(["status", str(manifest), "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sandbox build: out.sandbox") and "3 done" in out
    assert not (tmp_path / "out").exists()  # the live build was never created


def test_a_closed_pipe_does_not_stop_the_run_from_finishing_and_recording(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    proc = subprocess.Popen([runner_exe(), "run", str(manifest), "--sandbox-url", sandbox.url,
                             "--no-progress", "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    for _ in range(3):  # `| head -3`
        proc.stdout.readline()
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0
    assert len(lockfile(manifest)) == 3


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, """
- id: hit_{n}
  matrix: {n: [""" + ", ".join(str(i) for i in range(3000)) + """]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
""")
    proc = subprocess.Popen([runner_exe(), "plan", str(manifest)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()  # `| head -1`: more than a pipe's 64 KiB was still to come
    proc.stdout.close()
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""  # no traceback, no "Exception ignored"


def test_an_unreachable_account_is_reported_after_its_window_not_after_minutes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("RUNNER_KIE_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("KIE_API_KEY", "k")
    manifest = write_manifest(tmp_path, JOBS)
    from runner.cli.run import RunOptions, run_pipeline

    # The loop's clock decides; a short window keeps the test short, and many more
    # attempts than the window allows are available, so only the window can end it.
    policy = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, unreachable_after_s=0.5,
                         max_attempts=dict.fromkeys(RetryPolicy().max_attempts, 10_000))
    code, _plan, result, tally = run_pipeline(manifest, RunOptions(retry_policy=policy))
    assert code == ExitCode.ACCOUNT_REFUSED
    assert set(result.outcomes.values()) == {JobOutcome.SKIPPED}
    reason = tally.stopped_accounts["kie"]
    assert "is unreachable" in reason and f"http://127.0.0.1:{port}" in reason
    assert "could not connect" in reason


def test_a_hand_edited_output_is_kept_until_asked(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    assert run(manifest, sandbox.url)[0] == 0
    take = output(manifest, "hit_1.mp3")
    generated = take.read_bytes()
    # "Trimmed in an editor": the first half, encoded again as the same format.
    from runner.audio.ffmpeg import ffmpeg_exe

    trimmed_path = tmp_path / "trimmed.mp3"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(take), "-t", "0.5",
                    "-c:a", "libmp3lame", "-b:a", "128k", "-ar", "44100", str(trimmed_path)],
                   check=True, timeout=60)
    trimmed = trimmed_path.read_bytes()
    take.write_bytes(trimmed)
    before = created(sandbox.url)
    assert main(["status", str(manifest), "--sandbox"]) == 0
    status = capsys.readouterr().out
    assert any(line.split()[:2] == ["hit_1", "modified"] for line in status.splitlines())
    assert main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert take.read_bytes() == trimmed and created(sandbox.url) == before
    assert "kept 1 output(s) edited by hand: hit_1.mp3" in out
    assert "--restore hit_1" in out and "--force hit_1" in out
    # Changing the request does not buy a take over the edit either.
    text = manifest.read_text()
    manifest.write_text(text.replace('"Hit {n}"', '"Hit {n}, louder"'))
    _code, plan, _result, _tally = run(manifest, sandbox.url)
    states = {p.job.id: p.state.value for p in plan.jobs}
    assert states == {"hit_1": "modified", "hit_2": "changed", "hit_3": "changed"}
    assert take.read_bytes() == trimmed and created(sandbox.url) == before + 2
    manifest.write_text(text)
    code, _plan, result, _tally = run(manifest, sandbox.url, restore=["hit_1"])
    assert code == 0 and result.outcomes == dict.fromkeys(["hit_1", "hit_2", "hit_3"],
                                                          JobOutcome.CACHED)
    assert take.read_bytes() == generated and created(sandbox.url) == before + 2


def test_plan_and_locked_agree_with_run_about_takes_in_the_cache(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    assert run(manifest, sandbox.url)[0] == 0
    text = manifest.read_text()
    manifest.write_text(text.replace('"Hit {n}"', '"Hit {n}, again"'))
    assert run(manifest, sandbox.url)[0] == 0
    manifest.write_text(text)  # back to the first requests: their takes are cached
    assert main(["plan", "--json", "--sandbox", str(manifest)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [j["state"] for j in plan["jobs"]] == ["restore"] * 3
    assert plan["summary"]["to_generate"] == 0 and plan["summary"]["estimated_cost"] == 0
    before = created(sandbox.url)
    assert main(["run", str(manifest), "--sandbox-url", sandbox.url, "--locked",
                 "--no-progress"]) == 0
    assert created(sandbox.url) == before
    assert {entry["sha256"] for entry in lockfile(manifest).values()}


def test_clean_keeps_paid_takes_only_the_cache_holds(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    assert run(manifest, sandbox.url, force=["hit_1"])[0] == 0
    assert run(manifest, sandbox.url, force=["hit_1"])[0] == 0  # the first take superseded
    cache = tmp_path / "out.sandbox" / ".runner" / "cache"
    assert len(list(ContentCache(cache).blobs())) == 4
    assert main(["clean", str(manifest), "--sandbox"]) == 0
    out = capsys.readouterr().out
    assert "kept 1 paid take(s) that only the cache holds" in out
    assert len(list(ContentCache(cache).blobs())) == 4
    assert main(["clean", str(manifest), "--sandbox", "--prune-takes"]) == 0
    assert len(list(ContentCache(cache).blobs())) == 3


def test_plan_prices_one_request_made_by_two_jobs_once(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, """
- id: a
  model: elevenlabs/sound-effect-v2
  input: {text: Thud, duration_seconds: 5}
- id: b
  model: elevenlabs/sound-effect-v2
  input: {text: Thud, duration_seconds: 5}
""")
    assert main(["plan", "--json", "--sandbox", str(manifest)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [j["cost"] for j in plan["jobs"]] == [6, 0]
    code, _plan, _result, tally = run(manifest, sandbox.url)
    assert code == 0 and created(sandbox.url) == 1
    assert tally.credits == plan["summary"]["estimated_cost"]
