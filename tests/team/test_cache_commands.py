"""`runner cache push | pull | gc` through the real CLI, against the real S3 server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.cli.run import RunOptions, run_pipeline
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxServer
from tests.conftest import RemoteCacheSetup
from tests.engine.helpers import QUICK_RETRIES, created, lockfile, run
from tests.team.helpers import RemoteView, machine

JOBS = """
- id: door
  model: elevenlabs/sound-effect-v2
  input: {text: Door creak, duration_seconds: 1}
- id: thunder
  model: elevenlabs/sound-effect-v2
  input: {text: Rolling thunder, duration_seconds: 3}
- id: line
  model: elevenlabs/text-to-speech-turbo-2-5
  input: {text: "The gate is open.", voice: Brian}
- id: line_captions
  model: elevenlabs/speech-to-text
  audio: {from: line}
- id: story
  model: elevenlabs/text-to-speech-turbo-2-5
  input: {voice: Brian, timestamps: true}
  output: story.mp3
  narration:
    text: "The keeper climbed.\\n\\nThe lamp was lit."
"""


def live_files(manifest: Path) -> dict[str, bytes]:
    """A live build's outputs and its lockfile (beside the manifest), by relative path."""
    build = manifest.parent / "out"
    files = {p.relative_to(build).as_posix(): p.read_bytes() for p in sorted(build.rglob("*"))
             if p.is_file() and ".runner" not in p.relative_to(build).parts}
    files["t.lock.json"] = (manifest.parent / "t.lock.json").read_bytes()
    return files


