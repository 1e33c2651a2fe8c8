"""Splitting a long text into TTS requests, and each request's neighbour context.

A narration text of any length becomes segments of at most `max_chars`, each
a span of the original text. Breaks are preferred at paragraph ends (blank
lines; never crossed), then sentence ends, then clause marks (`, ; :` and
dashes), then between words; a word longer than `max_chars` on its own is cut
hard (the only case where a segment boundary falls inside a word). Within a
paragraph, sentences are packed greedily: each segment runs to the *last*
break of the best level that fits, so short sentences share one request.

Invariant: every segment is `text[start:end]`, has no leading/trailing
whitespace, and what lies between consecutive segments is whitespace only;
joining segments and gaps reproduces the text exactly.

Known limits: scripts written without spaces other than CJK (Thai, Lao,
Khmer, Burmese) have no detectable word breaks and are cut at `max_chars`
(never inside a combining sequence); sentence detection is rule-based
(abbreviation list, initials, the case of the next word), not a model.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from enum import IntEnum

MAX_REQUEST_CHARS = 5000  # the TTS APIs' limit for `text`, `previous_text`, `next_text`
MIN_MAX_CHARS = 10


@dataclass(frozen=True, slots=True)
class TextSegment:
    """One TTS request's text: `text == original[start:end]`."""

    text: str
    paragraph_index: int
    start: int
    end: int


class _Level(IntEnum):
    WORD = 1
    CLAUSE = 2
    SENTENCE = 3


# Abbreviations after which a full stop never ends a sentence (titles come
# before a name, which is capitalised; "e.g." and "i.e." before anything).
_NEVER_END = frozenset({
    "mr", "mrs", "ms", "mx", "dr", "prof", "st", "sr", "jr", "rev", "hon", "gen", "col", "capt",
    "lt", "sgt", "mt", "ft", "vs", "cf", "e.g", "i.e", "approx", "fig", "vol", "pp", "dept",
})
_CLOSERS = "\"'”’»)]}」』】）》›"
_OPENERS = "\"'“‘«([{「『【（《‹¿¡"
_SENTENCE_MARKS = ".!?…‽。！？．"
_CLAUSE_MARKS = ",;:，；：、"
_DASHES = "—–"
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
_PARAGRAPH_BREAK = re.compile(r"\n(?:[^\S\n]*\n)+")
_WHITESPACE = re.compile(r"\s+")
_DOTTED = re.compile(r"(?:\w{1,2}\.)+\w{1,2}")
# Breaks with no whitespace: after CJK sentence/clause marks, after an
# unspaced dash between words, and between two CJK characters (CJK puts no
# spaces between words; any character boundary is a word boundary).
_TIGHT = re.compile(
    rf"(?P<sentence>[。！？．][{re.escape(_CLOSERS)}]*)(?=\S)"
    rf"|(?P<clause>[，；：、]|(?<=\w)[{_DASHES}](?=\w))"
    rf"|(?P<word>(?<=[{_CJK}])(?=[{_CJK}]))"
)


def split_text(text: str, max_chars: int) -> list[TextSegment]:
    """Split `text` into segments of at most `max_chars` characters (see module doc).

    Raises `ValueError` unless MIN_MAX_CHARS ≤ max_chars ≤ MAX_REQUEST_CHARS.
    """
    if not MIN_MAX_CHARS <= max_chars <= MAX_REQUEST_CHARS:
        raise ValueError(f"max_chars must be between {MIN_MAX_CHARS} and {MAX_REQUEST_CHARS} "
                         f"(the API's limit), not {max_chars}")
    segments: list[TextSegment] = []
    for index, (start, end) in enumerate(_paragraphs(text)):
        segments.extend(TextSegment(text[s:e], index, s, e)
                        for s, e in _split_paragraph(text, start, end, max_chars))
    return segments


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """Spans of non-blank paragraphs, trimmed of surrounding whitespace."""
    spans, start = [], 0
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        chunk = text[start:end]
        stripped = chunk.strip()
        if stripped:
            lead = len(chunk) - len(chunk.lstrip())
            spans.append((start + lead, start + lead + len(stripped)))
        if match:
            start = match.end()
    return spans


def _split_paragraph(text: str, start: int, end: int, max_chars: int) -> list[tuple[int, int]]:
    breaks = _breaks(text, start, end)
    spans = []
    while end - start > max_chars:
        limit = start + max_chars
        chosen: tuple[int, int] | None = None
        for level in (_Level.SENTENCE, _Level.CLAUSE, _Level.WORD):
            lefts, rights = breaks[level]
            i = bisect.bisect_right(lefts, limit) - 1
            if i >= 0 and lefts[i] > start:
                chosen = (lefts[i], rights[i])
                break
        if chosen is None:
            cut = _hard_cut(text, start, limit)
            chosen = (cut, cut)
        spans.append((start, chosen[0]))
        start = chosen[1]
    spans.append((start, end))
    return spans


