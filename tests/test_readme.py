"""The README tells the truth: its example output is what the command prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_validate_example_is_real_output() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\$ cd docs/examples && runner validate broken.yaml\n(.*?)```", readme,
                      re.DOTALL)
    assert block, "the README's validate example is missing"
    result = subprocess.run([sys.executable, "-m", "runner", "validate", "broken.yaml"], check=False,
                            cwd=ROOT / "docs" / "examples", capture_output=True, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2
    assert result.stdout == block.group(1)


def test_every_command_in_the_reference_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^\| `runner (\w+)", readme, re.MULTILINE))
    result = subprocess.run([sys.executable, "-m", "runner", "--help"], capture_output=True, check=False,
                            text=True)
    # argparse puts the help of a long command name on the next line.
    listed = set(re.findall(r"^    (\w+)(?:  |\n)", result.stdout, re.MULTILINE))
    assert documented == listed, (documented, listed)


def test_the_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"## Tests\n\n```sh\n(.*?)\n```", readme, re.DOTALL).group(1)  # type: ignore[union-attr]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == command