def test_a_fresh_clone_with_the_lockfile_gets_every_asset_without_a_key(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A live build, its provider played by the sandbox; the remote cache not used yet.
    monkeypatch.setenv("KIE_API_KEY", "a-live-key-the-clone-never-has")
    monkeypatch.setenv("RUNNER_KIE_BASE_URL", sandbox.url)
    a = machine(tmp_path, "a", JOBS)
    code, _, _, tally = run_pipeline(a, RunOptions(remote_cache_mode="off",
                                                   retry_policy=QUICK_RETRIES))
    assert code == ExitCode.OK, tally.failures
    bought = created(sandbox.url)
    capsys.readouterr()

    assert main(["cache", "push", str(a)]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"pushed 7 take(s) to {remote_cache.url}: " in out and "0 already there" in out
    assert len(RemoteView().records()) == 7
    assert main(["cache", "push", str(a)]) == ExitCode.OK  # nothing new to send
    assert "pushed 0 take(s)" in capsys.readouterr().out

    clone = tmp_path / "clone"  # what git gives a newcomer: the manifest and its lockfile
    clone.mkdir()
    for name in ("t.yaml", "t.lock.json"):
        shutil.copy(a.parent / name, clone / name)
    monkeypatch.delenv("KIE_API_KEY")
    monkeypatch.delenv("RUNNER_KIE_BASE_URL")
    assert main(["cache", "pull", str(clone / "t.yaml")]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"pulled 7 take(s) from {remote_cache.url}: " in out
    assert live_files(clone / "t.yaml") == live_files(a)  # sidecar and subtitles included
    assert (clone / "out" / "story.json").exists() and (clone / "out" / "line_captions.srt")

    assert main(["run", str(clone / "t.yaml"), "--no-progress"]) == ExitCode.OK
    summary = capsys.readouterr().out
    assert "t: 7 jobs: 7 up to date in" in summary and "0 requests" in summary
    assert created(sandbox.url) == bought
    assert main(["cache", "pull", str(clone / "t.yaml")]) == ExitCode.OK
    assert "pulled 0 take(s)" in capsys.readouterr().out


def test_pull_names_the_takes_the_remote_cache_does_not_have(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        capsys: pytest.CaptureFixture[str]) -> None:
    a = machine(tmp_path, "a", JOBS)
    code, *_ = run(a, sandbox.url, remote_cache_mode="off")  # bought, never shared
    assert code == ExitCode.OK
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(a, clone / "t.yaml")
    (clone / "out.sandbox").mkdir()
    shutil.copy(a.parent / "out.sandbox" / "t.lock.json", clone / "out.sandbox")
    capsys.readouterr()
    assert main(["cache", "pull", str(clone / "t.yaml"), "--sandbox"]) == ExitCode.JOBS_FAILED
    captured = capsys.readouterr()
    assert "door: the locked take " in captured.err and "its bytes are missing" in captured.err
    assert "7 problem(s)" in captured.out


def test_gc_keeps_what_lockfiles_pin_and_what_is_young_and_sweeps_the_rest(
        tmp_path: Path, sandbox: SandboxServer, remote_cache: RemoteCacheSetup,
        capsys: pytest.CaptureFixture[str]) -> None:
    kept = machine(tmp_path, "a", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
        - id: thunder
          model: elevenlabs/sound-effect-v2
          input: {text: Rolling thunder, duration_seconds: 3}
    """)
    assert run(kept, sandbox.url)[0] == ExitCode.OK
    first = lockfile(kept)["thunder"]
    # A new take on request: the lockfile pins it, the team's record keeps the first.
    assert run(kept, sandbox.url, force=["thunder"])[0] == ExitCode.OK
    pinned = lockfile(kept)["thunder"]
    assert pinned["sha256"] != first["sha256"]
    dropped = machine(tmp_path, "b", """
        - id: gong
          model: elevenlabs/sound-effect-v2
          input: {text: Temple gong, duration_seconds: 3}
    """)
    assert run(dropped, sandbox.url)[0] == ExitCode.OK
    gong = lockfile(dropped)["gong"]
    view = RemoteView()
    before = (view.records(), view.blobs())
    assert len(before[0]) == 3 and len(before[1]) == 4
    lock = str(kept.parent / "out.sandbox" / "t.lock.json")
    capsys.readouterr()

    assert main(["cache", "gc", "--keep-lockfiles", lock]) == ExitCode.OK  # 7 days' grace
    out = capsys.readouterr().out
    # gong's record is young, so it stays, and so do the bytes it names.
    assert "(2 request(s), 4 take(s)) and 1 unreferenced object(s) younger than 7 day(s); " \
           "deleted 0 record(s) and 0 blob(s)" in out
    assert (view.records(), view.blobs()) == before

    assert main(["cache", "gc", "--keep-lockfiles", lock, "--grace-days", "0",
                 "--dry-run"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"would delete ac/v1/{gong['key']}" in out
    assert f"would delete cas/sha256/{gong['sha256']}" in out
    assert (view.records(), view.blobs()) == before

    assert main(["cache", "gc", "--keep-lockfiles", str(tmp_path / "typo.lock.json"),
                 "--grace-days", "0"]) == ExitCode.JOBS_FAILED
    assert "no such lockfile; nothing was deleted" in capsys.readouterr().err
    assert (view.records(), view.blobs()) == before

    assert main(["cache", "gc", "--keep-lockfiles", lock, "--grace-days", "0"]) == ExitCode.OK
    assert "deleted 1 record(s) and 1 blob(s)" in capsys.readouterr().out
    # Age alone deletes nothing: what the lockfile pins stays, and so do the bytes the
    # kept record names (the first thunder take) although no lockfile pins them.
    assert view.records() == sorted(e["key"] for e in lockfile(kept).values())
    assert view.blobs() == sorted([*(e["sha256"] for e in lockfile(kept).values()),
                                   first["sha256"]])
    fresh = machine(tmp_path, "c", """
        - id: door
          model: elevenlabs/sound-effect-v2
          input: {text: Door creak, duration_seconds: 1}
        - id: thunder
          model: elevenlabs/sound-effect-v2
          input: {text: Rolling thunder, duration_seconds: 3}
    """)
    bought = created(sandbox.url)
    code, _, result, _ = run(fresh, sandbox.url)
    assert code == ExitCode.OK and set(result.outcomes.values()) == {JobOutcome.CACHED}
    assert created(sandbox.url) == bought
    assert lockfile(fresh)["thunder"]["sha256"] == first["sha256"]  # the team's take
