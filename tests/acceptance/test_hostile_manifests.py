"""Hostile manifests too large or too odd to keep as files in `cases/`: made here.

Each is refused (or accepted) through the real CLI, in a separate process where a
hang or a crash must show: exit 2, one located line per problem, nothing on
stderr. Time and memory are measured in bench/bench_hostile.py, not asserted
here (the machine is shared); the timeouts below only guard against a hang.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.cli.main import main
from runner.errors import ManifestInvalid
from runner.manifest import yaml_source as yamlsource

HEAD = "version: 1\nname: t\njobs:\n"
SFX = "elevenlabs/sound-effect-v2"


def validate(tmp_path: Path, text: str | bytes, *extra_env: tuple[str, str]
             ) -> subprocess.CompletedProcess[str]:
    manifest = tmp_path / "m.yaml"
    if isinstance(text, bytes):
        manifest.write_bytes(text)
    else:
        manifest.write_text(text, encoding="utf-8")
    exe = shutil.which("runner")
    assert exe
    env = {**os.environ, **dict(extra_env)}
    return subprocess.run([exe, "validate", "m.yaml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def assert_refused(result: subprocess.CompletedProcess[str], line: int, fragment: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == ""
    problems = result.stdout.splitlines()[:-1]
    assert len(problems) == 1, result.stdout[:2000]
    assert re.match(rf"m\.yaml:{line}:\d+: \$", problems[0]), problems[0][:300]
    assert fragment in problems[0]
    assert len(problems[0]) < 1200


def test_a_20_mb_string_is_refused_as_too_long_for_the_model(tmp_path: Path) -> None:
    text = HEAD + f"  - id: a\n    model: {SFX}\n    input:\n      text: {'x' * 20_000_000}\n"
    assert_refused(validate(tmp_path, text), 7,
                   "too long: 20,000,000 characters, at most 5,000 allowed")


def test_nesting_100000_deep_is_refused_with_its_line(tmp_path: Path) -> None:
    text = HEAD + f"  - id: a\n    model: {SFX}\n    input:\n      text: hi\n" \
        + "      x: " + "[" * 100_000 + "]" * 100_000 + "\n"
    assert_refused(validate(tmp_path, text), 8, "nesting deeper than")


def test_a_manifest_of_more_jobs_than_the_cap_stops_at_the_first_job_over_it(
        tmp_path: Path) -> None:
    job = f"  - id: jN\n    model: {SFX}\n    input: {{text: steps}}\n"
    text = HEAD + "".join(job.replace("N", str(i)) for i in range(60))
    result = validate(tmp_path, text, ("RUNNER_MAX_JOBS", "50"))
    assert_refused(result, 4 + 3 * 50, "a list of more than 50 items")


def test_a_text_file_that_is_a_fifo_is_refused_without_reading_it(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "chapter.txt")  # reading it would wait for a writer forever
    text = HEAD + ("  - id: n\n    model: elevenlabs/text-to-speech-turbo-2-5\n"
                   "    input: {voice: Brian}\n    narration: {text_file: chapter.txt}\n")
    assert_refused(validate(tmp_path, text), 7, "text file 'chapter.txt' is not a regular file")


def test_an_alias_bomb_is_refused_in_bounded_memory(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    levels = ["a: &a [" + ",".join(["lol"] * 10) + "]"]
    for i, name in enumerate("bcdefghij"):
        previous = "abcdefghij"[i]
        levels.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 10) + "]")
    (tmp_path / "m.yaml").write_text("\n".join(levels) + "\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    os.chdir(tmp_path)
    code = main(["validate", "m.yaml"])
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    out = capsys.readouterr().out
    assert code == 2
    assert "(an alias bomb?)" in out.splitlines()[0]
    # 10**10 values if expanded: memory stays flat because nothing is expanded.
    assert grown_kib < 100_000, grown_kib


def test_literal_values_are_no_alias_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    """A large manifest holds many values; only those that aliases add are counted
    (with the cap lowered, the same document passes without aliases, not with them)."""
    monkeypatch.setattr(yamlsource, "MAX_ALIASED_VALUES", 1_000)
    literal = "jobs:\n" + "".join(f"  - {{id: j{i}, input: {{text: t, n: {i}}}}}\n"
                                  for i in range(2_000))
    assert len(yamlsource.parse_yaml(literal, "m.yaml").data["jobs"]) == 2_000
    aliased = "x: &x {text: t, n: 1}\njobs:\n" + "".join(f"  - {{id: j{i}, input: *x}}\n"
                                                        for i in range(2_000))
    with pytest.raises(ManifestInvalid, match="alias bomb"):
        yamlsource.parse_yaml(aliased, "m.yaml")
