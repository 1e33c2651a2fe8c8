"""Word error rate between a reference text and a transcript of its audio.

Both texts are normalised first (Unicode NFKC, case-folded, apostrophes
dropped so "don't" = "dont", other punctuation turned into spaces), then
compared by Levenshtein distance over words, computed by rapidfuzz (C++): the
runner's own table in Python took 80-900 ms a segment, all of it on the event
loop's time (bench/bench_wer.py). Of the alignments with the fewest edits, the
one counted has the fewest deletions, then the fewest insertions (two swapped
words are two substitutions, not a deletion and an insertion).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

_APOSTROPHES = "'’ʼ`"


@dataclass(frozen=True, slots=True)
class WerResult:
    substitutions: int
    deletions: int
    insertions: int
    reference_words: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors per reference word; with an empty reference, the count of inserted words."""
        return self.errors / max(self.reference_words, 1)


def normalise_words(text: str) -> list[str]:
    """Lower-case words with punctuation removed: the units WER counts."""
    text = unicodedata.normalize("NFKC", text).casefold()
    for mark in _APOSTROPHES:
        text = text.replace(mark, "")
    return "".join(
        " " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text
    ).split()


def word_errors(reference: str, hypothesis: str) -> WerResult:
    """Substitutions, deletions and insertions turning `reference` into `hypothesis`."""
    ref, hyp = normalise_words(reference), normalise_words(hypothesis)
    # One weighted distance gives all three counts. Every edit costs `unit`, and a
    # deletion or an insertion one more: `unit` exceeds any number of them, so the
    # least total has the fewest edits first and, among those, the fewest deletions
    # plus insertions. Then distance // unit is the edits, distance % unit the
    # deletions plus insertions, and their difference is the difference in length.
    unit = len(ref) + len(hyp) + 1
    distance = Levenshtein.distance(ref, hyp, weights=(unit + 1, unit + 1, unit))
    edits, gaps = divmod(distance, unit)
    deletions = (gaps + len(ref) - len(hyp)) // 2
    return WerResult(edits - gaps, deletions, gaps - deletions, len(ref))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` (0.0 is perfect)."""
    return word_errors(reference, hypothesis).wer
