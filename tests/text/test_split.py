"""Text splitting: invariants by hypothesis, and hand-written cases for the tricky bits."""

from __future__ import annotations

import itertools
import re
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.text.split import (
    MAX_REQUEST_CHARS,
    TextSegment,
    ends_sentence,
    neighbour_context,
    split_text,
)

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_TIGHT_BEFORE = set("—–。！？．，；：、」』”’）》")


def check_invariants(text: str, segments: list[TextSegment], max_chars: int) -> None:
    rebuilt, cursor = [], 0
    for seg in segments:
        assert seg.text == text[seg.start:seg.end]
        assert 0 < len(seg.text) <= max_chars
        assert seg.text == seg.text.strip()
        gap = text[cursor:seg.start]
        assert gap.strip() == "", f"characters lost between segments: {gap!r}"
        rebuilt += [gap, seg.text]
        cursor = seg.end
    assert text[cursor:].strip() == ""
    assert "".join(rebuilt) + text[cursor:] == text
    for a, b in itertools.pairwise(segments):
        gap = text[a.end:b.start]
        blank_line = re.search(r"\n[^\S\n]*\n", gap) is not None
        assert (b.paragraph_index == a.paragraph_index + 1) == blank_line
        assert b.paragraph_index in (a.paragraph_index, a.paragraph_index + 1)
        if gap == "" and a.paragraph_index == b.paragraph_index:
            # A cut with no whitespace: after a dash or CJK mark, between CJK
            # characters, or inside a word too long to fit (and only then).
            left, right = text[a.end - 1], text[b.start]
            if left in _TIGHT_BEFORE or (_CJK.match(left) and _CJK.match(right)):
                continue
            run_start = a.end
            while run_start > 0 and not text[run_start - 1].isspace():
                run_start -= 1
            run_end = b.start
            while run_end < len(text) and not text[run_end].isspace():
                run_end += 1
            assert run_end - run_start > max_chars, f"split inside {text[run_start:run_end]!r}"


TOKENS = st.sampled_from([
    "word", "the", "a", "Mr.", "Dr.", "e.g.", "i.e.", "etc.", "3.14", "J.", "R.", "U.S.",
    "end.", "Why?", "Yes!", "wait...", "so,", "then;", "note:", "—", "-", "(aside)", '"Go."',
    "“quoted.”", "longwordlongwordlongword", "漢字の文章です。", "これは", "、", "naïve",
    "e\u0301te\u0301", "supercalifragilisticexpialidocious", "¿Qué?", "Ünïcödé",
])
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", " \n \n ", "\t", "\r\n\r\n", ""])


@st.composite
def narration_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(TOKENS, SEPARATORS), max_size=120))
    lead = draw(st.sampled_from(["", " ", "\n\n"]))
    return lead + "".join(token + sep for token, sep in parts)


@settings(max_examples=300, deadline=None)
@given(narration_text(), st.integers(min_value=10, max_value=120))
def test_invariants_on_narration_like_text(text: str, max_chars: int) -> None:
    check_invariants(text, split_text(text, max_chars), max_chars)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=600), st.integers(min_value=10, max_value=80))
def test_invariants_on_any_text(text: str, max_chars: int) -> None:
    check_invariants(text, split_text(text, max_chars), max_chars)


def texts(text: str, max_chars: int) -> list[str]:
    segments = split_text(text, max_chars)
    check_invariants(text, segments, max_chars)
    return [s.text for s in segments]


def test_short_text_is_one_segment_and_blank_text_none() -> None:
    assert texts("  Hello there.  ", 100) == ["Hello there."]
    assert split_text(" \n\n \t", 100) == []
    assert split_text("", 100) == []


def test_max_chars_bounds() -> None:
    with pytest.raises(ValueError, match="5000"):
        split_text("x", MAX_REQUEST_CHARS + 1)
    with pytest.raises(ValueError):
        split_text("x", 5)
    assert texts("x " * 3000, MAX_REQUEST_CHARS)[0].startswith("x x")


def test_paragraphs_are_never_crossed() -> None:
    text = "First one. Short.\n\nSecond para.\r\n  \r\nThird.\nSame third."
    segments = split_text(text, 200)
    assert [(s.text, s.paragraph_index) for s in segments] == [
        ("First one. Short.", 0), ("Second para.", 1), ("Third.\nSame third.", 2)]


def test_sentences_are_packed_up_to_max_chars() -> None:
    sentence = "This is a sentence of forty-four characters."
    text = " ".join([sentence] * 50)
    segments = texts(text, 200)
    assert all(s.endswith(".") for s in segments)
    assert all(len(s) == 4 * len(sentence) + 3 for s in segments[:-1])  # four per request


