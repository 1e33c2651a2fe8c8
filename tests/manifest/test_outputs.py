"""The outputs check's fast path: outputs taken as plain are what the one-by-one checks
would have returned, unchanged and without a problem."""

from __future__ import annotations

from pathlib import Path

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
