"""`--keep-going` is the default; `--fail-fast` stops submitting (issue 12, item 9).

Both flags share one setting, and argparse gave it the first flag's implied
default: fail-fast ran by default, and one early failure marked every job not
yet sent "interrupted" although nobody interrupted anything. Through the real
CLI, one job at a time (`-j 1`) so the failing job is known to come first.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.sandbox import SandboxServer
from runner.store.journal import Journal
from tests.engine.helpers import created, write_manifest

# The transcription's audio is off loopback: the sandbox's task fails ("Audio file
# download failed") every time, and after two new tasks the job fails.
JOBS = """
- id: a_words
  model: elevenlabs/speech-to-text
  audio: https://example.com/talk.mp3
- id: hit_{n}
  matrix: {n: [1, 2, 3, 4]}
  model: elevenlabs/sound-effect-v2
  input: {text: "Hit {n}", duration_seconds: 1}
"""


def outcomes(manifest: Path) -> dict[str, tuple[str, str]]:
    journal = manifest.parent / "out.sandbox" / ".runner" / "journal.sqlite"
    with Journal(journal, readonly=True) as j:
        return {k: (o.outcome, o.message or "") for k, o in j.latest_outcomes().items()}


def test_keep_going_is_the_default(tmp_path: Path, sandbox: SandboxServer,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "-j", "1",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == ExitCode.JOBS_FAILED, out
    seen = outcomes(manifest)
    assert seen["a_words"][0] == "failed"
    assert {seen[f"hit_{n}"][0] for n in range(1, 5)} == {"done"}, seen
    assert "interrupted" not in out and "4 done, 1 failed" in out


def test_fail_fast_reports_what_it_did_not_start(tmp_path: Path, sandbox: SandboxServer,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, JOBS)
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "-j", "1",
                 "--no-progress", "--fail-fast", "--log-format", "json"])
    captured = capsys.readouterr()
    assert code == ExitCode.JOBS_FAILED
    seen = outcomes(manifest)
    assert seen["a_words"][0] == "failed"
    for n in range(1, 5):
        assert seen[f"hit_{n}"] == ("skipped",
                                    "not started (--fail-fast): job 'a_words' failed"), seen
    assert "interrupted" not in captured.out
    assert "skipped (4): not started (--fail-fast): job 'a_words' failed" in captured.out
    finished = [json.loads(line) for line in captured.err.splitlines()
                if line.startswith("{") and '"finished"' in line]
    assert sorted(e["outcome"] for e in finished) == ["failed"] + ["skipped"] * 4
    assert created(sandbox.url) == 3  # the failing job's three tasks, nothing else
