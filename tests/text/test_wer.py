"""Word error rate on known pairs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.text.wer import WerResult, normalise_words, wer, word_errors


@pytest.mark.parametrize(("reference", "hypothesis", "s", "d", "i"), [
    ("the cat sat on the mat", "the cat sat on the mat", 0, 0, 0),
    ("the cat sat on the mat", "the cat sat on a mat", 1, 0, 0),
    ("the cat sat on the mat", "the cat on the mat", 0, 1, 0),
    ("the cat sat on the mat", "the black cat sat on the mat", 0, 0, 1),
    ("the cat sat on the mat", "", 0, 6, 0),
    ("", "hello there", 0, 0, 2),
    ("a b c d", "x y", 2, 2, 0),
    ("kitten sitting", "sitting kitten", 2, 0, 0),
])
def test_known_pairs(reference: str, hypothesis: str, s: int, d: int, i: int) -> None:
    result = word_errors(reference, hypothesis)
    assert (result.substitutions, result.deletions, result.insertions) == (s, d, i)


def test_normalisation_ignores_case_punctuation_and_apostrophes() -> None:
    assert normalise_words("Don't STOP — it's “fine”, Mr. O’Neil!") == [
        "dont", "stop", "its", "fine", "mr", "oneil"]
    assert wer("Hello, World!", "hello world") == 0.0
    assert wer("It's 3.14, isn't it?", "its 3 14 isnt it") == 0.0


def test_rate_is_errors_per_reference_word() -> None:
    assert wer("one two three four", "one too three") == 0.5
    assert wer("", "") == 0.0
    assert wer("", "extra words") == 2.0


def test_long_texts() -> None:
    """Longer than any segment (bench/bench_wer.py measures the time, not this test)."""
    words = [f"w{i % 97}" for i in range(20_000)]
    reference = " ".join(words)
    hypothesis = " ".join(words[:10_000] + ["oops"] + words[10_001:-3] + ["more"])
    assert word_errors(reference, hypothesis) == WerResult(2, 2, 0, 20_000)


@given(st.lists(st.sampled_from("abcde"), max_size=12), st.lists(st.sampled_from("abcde"),
                                                                  max_size=12))
def test_matches_a_plain_levenshtein(ref: list[str], hyp: list[str]) -> None:
    """The fewest edits; among those, the fewest deletions, then the fewest insertions:
    a table of (edits, deletions, insertions) compared as tuples."""
    table = [[(0, 0, 0)] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) + 1):
        for j in range(len(hyp) + 1):
            if not i or not j:
                table[i][j] = (i + j, i, j)
                continue
            (ce, cd, ci), (de, dd, di), (ie, id_, ii) = (
                table[i - 1][j - 1], table[i - 1][j], table[i][j - 1])
            table[i][j] = min((ce + (ref[i - 1] != hyp[j - 1]), cd, ci),
                              (de + 1, dd + 1, di), (ie + 1, id_, ii + 1))
    edits, deletions, insertions = table[-1][-1]
    result = word_errors(" ".join(ref), " ".join(hyp))
    assert (result.errors, result.deletions, result.insertions) == (edits, deletions, insertions)
    assert result.deletions - result.insertions == len(ref) - len(hyp)
