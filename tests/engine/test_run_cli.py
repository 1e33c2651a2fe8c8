"""`runner run` as a person uses it: keys, .env, base URL overrides, Ctrl-C, adopting
an unanswered request's task, download limits."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.retry import JobOutcome
from runner.errors import DownloadError
from runner.providers import download
from runner.sandbox import SandboxConfig, SandboxServer, parse_latency
from runner.store.cache import ContentCache
from tests.engine.helpers import created, run, stats, write_manifest

JOBS = """
- id: hit_{n}
  matrix: {n: [1, 2, 3, 4, 5, 6]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
"""


def test_no_key_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    manifest = write_manifest(tmp_path, JOBS)
    assert main(["run", str(manifest)]) == ExitCode.INVALID
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "set KIE_API_KEY" in err[0] and "--sandbox" in err[0]


def test_a_live_run_with_a_dotenv_key_and_a_base_url_from_the_environment(
        tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The live target (lockfile beside the manifest), pointed at a sandbox by environment."""
    monkeypatch.delenv("KIE_API_KEY", raising=False)
    monkeypatch.setenv("RUNNER_KIE_BASE_URL", sandbox.url)
    sandbox.config.update({"api_keys": ["k-from-dotenv"]})
    manifest = write_manifest(tmp_path, JOBS)
    (tmp_path / ".env").write_text("# keys\nexport KIE_API_KEY='k-from-dotenv'\n")
    assert main(["run", str(manifest), "--no-progress", "-q"]) == ExitCode.OK
    lock = json.loads((tmp_path / "t.lock.json").read_text())
    assert len(lock["jobs"]) == 6
    assert "k-from-dotenv" not in (tmp_path / "t.lock.json").read_text()
    journal = tmp_path / "out" / ".runner" / "journal.sqlite"
    assert b"k-from-dotenv" not in journal.read_bytes()


def test_a_wrong_key_stops_the_account(tmp_path: Path, sandbox: SandboxServer,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RUNNER_KIE_BASE_URL", sandbox.url)
    monkeypatch.setenv("KIE_API_KEY", "sk-wrong-key-1234")
    sandbox.config.update({"api_keys": ["the-right-one"]})
    manifest = write_manifest(tmp_path, JOBS)
    assert main(["run", str(manifest), "--no-progress"]) == ExitCode.ACCOUNT_REFUSED
    out = capsys.readouterr()
    assert "account 'kie' stopped" in out.out
    assert "sk-wrong-key-1234" not in out.out + out.err
    assert created(sandbox.url) == 0


@pytest.fixture
def slow_sandbox() -> SandboxServer:
    """Real time and one-second tasks: something is in flight when the run is stopped."""
    server = SandboxServer(SandboxConfig(latency=parse_latency("1")))
    server.start()
    yield server
    server.stop()


def _journal_rows(manifest: Path) -> list[tuple[str, str | None]]:
    db = manifest.parent / "out.sandbox" / ".runner" / "journal.sqlite"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT state, task_id FROM tasks").fetchall()


def test_ctrl_c_collects_what_is_in_flight_then_exits_130(
        tmp_path: Path, slow_sandbox: SandboxServer) -> None:
    manifest = write_manifest(tmp_path, JOBS.replace("[1, 2, 3, 4, 5, 6]", str(list(range(40)))),
                              extra="")
    text = manifest.read_text().replace("requests_per_window: 200, window_s: 1",
                                        "requests_per_window: 2, window_s: 1")
    manifest.write_text(text)  # slow submissions: most jobs are still waiting at Ctrl-C
    process = subprocess.Popen(
        [sys.executable, "-m", "runner", "run", str(manifest), "--sandbox-url",
         slow_sandbox.url, "--grace", "5", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until tasks are at the provider
        db = tmp_path / "out.sandbox" / ".runner" / "journal.sqlite"
        try:
            if db.exists() and any(state == "submitted" for state, _ in _journal_rows(manifest)):
                break
        except sqlite3.OperationalError:  # the file exists before its tables do
            pass
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == ExitCode.INTERRUPTED, (out, err)
    made = created(slow_sandbox.url)
    assert 0 < made < 40, (made, out, err)
    rows = _journal_rows(manifest)
    # Everything submitted was collected within the grace period; nothing half-done.
    assert {state for state, _ in rows} <= {"materialized", "submitted"}, (rows, out, err)
    # The next run finishes the rest and sends none of those again (at full speed:
    # limits are not part of what was asked).
    manifest.write_text(text.replace("requests_per_window: 2, window_s: 1",
                                     "requests_per_window: 200, window_s: 1"))
    code, _plan, _result, _tally = run(manifest, slow_sandbox.url)
    assert code == 0
    assert created(slow_sandbox.url) == 40
    assert max(stats(slow_sandbox.url)["tasks"]["by_input_hash"].values()) == 1


def test_adopting_the_task_of_an_unanswered_request(tmp_path: Path,
                                                    sandbox: SandboxServer) -> None:
    sandbox.config.update({"faults": "drop=1.0"})
    manifest = write_manifest(tmp_path, """
        - id: only
          model: elevenlabs/sound-effect-v2
          input: {text: Thunder, duration_seconds: 1}
    """)
    code, _plan, result, tally = run(manifest, sandbox.url)
    assert result.outcomes["only"] is JobOutcome.UNCERTAIN
    assert "--adopt-task only=TASK_ID" in tally.failures[0].reason or \
        "--resubmit-uncertain only" in tally.failures[0].reason
    # A person finds the task in the provider's log (here: the sandbox's own records).
    (task_id,) = sandbox.sandbox.state.tasks  # type: ignore[union-attr]
    sandbox.config.update({"faults": ""})
    code, _plan, result, tally = run(manifest, sandbox.url, adopt={"only": task_id})
    assert code == 0 and result.outcomes["only"] is JobOutcome.DONE
    assert created(sandbox.url) == 1  # collected, not bought again


def test_downloads_refuse_other_schemes_and_oversized_results(
        tmp_path: Path, sandbox: SandboxServer) -> None:
    with pytest.raises(DownloadError, match="scheme 'file:'"):
        download.check_url("file:///etc/passwd", "j")
    created_task = httpx.post(f"{sandbox.url}/api/v1/jobs/createTask",
                              headers={"Authorization": "Bearer k"},
                              json={"model": "elevenlabs/sound-effect-v2",
                                    "input": {"text": "x", "duration_seconds": 2}}).json()
    record = httpx.get(f"{sandbox.url}/api/v1/jobs/recordInfo",
                       params={"taskId": created_task["data"]["taskId"]},
                       headers={"Authorization": "Bearer k"}).json()
    url = json.loads(record["data"]["resultJson"])["resultUrls"][0]
    cache = ContentCache(tmp_path / "cache")

    async def fetch(max_bytes: int) -> download.Fetched:
        async with httpx.AsyncClient() as client:
            return await download.fetch(client, url, cache, spec=None, ext="mp3",
                                        provider="kie", job_id="j", max_bytes=max_bytes)

    with pytest.raises(DownloadError, match="cap"):
        asyncio.run(fetch(1000))
    assert asyncio.run(fetch(10_000_000)).blob.size > 1000
    incoming = tmp_path / "cache" / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())  # nothing left behind
