"""Word error rate on known pairs."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.text.wer import normalise_words, wer, word_errors


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


def test_long_texts_with_few_errors_are_fast() -> None:
    words = [f"w{i % 97}" for i in range(20_000)]
    reference = " ".join(words)
    hypothesis = " ".join(words[:10_000] + ["oops"] + words[10_001:])
    start = time.perf_counter()
    assert word_errors(reference, hypothesis).substitutions == 1
    assert time.perf_counter() - start < 1.0


@given(st.lists(st.sampled_from("abcde"), max_size=12), st.lists(st.sampled_from("abcde"),
                                                                  max_size=12))
def test_matches_a_plain_levenshtein(ref: list[str], hyp: list[str]) -> None:
    table = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) + 1):
        for j in range(len(hyp) + 1):
            table[i][j] = i + j if not i or not j else min(
                table[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),
                table[i - 1][j] + 1, table[i][j - 1] + 1)
    result = word_errors(" ".join(ref), " ".join(hyp))
    assert result.errors == table[-1][-1]
    assert result.deletions - result.insertions == len(ref) - len(hyp)
