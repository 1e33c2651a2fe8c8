"""The engine's last check before paying (issue 12, item 8): no output or companion
file may land in the build's state folder, on the lockfile, or on another file of
the run. `runner validate` refuses these manifests too (the bad-input work); the
engine checks again, because one that slips through is found out only after
paying, when a result overwrites the journal or another job's subtitles.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runner.cli.exitcodes import ExitCode
from runner.cli.main import main
from runner.engine.materialize import output_conflicts
from runner.manifest.load import load_pipeline
from runner.manifest.outputs import companions
from runner.plan.plan import make_plan
from runner.sandbox import SandboxServer
from runner.store.layout import Target, layout_for
from tests.engine.helpers import created, write_manifest

GOOD = """
- id: door
  model: elevenlabs/sound-effect-v2
  input: {text: "A door", duration_seconds: 1}
- id: words
  model: elevenlabs/speech-to-text
  audio: {from: door}
  output: words.json
- id: chapter
  model: elevenlabs/text-to-speech-turbo-2-5
  narration: {text: "One. Two."}
  output: chapter.mp3
"""


def collision(lines: list[str], name: str, one: tuple[str, str],
              other: tuple[str, str]) -> bool:
    """A line reports `name` written by both (job, as what): on whichever came second."""
    return any(f"(job {a[0]}): {a[1]} '{name}' is also written by job '{b[0]}' (as its {b[1]})"
               in line for a, b in ((one, other), (other, one)) for line in lines)


def test_the_check_names_every_conflict_with_its_line(tmp_path: Path) -> None:
    """Validation is bypassed here on purpose (the outputs are changed after loading):
    this is the engine's own defence."""
    pipeline = load_pipeline(write_manifest(tmp_path, GOOD + """
- id: a
  model: elevenlabs/sound-effect-v2
  input: {text: "x", duration_seconds: 1}
- id: b
  model: elevenlabs/sound-effect-v2
  input: {text: "y", duration_seconds: 1}
- id: c
  model: elevenlabs/sound-effect-v2
  input: {text: "z", duration_seconds: 1}
- id: d
  model: elevenlabs/sound-effect-v2
  input: {text: "w", duration_seconds: 1}
"""), {})
    jobs = pipeline.jobs
    assert [f for f, _ in companions(jobs["words"], "words.json")] == [
        "words.txt", "words.srt", "words.vtt"]
    assert [f for f, _ in companions(jobs["chapter"], "chapter.mp3")] == [
        "chapter.json", "chapter.srt", "chapter.vtt"]
    jobs["a"].output = ".runner/journal.sqlite"
    jobs["b"].output = "words.srt"
    jobs["c"].output = "t.lock.json"  # a sandbox build keeps its lockfile in output_dir
    jobs["d"].output = "chapter.json"
    layout = layout_for(pipeline, Target.SANDBOX)
    plan = make_plan(pipeline, layout)
    problems = output_conflicts(plan, layout.cache_dir({}))
    text = [str(p) for p in problems]
    assert len(text) == 4, text
    assert all(line.startswith("t.yaml:") or "/t.yaml:" in line for line in text)
    assert any("(job a): output '.runner/journal.sqlite' would be written into the build's "
               "state folder" in line for line in text)
    assert collision(text, "words.srt", ("b", "output"), ("words", "transcript's subtitles"))
    assert any("(job c): output 't.lock.json' would be written into the lockfile" in line
               for line in text)
    assert collision(text, "chapter.json", ("d", "output"), ("chapter", "programme's sidecar"))
    # A live build keeps its lockfile beside the manifest: `t.lock.json` is then fine.
    live = layout_for(pipeline, Target.LIVE)
    assert len(output_conflicts(make_plan(pipeline, live), live.cache_dir({}))) == 3
    jobs["a"].output, jobs["b"].output, jobs["c"].output, jobs["d"].output = \
        "a.mp3", "b.mp3", "c.mp3", "d.mp3"
    assert output_conflicts(make_plan(pipeline, layout), layout.cache_dir({})) == []


def test_a_run_refuses_before_paying_and_the_journal_survives(
        tmp_path: Path, sandbox: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write_manifest(tmp_path, GOOD)
    assert main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress",
                 "-q"]) == ExitCode.OK
    made = created(sandbox.url)
    journal = tmp_path / "out.sandbox" / ".runner" / "journal.sqlite"
    before = journal.read_bytes()
    manifest.write_text(manifest.read_text() + """  - id: clobber
    model: elevenlabs/sound-effect-v2
    input: {text: "x", duration_seconds: 1}
    output: .runner/journal.sqlite
""")
    code = main(["run", str(manifest), "--sandbox-url", sandbox.url, "--no-progress"])
    assert code == ExitCode.INVALID
    assert created(sandbox.url) == made  # nothing was paid for
    # Refused by validation or by the engine's check: either names the line and the file.
    err = capsys.readouterr().err
    assert "t.yaml:" in err and ".runner/journal.sqlite" in err
    assert journal.read_bytes()[:16] == before[:16] == b"SQLite format 3\x00"
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
        assert db.execute("SELECT count(*) FROM assets").fetchone()[0] >= 3
