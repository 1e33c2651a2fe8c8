"""Careless and hostile edits of real manifests: validation refuses them, it never crashes.

Each example pipeline and acceptance case has one to three of its values replaced by
something a user may write by mistake (a word where a format goes, a list where a
number goes, a path out, a placeholder nobody defines, ...), and the result is
loaded. Anything but a `RunnerError` (which the CLI prints as located problems) is a
traceback after the user pressed enter: once, `output_format: mp3` was a ValueError
from the expansion. Fixed seeds: the same manifests every run.
"""

from __future__ import annotations

import copy
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.errors import RunnerError
from runner.manifest.load import load_pipeline

ROOT = Path(__file__).resolve().parent.parent.parent
CASES = ROOT / "tests" / "acceptance" / "cases"
SOURCES = sorted((ROOT / "pipelines").glob("*.yaml")) + sorted(CASES.glob("*.yaml"))
MISTAKES: list[Any] = [
    "bogus", "", -1, 0, 10**9, 1e300, True, None, [], {}, [1, "a"], {"a": 1}, "x" * 300,
    "../x", "a/b", "{id}", "{nope}", "{", "}", "mp3", 1.5, "pcm_0", "wav_1", "opus_48000_999",
    "mp3_44100_128", "https://x", "file:///etc/passwd", "/abs", "a\\b", "é", "a:b", ".", "..",
    "#x", "0", "text-to-speech", "elevenlabs", "kie", "aimlapi", "elevenlabs/sound-effect-v2",
]


def _paths(node: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a document (the root excepted), not deeper than any manifest goes."""
    if at:
        yield at
    if len(at) > 12:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*at, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*at, index))


def _documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in SOURCES:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, ValueError, RecursionError):  # (UnicodeDecodeError is one)
            continue  # the cases of broken YAML: nothing to edit
        if isinstance(data, dict) and isinstance(data.get("jobs"), list) \
                and sum(1 for _ in _paths(data)) < 3000:
            out.append((path.name, data))
    return out


# The example pipelines, and the cases whose expected output says the file is valid.
_VALID = {path.name for path in SOURCES if path.parent.name == "pipelines"
          or "ok (" in path.with_suffix(".out").read_text(encoding="utf-8")}


@pytest.fixture(scope="module")
def beside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where the mutated manifests find what the originals name by relative
    path: the pipelines' texts and audio, and the cases' files (links kept)."""
    folder = tmp_path_factory.mktemp("mutated")
    for name in ("texts", "audio"):
        shutil.copytree(ROOT / "pipelines" / name, folder / name)
    shutil.copytree(CASES / "files", folder / "files", symlinks=True)
    return folder


@pytest.mark.parametrize("seed", range(4))
def test_edited_manifests_are_refused_or_read_never_crash(seed: int, beside: Path) -> None:
    rng = random.Random(seed)
    documents = _documents()
    outcomes = {"read": 0, "refused": 0}
    # Half of the edits start from a manifest that is valid (most edits are refused all the
    # same: about one in twenty is still a valid manifest).
    valid = [doc for doc in documents if doc[0] in _VALID]
    for n in range(150):
        name, original = rng.choice(valid if n % 2 else documents)
        data = copy.deepcopy(original)
        for _ in range(rng.randint(1, 3)):
            *parents, last = rng.choice(list(_paths(data)))
            node = data
            for part in parents:
                node = node[part]
            node[last] = copy.deepcopy(rng.choice(MISTAKES))
        manifest = beside / f"m{seed}_{n}.yaml"
        manifest.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        try:
            load_pipeline(manifest, {"RUNNER_MAX_JOBS": "2000"})
        except RunnerError:
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - the point: nothing else may escape
            pytest.fail(f"{type(exc).__name__}: {exc} (from {name}, edited:\n"
                        f"{manifest.read_text(encoding='utf-8')[:2000]})")
        else:
            outcomes["read"] += 1
    assert outcomes["refused"] > 100 and outcomes["read"] > 0, outcomes
