"""The installed `runner` command over the example pipelines, plan, and schemas."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.cli.main import main
from runner.schemas.build import stale_files

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = sorted((ROOT / "pipelines").glob("*.yaml"))


def runner(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("runner")
    assert exe, "the console script is installed by `pip install -e .`"
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)


def test_version_and_help() -> None:
    assert runner("--version").stdout.startswith("runner ")
    assert "validate" in runner("--help").stdout


@pytest.mark.parametrize("manifest", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_every_example_pipeline_is_valid_and_editor_ready(manifest: Path) -> None:
    result = runner("validate", str(manifest))
    assert result.returncode == 0, result.stdout
    first = manifest.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/pipeline.schema.json"
    assert (manifest.parent / "../schemas/pipeline.schema.json").resolve().is_file()


def test_the_examples_are_what_the_issue_asks_for() -> None:
    plans = {}
    for manifest in PIPELINES:
        out = runner("plan", "--json", str(manifest)).stdout
        plans[manifest.stem] = json.loads(out)
    sfx = plans["game_sfx"]["jobs"]
    assert len({j["id"].split("#")[0] for j in sfx}) >= 20
    assert any(j["model"] == "elevenlabs/sound-effect-v2" for j in sfx)
    chapter = (ROOT / "pipelines" / "texts" / "lighthouse_chapter_01.txt").read_text()
    assert len(chapter) >= 3000
    assert any(j["kind"] == "stitch" for j in plans["audiobook_chapter"]["jobs"])
    assert all(j["model"] == "stable-audio" for j in plans["soundtrack"]["jobs"])
    text = (ROOT / "pipelines" / "interview_transcripts.yaml").read_text()
    assert "diarize: true" in text


def test_validate_reports_several_files_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\njobs: []\n")
    result = runner("validate", str(PIPELINES[0]), str(bad))
    assert result.returncode == 2
    assert f"{PIPELINES[0]}: ok" in result.stdout
    assert "bad.yaml:3:7: $.jobs" in result.stdout


def test_plan_shows_states_costs_and_keys(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "p.yaml"
    manifest.write_text("version: 1\nname: p\njobs:\n"
                        "  - id: a\n    model: elevenlabs/sound-effect-v2\n"
                        "    input: {text: x, duration_seconds: 5}\n"
                        "  - id: b\n    model: stable-audio\n    input: {prompt: y, steps: 10}\n")
    assert main(["plan", str(manifest)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert ["a", "elevenlabs/sound-effect-v2", "kie", "new", "6", "a.mp3"] in rows
    assert ["b", "stable-audio", "aimlapi", "new", "2,520", "b.wav"] in rows
    assert "2 to generate; estimated cost 2,526 credits" in out
    assert main(["plan", "--json", str(manifest)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [j["state"] for j in plan["jobs"]] == ["new", "new"]
    assert all(len(j["key"]) == 64 for j in plan["jobs"])
    assert plan["summary"]["estimated_cost"] == 2526


def test_checked_in_schemas_match_a_fresh_derivation() -> None:
    assert stale_files() == [], "run `runner schemas build` and commit the result"


def test_schemas_export_writes_a_self_contained_schema(tmp_path: Path) -> None:
    result = runner("schemas", "export", str(tmp_path))
    assert result.returncode == 0
    schema = json.loads((tmp_path / "pipeline.schema.json").read_text())
    refs = re.findall(r'"\$ref": "([^"]*)"', json.dumps(schema))
    assert refs and all(ref.startswith("#/$defs/") for ref in refs)  # self-contained
    assert "elevenlabs--sound-effect-v2" in schema["$defs"]


def test_init_writes_a_starter_that_validates_plans_and_runs(tmp_path: Path,
                                                             sandbox: object) -> None:
    result = runner("init", "sounds.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "sounds.yaml"
    first = manifest.read_text().splitlines()[0]
    assert first == "# yaml-language-server: $schema=pipeline.schema.json"
    schema = json.loads((tmp_path / "pipeline.schema.json").read_text())
    assert "elevenlabs--sound-effect-v2" in schema["$defs"]  # the editor's model rules
    assert runner("validate", "sounds.yaml", cwd=tmp_path).stdout == "sounds.yaml: ok (6 jobs)\n"
    assert "6 to generate" in runner("plan", "sounds.yaml", cwd=tmp_path).stdout
    url = sandbox.url  # type: ignore[attr-defined]
    ran = runner("run", "sounds.yaml", "--sandbox-url", url, "--no-progress", "-q", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "6 done" in ran.stdout
    again = runner("init", "sounds.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
    assert manifest.read_text().splitlines()[0] == first


def test_completion_scripts(tmp_path: Path) -> None:
    bash_script = runner("completion", "bash").stdout
    (tmp_path / "m.yaml").write_text("")
    probe = bash_script + """
comp() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); COMPREPLY=(); _runner_complete;
         echo "${COMPREPLY[*]}"; }
comp runner va
comp runner run --sa
comp runner run m.y
comp runner run m.yaml --log-format ""
comp runner schemas ""
comp runner completion ""
"""
    out = subprocess.run(["bash", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out == ["validate", "--sandbox --sandbox-url", "m.yaml", "text json",
                   "build export", "bash zsh fish"]
    fish = runner("completion", "fish").stdout
    assert "complete -c runner -n '__fish_seen_subcommand_from run' -l sandbox" in fish
    zsh = runner("completion", "zsh").stdout
    assert zsh.startswith("#compdef runner\n") and "bashcompinit" in zsh
    for shell, text in (("zsh", zsh), ("fish", fish)):
        exe = shutil.which(shell)
        if exe is None:
            continue  # the syntax check needs the shell; bash's behaviour is checked above
        check = subprocess.run([exe, "-n"], input=text, capture_output=True, text=True,
                               check=False)
        assert check.returncode == 0, check.stderr
