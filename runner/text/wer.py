"""Word error rate between a reference text and a transcript of its audio.

Both texts are normalised first (Unicode NFKC, case-folded, apostrophes
dropped so "don't" = "dont", other punctuation turned into spaces), then
compared by Levenshtein distance over words. Memory is linear: two rows of
the dynamic-programming table. Each cell packs (cost, deletions, insertions)
into one integer so the inner loop does plain integer `min`s; substitutions
are cost − deletions − insertions. A common prefix and suffix are stripped
first, which makes the usual case (a near-perfect transcript) close to linear
time too.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_APOSTROPHES = "'’ʼ`"
_COST, _DEL = 1 << 42, 1 << 21  # packed cell: cost << 42 | deletions << 21 | insertions


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
    total = len(ref)
    head = 0
    while head < min(len(ref), len(hyp)) and ref[head] == hyp[head]:
        head += 1
    tail = 0
    while tail < min(len(ref), len(hyp)) - head and ref[-1 - tail] == hyp[-1 - tail]:
        tail += 1
    ref, hyp = ref[head:len(ref) - tail], hyp[head:len(hyp) - tail]
    # previous[j]: best way to turn ref[:i] into hyp[:j]; row 0 is j insertions.
    previous = [j * (_COST + 1) for j in range(len(hyp) + 1)]
    for i, r in enumerate(ref, 1):
        current = [i * (_COST + _DEL)]
        for j, h in enumerate(hyp, 1):
            current.append(min(
                previous[j - 1] + (0 if r == h else _COST),  # match / substitution
                previous[j] + _COST + _DEL,                 # deletion
                current[j - 1] + _COST + 1,                 # insertion
            ))
        previous = current
    packed = previous[-1]
    cost, deletions, insertions = packed >> 42, (packed >> 21) & (_DEL - 1), packed & (_DEL - 1)
    return WerResult(cost - deletions - insertions, deletions, insertions, total)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of `hypothesis` against `reference` (0.0 is perfect)."""
    return word_errors(reference, hypothesis).wer
