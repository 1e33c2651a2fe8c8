"""The outputs check's fast path: outputs taken as plain are what the one-by-one checks
would have returned, unchanged and without a problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.manifest.filenames import collision_key
from runner.manifest.outputs import _all_plain, _normal_output

# Characters that make an output odd in some way, and ordinary ones.
ALPHABET = list("aB1_-") + [".", "/", "\\", ":", " ", "\n", "\t", "\x00", "\x1f", "\x7f",
                            "\x85", "é", "K", "ǅ", "\u2028"]
NAMES = st.text(alphabet="abXY09_-.", min_size=1, max_size=8)
PATHS = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
OUTPUTS = st.one_of(PATHS, PATHS, PATHS, PATHS,
                    st.text(alphabet=st.sampled_from(ALPHABET), max_size=10),
                    st.sampled_from(["sfx/1.mp3", "a.wav", ".", "..", "../a", "a/..", "/a",
                                     "C:a", "a//b", "a/", ".runner/x", ".RUNNER/x", "x/.h"]),
                    st.text(alphabet="ab/", min_size=250, max_size=260))


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(st.lists(OUTPUTS, min_size=1, max_size=4))
def test_outputs_taken_as_plain_need_nothing_of_the_checks_one_by_one(outputs: list[str]) -> None:
    if not _all_plain(outputs):
        return
    for out in outputs:
        assert _normal_output(out, Path("/build")) == (out, None)
        assert not out.startswith(".") and "/." not in out  # so none is in the state folder
        key = collision_key(out)
        name = out.rpartition("/")[2]
        assert out.lower() == key
        assert key[len(key) - len(name):] == collision_key(name)


def test_ordinary_outputs_are_plain_and_odd_ones_are_not() -> None:
    assert _all_plain(["sfx/steps_1.mp3", "vo/line_2.wav", "take.MP3"])
    for odd in ["", "/abs", "C:x", "a\\b", "a//b", "a/", "./a", "../a", "a/..", ".hidden",
                "x/.runner", "a\x00", "a\nb", "é.mp3", "x" * 256]:
        assert not _all_plain(["sfx/1.mp3", odd]), odd


def _tree(root: Path) -> None:
    """Folders that exist, a file, a link to a folder inside and one to a folder outside."""
    (root / "out" / "sfx" / "kind_1").mkdir(parents=True)
    (root / "out" / "vo").mkdir()
    (root / "out" / "vo" / "take.mp3").write_bytes(b"")
    (root / "elsewhere" / "deep").mkdir(parents=True)
    (root / "out" / "inner").symlink_to(root / "out" / "sfx")
    (root / "out" / "away").symlink_to(root / "elsewhere")
    (root / "out" / "sfx" / "back").symlink_to(root / "out")


FOLDER_NAMES = st.sampled_from(["sfx", "kind_1", "kind_2", "vo", "take.mp3", "inner", "away",
                                "deep", "back", "new", "SFX"])


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.lists(FOLDER_NAMES, min_size=0, max_size=4).map("/".join),
                          st.booleans()), min_size=1, max_size=6))
def test_a_folder_is_where_realpath_says_whatever_order_it_is_met_in(
        folders: list[tuple[str, bool]]) -> None:
    """`_folder` takes a folder's real path from its parent's listing where it can; it must
    be what os.path.realpath says, with the same listing, in any order of outputs."""
    import os
    import stat
    import tempfile

    from runner.manifest.outputs import _folder

    with tempfile.TemporaryDirectory() as tmp:
        _tree(Path(tmp))
        root = Path(tmp) / "out"
        root_real = os.path.realpath(root)
        known: dict[str, Any] = {}
        for folder, many in folders:
            place = _folder(known, folder, root, root_real, root_real + os.sep, many)
            real = os.path.realpath(os.path.join(root, folder))
            assert place.real == real, folder
            assert place.inside == (real == root_real or real.startswith(root_real + os.sep))
            for name in ["take.mp3", "kind_1", "back", "nothing", "TAKE.MP3"]:
                mode = os.lstat(os.path.join(real, name)).st_mode \
                    if os.path.lexists(os.path.join(real, name)) else 0
                asked = place.mode(name, os.path.join(real, name)) \
                    if place.entries or not place.listed else 0
                assert stat.S_IFMT(asked) == stat.S_IFMT(mode), (folder, name)
            if place.listed:
                listing = sorted(os.listdir(real)) if os.path.isdir(real) else []
                assert sorted(place.entries) == listing, folder


def test_outputs_meet_what_is_on_disk_and_nothing_before_a_first_build(tmp_path: Path) -> None:
    """Before a first build output_dir is not there and nothing is looked at; once it is,
    an output that is an existing folder, or that a link leads out of it, is refused."""
    from runner.errors import ManifestInvalid
    from runner.manifest.load import load_pipeline

    manifest = tmp_path / "game.yaml"
    jobs = "".join(f"  - id: {name}\n    model: elevenlabs/sound-effect-v2\n"
                   f"    input: {{text: steps}}\n    output: {out}\n"
                   for name, out in [("a", "sfx/a.mp3"), ("b", "away/b.mp3"), ("c", "vo/c.mp3"),
                                     ("d", "game.yaml")])
    manifest.write_text(f"version: 1\nname: game\noutput_dir: .\njobs:\n{jobs}")
    with pytest.raises(ManifestInvalid) as raised:  # output_dir is the manifest's folder
        load_pipeline(manifest)
    assert [p.job_id for p in raised.value.problems] == ["d"]
    assert "would replace the manifest itself" in raised.value.problems[0].message

    manifest.write_text(manifest.read_text().replace("output_dir: .", "output_dir: build")
                        .replace("output: game.yaml", "output: d.mp3"))
    assert len(load_pipeline(manifest).jobs) == 4  # build/ is not there: nothing to meet
    (tmp_path / "build" / "sfx" / "a.mp3").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "build" / "away").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "build" / "vo").mkdir()
    with pytest.raises(ManifestInvalid) as raised:
        load_pipeline(manifest)
    found = {p.job_id: p.message for p in raised.value.problems}
    assert set(found) == {"a", "b"}, found
    assert "is an existing folder" in found["a"]
    assert "leaves output_dir through a symbolic link" in found["b"]

    # A folder of many outputs is listed, one of a few is asked about per output: the
    # same problems either way.
    crowd = "".join(f"  - id: m{i}\n    model: elevenlabs/sound-effect-v2\n"
                    f"    input: {{text: steps}}\n    output: sfx/m{i}.mp3\n" for i in range(8))
    manifest.write_text(manifest.read_text() + crowd)
    (tmp_path / "build" / "sfx" / "m3.mp3").mkdir()
    with pytest.raises(ManifestInvalid) as raised:
        load_pipeline(manifest)
    found = {p.job_id: p.message for p in raised.value.problems}
    assert set(found) == {"a", "b", "m3"}, found
    assert "is an existing folder" in found["m3"]