def test_abbreviations_initials_and_decimals_do_not_end_sentences() -> None:
    text = ("Mr. Smith and Dr. Jones met J. R. R. Tolkien at 3.14 p.m. in the U.S. capital, "
            "e.g. near St. Paul's. They talked for hours.")
    assert len(text) > 110
    assert texts(text, 110) == [text[:text.index(" They")], "They talked for hours."]
    cut = texts(text, 60)
    for segment in cut[:-1]:
        assert not segment.endswith(("Mr.", "Dr.", "J.", "R.", "e.g.", "St.", "3."))


def test_quotes_after_the_full_stop_stay_with_their_sentence() -> None:
    text = 'He said, "Go home." Then he left. "Really?" she asked. "Yes!" It was over.'
    out = texts(text, 40)
    assert out[0] == 'He said, "Go home." Then he left.'
    assert '"Really?" she asked.' in out[1]  # a ? inside quotes before "she" is no end


def test_ellipses() -> None:
    assert texts("Wait... what was that? I thought... No. Nothing at all.", 30) == [
        "Wait... what was that?", "I thought... No.", "Nothing at all."]


def test_clauses_then_words_when_a_sentence_is_too_long() -> None:
    text = ("When the long sentence goes on, and on; it must be cut somewhere: "
            "at a clause — preferably — rather than between words")
    out = texts(text, 50)
    assert out[0] == "When the long sentence goes on, and on;"
    assert all(len(s) <= 50 for s in out)


def test_a_word_longer_than_max_chars_is_cut_hard_only_there() -> None:
    word = "x" * 95
    out = texts(f"short words {word} more words", 40)
    assert out[0] == "short words"
    assert out[1:] == ["x" * 40, "x" * 40, "x" * 15 + " more words"]


def test_hard_cut_keeps_combining_marks_with_their_letter() -> None:
    word = "e\u0301" * 30  # 60 code points, 30 visible letters
    for part in texts(word, 11):
        assert not unicodedata.combining(part[0])


def test_cjk_without_spaces() -> None:
    sentence = "これは日本語の文です。"  # 11 characters
    text = sentence * 40
    out = texts(text, 50)
    assert all(s.endswith("。") for s in out)
    assert all(len(s) == 44 for s in out[:-1])  # four sentences per request
    plain = "漢" * 120  # no punctuation at all: any character boundary is a word boundary
    assert [len(s) for s in texts(plain, 50)] == [50, 50, 20]


def test_fifty_thousand_characters_quickly() -> None:
    paragraph = ("Dr. Watson looked at the clock; it was 3.45 a.m. and the fog, thick as "
                 "soup, pressed against the window. \"Holmes?\" he called. No answer came. ")
    text = "\n\n".join(paragraph * 12 for _ in range(30))
    assert len(text) > 50_000
    start = time.perf_counter()
    segments = split_text(text, 1000)
    assert time.perf_counter() - start < 1.0
    check_invariants(text, segments, 1000)
    assert len({s.paragraph_index for s in segments}) == 30
    assert sum(len(s.text) for s in segments) / len(segments) > 600  # packed, not per sentence


def test_neighbour_context() -> None:
    segments = split_text("One two three. Four five six. Seven eight nine.", 17)
    assert [s.text for s in segments] == ["One two three.", "Four five six.", "Seven eight nine."]
    assert neighbour_context(segments, 0) == (None, "Four five six.")
    assert neighbour_context(segments, 1) == ("One two three.", "Seven eight nine.")
    assert neighbour_context(segments, 2) == ("Four five six.", None)
    # Trimmed at word boundaries: the end of the previous, the start of the next.
    assert neighbour_context(segments, 1, limit_chars=9) == ("three.", "Seven")
    assert neighbour_context(segments, 1, limit_chars=10) == ("two three.", "Seven")
    assert neighbour_context(segments, 1, limit_chars=11) == ("two three.", "Seven eight")
    with pytest.raises(ValueError):
        neighbour_context(segments, 1, limit_chars=5001)


def test_neighbour_context_without_spaces_cuts_hard() -> None:
    segments = [TextSegment("あ" * 20, 0, 0, 20), TextSegment("い" * 20, 0, 20, 40),
                TextSegment("う" * 20, 0, 40, 60)]
    assert neighbour_context(segments, 1, limit_chars=7) == ("あ" * 7, "う" * 7)


@pytest.mark.parametrize(("token", "following", "expected"), [
    ("end.", "Next", True), ("end.", "next", False), ("Mr.", "Smith", False),
    ("e.g.", "Paris", False), ("J.", "Smith", False), ("U.S.", "Army", False),
    ('"Go."', "Then", True), ("Why?", None, True), ("word", "Next", False),
    ("etc.", "Then", True), ("done…", "Next", True), ("文。", None, True),
])
def test_ends_sentence(token: str, following: str | None, expected: bool) -> None:
    assert ends_sentence(token, following) is expected