def _hard_cut(text: str, start: int, limit: int) -> int:
    """`limit`, moved back so a combining mark or joiner stays with its base character."""
    cut = limit
    while cut > start + 1 and (unicodedata.combining(text[cut]) or text[cut] in "\u200d\ufe0f"
                               or unicodedata.category(text[cut]) == "Mn"):
        cut -= 1
    return cut


def _breaks(text: str, start: int, end: int) -> dict[_Level, tuple[list[int], list[int]]]:
    """Candidate breaks per level: (left segment end, right segment start), in order."""
    found: dict[_Level, tuple[list[int], list[int]]] = {level: ([], []) for level in _Level}
    for match in _WHITESPACE.finditer(text, start, end):
        level = _level_before(text, start, match.start(), match.end())
        found[level][0].append(match.start())
        found[level][1].append(match.end())
    tight = []
    for match in _TIGHT.finditer(text, start, end):
        at = match.end()
        if start < at < end and not text[at - 1].isspace() and not text[at].isspace():
            level = (_Level.SENTENCE if match["sentence"] else
                     _Level.CLAUSE if match["clause"] else _Level.WORD)
            tight.append((at, level))
    for at, level in tight:  # few in non-CJK text; merged keeping positions sorted
        lefts, rights = found[level]
        i = bisect.bisect_left(lefts, at)
        lefts.insert(i, at)
        rights.insert(i, at)
    return found


def _level_before(text: str, para_start: int, ws: int, we: int) -> _Level:
    """How strong a break the whitespace run text[ws:we] is."""
    k = ws - 1
    while k > para_start and text[k] in _CLOSERS:
        k -= 1
    mark = text[k]
    if mark in _SENTENCE_MARKS:
        token_start = ws
        while token_start > para_start and not text[token_start - 1].isspace():
            token_start -= 1
        if ends_sentence(text[token_start:ws], text[we:we + 8]):
            return _Level.SENTENCE
    if mark in _CLAUSE_MARKS or mark in _DASHES or (
            mark == "-" and k > para_start and text[k - 1].isspace()):
        return _Level.CLAUSE
    return _Level.WORD


def ends_sentence(token: str, following: str | None = None) -> bool:
    """Does `token` (a word with its punctuation) end a sentence, given the text after it?

    A sentence mark (`. ! ? …` and CJK ones), possibly inside closing quotes,
    followed by a word that is not lower-case; a full stop after an abbreviation
    that never ends a sentence ("Mr.", "e.g."), an initial ("J.") or dotted
    letters ("U.S.") does not count.
    """
    core = token.rstrip(_CLOSERS)
    if not core or core[-1] not in _SENTENCE_MARKS:
        return False
    if following:
        head = following.lstrip().lstrip(_OPENERS)
        if head[:1].islower():  # "Mr. smith" never; '"Really?" she asked' is one sentence
            return False
    if core[-1] != ".":
        return True
    word = core[:-1].lstrip(_OPENERS)
    if word.lower() in _NEVER_END:
        return False
    # An initial ("J. R. R. Tolkien", "John F. Kennedy") or dotted letters ("U.S.",
    # "Ph.D."): missing a sentence end here costs less than cutting a name in two.
    return not ((len(word) == 1 and word.isupper()) or bool(_DOTTED.fullmatch(word)))


def neighbour_context(
    segments: list[TextSegment], index: int, limit_chars: int = MAX_REQUEST_CHARS
) -> tuple[str | None, str | None]:
    """(`previous_text`, `next_text`) for request `index`: the neighbouring segments' text.

    The previous text keeps its end (what is heard just before), the next text
    its beginning, each cut at a word boundary to at most `limit_chars`.
    None where there is no neighbour.
    """
    if not 1 <= limit_chars <= MAX_REQUEST_CHARS:
        raise ValueError(f"limit_chars must be between 1 and {MAX_REQUEST_CHARS}")
    previous = segments[index - 1].text if index > 0 else None
    following = segments[index + 1].text if index + 1 < len(segments) else None
    return (
        _keep_end(previous, limit_chars) if previous is not None else None,
        _keep_start(following, limit_chars) if following is not None else None,
    )


def _keep_start(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    if text[limit].isspace():
        return text[:limit].rstrip()
    cut = max((m.start() for m in _WHITESPACE.finditer(text, 0, limit)), default=0)
    return text[:cut].rstrip() if cut > 0 else text[:limit]


def _keep_end(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    start = len(text) - limit
    if text[start - 1].isspace():
        return text[start:].lstrip()
    match = _WHITESPACE.search(text, start)
    return text[match.end():] if match else text[start:]
