"""Reproducible, incremental builds: only what changed is generated, nothing is lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.retry import JobOutcome
from runner.sandbox import SandboxServer
from runner.store.cache import ContentCache
from tests.engine.helpers import created, lockfile, output, provider_requests, run, write_manifest

JOBS = """
- id: door
  model: elevenlabs/sound-effect-v2
  input: {text: Door creak, duration_seconds: 1}
- id: line
  model: elevenlabs/text-to-speech-turbo-2-5
  input: {text: "The gate is open."}
- id: line_captions
  model: elevenlabs/speech-to-text
  audio: {from: line}
- id: steps_{s}
  matrix: {s: [wood, snow]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Steps on {s}", duration_seconds: 1}
"""


@pytest.fixture
def built(tmp_path: Path, sandbox: SandboxServer) -> Path:
    manifest = write_manifest(tmp_path, JOBS)
    code, *_ = run(manifest, sandbox.url)
    assert code == 0
    return manifest


def edit(manifest: Path, old: str, new: str) -> None:
    text = manifest.read_text()
    assert old in text
    manifest.write_text(text.replace(old, new))


def test_editing_one_job_regenerates_it_and_its_dependents_only(
        built: Path, sandbox: SandboxServer) -> None:
    before = created(sandbox.url)
    edit(built, "The gate is open.", "The gate is shut.")
    code, _plan, result, _tally = run(built, sandbox.url)
    assert code == 0
    assert created(sandbox.url) == before + 2  # the line, and its transcript
    assert result.outcomes == {"line": JobOutcome.DONE, "line_captions": JobOutcome.DONE}
    assert "shut" in output(built, "line_captions.txt").read_text()


def test_editing_one_of_many_makes_exactly_one_create_task(
        built: Path, sandbox: SandboxServer) -> None:
    before = provider_requests(sandbox.url)["POST /api/v1/jobs/createTask"]["200"]
    edit(built, "Door creak", "Door slam")
    assert run(built, sandbox.url)[0] == 0
    assert provider_requests(sandbox.url)["POST /api/v1/jobs/createTask"]["200"] == before + 1


def test_deleted_or_damaged_outputs_come_back_from_the_cache(
        built: Path, sandbox: SandboxServer) -> None:
    before = created(sandbox.url)
    entry = lockfile(built)["door"]
    output(built, "door.mp3").unlink()
    damaged = output(built, "steps_wood.mp3")
    damaged.write_bytes(b"\0" * damaged.stat().st_size)  # same size, wrong content
    code, _plan, result, _tally = run(built, sandbox.url)
    assert code == 0 and created(sandbox.url) == before
    assert result.outcomes == {"door": JobOutcome.CACHED, "steps_wood": JobOutcome.CACHED}
    assert lockfile(built)["door"]["sha256"] == entry["sha256"]
    assert output(built, "steps_wood.mp3").read_bytes()[:3] in (b"ID3", b"\xff\xfb")


def test_an_earlier_take_is_restored_without_paying_again(
        built: Path, sandbox: SandboxServer) -> None:
    first = lockfile(built)["door"]["sha256"]
    edit(built, "Door creak", "Door slam")
    run(built, sandbox.url)
    before = created(sandbox.url)
    edit(built, "Door slam", "Door creak")  # back to the first request
    _code, _plan, result, _tally = run(built, sandbox.url)
    assert result.outcomes == {"door": JobOutcome.CACHED}
    assert created(sandbox.url) == before
    assert lockfile(built)["door"]["sha256"] == first


def test_force_regenerates_on_purpose(built: Path, sandbox: SandboxServer) -> None:
    before = created(sandbox.url)
    _code, _plan, result, _tally = run(built, sandbox.url, force=["steps_snow"])
    assert result.outcomes == {"steps_snow": JobOutcome.DONE}
    assert created(sandbox.url) == before + 1


def test_locked_refuses_to_generate(built: Path, sandbox: SandboxServer,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    before = created(sandbox.url)
    assert main(["run", str(built), "--sandbox-url", sandbox.url, "--locked"]) == 0
    edit(built, "Door creak", "Door slam")
    assert main(["run", str(built), "--sandbox-url", sandbox.url, "--locked"]) == ExitCode.INVALID
    assert "--locked: 1 job(s) would be generated: door" in capsys.readouterr().err
    assert created(sandbox.url) == before


def test_a_frozen_job_keeps_its_approved_take(built: Path, sandbox: SandboxServer) -> None:
    take = lockfile(built)["door"]
    edit(built, "- id: door\n", "- id: door\n    freeze: true\n")
    edit(built, "Door creak", "Door slam")
    before = created(sandbox.url)
    code, plan, result, _tally = run(built, sandbox.url)
    assert code == 0 and created(sandbox.url) == before and not result.outcomes
    assert lockfile(built)["door"] == take
    assert [p.state.value for p in plan.jobs if p.job.id == "door"] == ["frozen"]


def test_sandbox_and_live_keys_differ(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = {}
    for flag in ([], ["--sandbox"]):
        assert main(["plan", "--json", str(built), *flag]) == 0
        keys[bool(flag)] = {j["id"]: j["key"] for j in json.loads(capsys.readouterr().out)["jobs"]}
    assert all(keys[True][job] != keys[False][job] for job in keys[True])


def test_status_and_clean(built: Path, sandbox: SandboxServer,
                          capsys: pytest.CaptureFixture[str]) -> None:
    edit(built, "Door creak", "Door slam")
    run(built, sandbox.url)  # the creak take is now superseded, kept in the cache
    text = built.read_text()
    built.write_text(text[:text.index("- id: steps_{s}")].rstrip() + "\n")  # drop steps_*
    assert main(["status", str(built), "--sandbox"]) == 0
    status = capsys.readouterr().out
    assert "door" in status and "done" in status and "steps_wood" not in status
    assert main(["clean", str(built), "--sandbox", "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "steps_wood.mp3" in dry and output(built, "steps_wood.mp3").exists()
    assert main(["clean", str(built), "--sandbox"]) == 0
    cleaned = capsys.readouterr().out
    assert not output(built, "steps_wood.mp3").exists()
    assert output(built, "door.mp3").exists() and output(built, "line_captions.srt").exists()
    cache = built.parent / "out.sandbox" / ".runner" / "cache"
    # Paid takes that only the cache holds stay (the creak, steps_wood, steps_snow),
    # and clean says so; --prune-takes removes them.
    assert len(list(ContentCache(cache).blobs())) == 6
    assert "kept 3 paid take(s) that only the cache holds" in cleaned
    assert main(["clean", str(built), "--sandbox", "--prune-takes"]) == 0
    blobs = list(ContentCache(cache).blobs())
    assert len(blobs) == 3  # door (slam), line, line_captions: the superseded creak is gone


def test_a_fresh_checkout_restores_from_a_shared_cache(
        tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lockfile committed, outputs and journal absent: a shared cache brings them back."""
    shared = tmp_path / "shared-cache"
    monkeypatch.setenv("RUNNER_CACHE_DIR", str(shared))
    first = tmp_path / "first"
    first.mkdir()
    manifest = write_manifest(first, JOBS)
    assert run(manifest, sandbox.url)[0] == 0
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "t.yaml").write_text(manifest.read_text())
    (clone / "out.sandbox").mkdir()
    lock = (first / "out.sandbox" / "t.lock.json").read_text()
    (clone / "out.sandbox" / "t.lock.json").write_text(lock)
    before = created(sandbox.url)
    code, _plan, result, _tally = run(clone / "t.yaml", sandbox.url)
    assert code == 0 and created(sandbox.url) == before
    assert set(result.outcomes.values()) == {JobOutcome.CACHED}
    assert (clone / "out.sandbox" / "t.lock.json").read_text() == lock
