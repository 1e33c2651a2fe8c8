"""`runner validate` over the manifests of `cases/`: each one's output is the file beside it.

A case is `cases/NAME.yaml` with `cases/NAME.out`, the exact output `runner
validate NAME.yaml` prints when run inside `cases/` (the check-jsonschema way:
adding a case is adding two files). An optional `cases/NAME.env` holds
`KEY=VALUE` lines set in the environment for that case. Files the cases refer
to (texts, audio, symbolic links that lead out) live in `cases/files/`.

A case whose `.out` ends with `: ok (N jobs)` must exit 0; every other case
must exit 2, print one `NAME.yaml:LINE:COL: ...` line per problem and nothing on
stderr (no traceback).

To write the `.out` of a new case, run `RUNNER_UPDATE_CASES=1 python -m pytest
tests/acceptance/test_validate_cases.py`, then read what it wrote: it is what
the test will hold the command to from then on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from runner.cli.main import main

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = sorted(p.stem for p in CASES_DIR.glob("*.yaml"))
UPDATE = os.environ.get("RUNNER_UPDATE_CASES") == "1"
PROBLEM_LINE = re.compile(r"(?P<file>[^:]+\.yaml):(?P<line>\d+):(?P<col>\d+): \$\S*( \(job [^)]+\))?: ")


def case_env(name: str) -> dict[str, str]:
    path = CASES_DIR / f"{name}.env"
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def check_shape(name: str, out: str) -> None:
    """What every case's output must look like, whatever it says."""
    lines = out.splitlines()
    assert lines, "no output"
    if lines[-1].startswith(f"{name}.yaml: ok ("):
        assert len(lines) == 1, lines
        return
    assert re.fullmatch(r"\d+ problems? found", lines[-1]), lines[-1]
    count = int(lines[-1].split()[0])
    assert count == len(lines) - 1, lines
    for line in lines[:-1]:
        match = PROBLEM_LINE.match(line)
        assert match and match["file"] == f"{name}.yaml", line
        assert len(line) < 1200, f"a problem line of {len(line)} characters"


@pytest.mark.parametrize("name", CASES)
def test_case(name: str, monkeypatch: pytest.MonkeyPatch,
              capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in case_env(name).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(CASES_DIR)
    code = main(["validate", f"{name}.yaml"])
    captured = capsys.readouterr()
    expected_path = CASES_DIR / f"{name}.out"
    if UPDATE:
        expected_path.write_text(captured.out, encoding="utf-8")
    expected = expected_path.read_text(encoding="utf-8")
    assert captured.out == expected
    assert captured.err == ""
    check_shape(name, captured.out)
    ok = expected.startswith(f"{name}.yaml: ok (")
    assert code == (0 if ok else 2)


def test_every_case_has_its_expected_output() -> None:
    outs = {p.stem for p in CASES_DIR.glob("*.out")}
    assert outs == set(CASES), "a .out without its .yaml, or the reverse"
    assert len(CASES) >= 80


def test_validation_writes_nothing_beside_the_cases() -> None:
    """Reading commands never create folders: the cases' output_dirs stay absent."""
    listing = sorted(p.name for p in CASES_DIR.iterdir())
    assert "build" not in listing and not any(name.endswith(".sandbox") for name in listing)


def test_the_installed_command_over_every_case_at_once() -> None:
    """The console script, one process, every case without an environment of its own:
    exit 2, the problems of every file, and no traceback on stderr."""
    exe = shutil.which("runner")
    assert exe, "the console script is installed by `pip install -e .`"
    names = [name for name in CASES if not case_env(name)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNNER_")}
    result = subprocess.run([exe, "validate", *(f"{n}.yaml" for n in names)], cwd=CASES_DIR,
                            capture_output=True, text=True, env=env, timeout=300,
                            check=False)
    assert result.returncode == 2
    assert result.stderr == ""
    expected, total = [], 0
    for name in names:
        lines = (CASES_DIR / f"{name}.out").read_text().splitlines()
        if lines[-1].endswith(" found"):
            expected += lines[:-1]
            total += int(lines[-1].split()[0])
        else:
            expected += lines
    assert result.stdout.splitlines() == [*expected, f"{total} problems found"]
