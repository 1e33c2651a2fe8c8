"""Word timings to subtitles: build words, shift them into the programme, cue, write, parse.

Words come from an ElevenLabs character alignment (TTS with timestamps) or an
STT word list. Per-segment words are shifted by the stitch sidecar (each
segment's programme offset minus the silence trimmed from its start) and
merged into one programme alignment. Cues then follow broadcast habits: at
most `max_line_chars` per line and `max_lines` lines, at most `max_cue_s`
seconds, at least `min_cue_s` when the next cue leaves room; a cue ends
preferably at a sentence end, then at a pause, then after a comma; never
mixes speakers or speech with an audio event; never overlaps another; and
lies inside the audio. Times are integer milliseconds throughout, so what is
written is exactly what is checked.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runner.errors import AudioError
from runner.text.split import ends_sentence


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start_s: float
    end_s: float
    speaker: str | None = None
    kind: str = "word"  # "word" or "audio_event"


@dataclass(frozen=True, slots=True)
class Cue:
    start_ms: int
    end_ms: int
    text: str  # lines joined by "\n"
    speaker: str | None = None


def words_from_alignment(alignment: Mapping[str, Any]) -> list[Word]:
    """Words (split at whitespace, punctuation kept) from a character alignment."""
    chars = alignment.get("characters") or []
    starts = alignment.get("character_start_times_seconds") or []
    ends = alignment.get("character_end_times_seconds") or []
    if not len(chars) == len(starts) == len(ends):
        raise AudioError(f"alignment arrays differ in length: {len(chars)} characters, "
                         f"{len(starts)} start times, {len(ends)} end times")
    words: list[Word] = []
    begin: int | None = None
    for i, char in enumerate([*chars, " "]):
        if char.isspace():
            if begin is not None:
                start, end = float(starts[begin]), float(ends[i - 1])
                words.append(Word("".join(chars[begin:i]), start, max(end, start)))
                begin = None
        elif begin is None:
            begin = i
    return words


def words_from_stt(items: Sequence[Mapping[str, Any]]) -> list[Word]:
    """Words and audio events from an STT word list (`spacing` entries skipped).

    A word without times (the API allows null) takes the previous word's end.
    """
    words: list[Word] = []
    for item in items:
        kind = item.get("type", "word")
        text = str(item.get("text", "")).strip()
        if kind == "spacing" or not text:
            continue
        last = words[-1].end_s if words else 0.0
        start = float(item["start"]) if item.get("start") is not None else last
        end = float(item["end"]) if item.get("end") is not None else start
        event = kind == "audio_event"
        words.append(Word(event_text(text) if event else text, start, max(end, start),
                          item.get("speaker_id"), "audio_event" if event else "word"))
    return words


def event_text(text: str) -> str:
    """An audio event as shown: "(laughter)"; providers usually send it so already."""
    text = text.strip()
    return text if text.startswith(("(", "[")) else f"({text})"


def shift_words(per_segment: Mapping[str, Sequence[Word]], sidecar: Mapping[str, Any]) -> list[Word]:
    """One programme alignment from per-segment words and the stitch sidecar.

    A word at t seconds into its segment's source audio sits at
    offset − trimmed start + t in the programme; words that fell into trimmed
    silence are clamped to the segment's edges.
    """
    merged: list[Word] = []
    for entry in sidecar["segments"]:
        offset = entry["offset_ms"] / 1000
        shift = offset - entry.get("trim_start_ms", 0.0) / 1000
        end = offset + entry["duration_ms"] / 1000
        for w in per_segment.get(entry["id"], ()):
            start = min(max(w.start_s + shift, offset), end)
            merged.append(Word(w.text, start, min(max(w.end_s + shift, start), end),
                               w.speaker, w.kind))
    return merged


def _layout(texts: Sequence[str], width: int, max_lines: int) -> list[str] | None:
    """Lines for these words, balanced; None if they do not fit."""
    lines: list[str] = []
    for text in texts:  # greedy wrap decides whether it fits at all
        if lines and len(lines[-1]) + 1 + len(text) <= width:
            lines[-1] += " " + text
        else:
            lines.append(text)
    if len(lines) > max_lines or (len(lines) > 1 and max(map(len, lines)) > width):
        return None
    if len(lines) == 2:  # two lines read best when they are about as long
        splits = [(max(len(" ".join(texts[:k])), len(" ".join(texts[k:]))), k)
                  for k in range(1, len(texts))]
        _, k = min(splits)
        lines = [" ".join(texts[:k]), " ".join(texts[k:])]
    return lines


def _break_score(words: Sequence[Word], j: int, pause_s: float) -> int:
    text = words[j].text
    following = words[j + 1] if j + 1 < len(words) else None
    if ends_sentence(text, following.text if following else None):
        return 3
    if following is not None and following.start_s - words[j].end_s >= pause_s:
        return 2
    return 1 if text.rstrip("\"'”’)»")[-1:] in ",;:—–" else 0


def _forced_break(words: Sequence[Word], j: int, split_pause_s: float) -> bool:
    """Must a cue end after word j (new speaker, speech/event change, long pause)?"""
    a, b = words[j], words[j + 1]
    return a.speaker != b.speaker or a.kind != b.kind or b.start_s - a.end_s >= split_pause_s


def make_cues(
    words: Sequence[Word],
    *,
    max_line_chars: int = 42,
    max_lines: int = 2,
    max_cue_s: float = 7.0,
    min_cue_s: float = 1.0,
    pause_s: float = 0.5,
    split_pause_s: float = 1.5,
    audio_duration_s: float | None = None,
) -> list[Cue]:
    """Cues for timed words (see module doc).

    A pause of `pause_s` is a good place to end a cue; one of `split_pause_s`
    always ends it, so no text hangs on screen through a long silence.
    """
    cues: list[Cue] = []
    i, n = 0, len(words)
    while i < n:
        first, best, best_score, end = words[i], i, -1, i
        for j in range(i, n):
            w = words[j]
            if j > i and (_forced_break(words, j - 1, split_pause_s) or
                          w.end_s - first.start_s > max_cue_s or
                          _layout([x.text for x in words[i:j + 1]], max_line_chars,
                                  max_lines) is None):
                break
            end = j
            score = _break_score(words, j, pause_s)
            if score >= best_score:
                best, best_score = j, score
        if end == n - 1 or _forced_break(words, end, split_pause_s):
            best = end  # the rest of this run fits: no reason to cut it short
        texts = [x.text for x in words[i:best + 1]]
        lines = _layout(texts, max_line_chars, max_lines) or [" ".join(texts)]
        cues.append(Cue(round(first.start_s * 1000), round(words[best].end_s * 1000),
                        "\n".join(lines), first.speaker if first.kind == "word" else None))
        i = best + 1
    return _retime(cues, min_cue_s, audio_duration_s)


def _retime(cues: list[Cue], min_cue_s: float, audio_duration_s: float | None) -> list[Cue]:
    """Clamp into the audio, stretch short cues into free time, remove overlaps."""
    limit = round(audio_duration_s * 1000) if audio_duration_s is not None else None
    out: list[Cue] = []
    for k, cue in enumerate(cues):
        start = max(cue.start_ms, out[-1].end_ms if out else 0)
        if limit is not None:
            start = min(start, max(limit - 1, 0))
        end = max(cue.end_ms, start + round(min_cue_s * 1000))
        if k + 1 < len(cues):
            end = min(end, max(cues[k + 1].start_ms, cue.end_ms))
        if limit is not None:
            end = min(end, limit)
        out.append(Cue(start, max(end, start + 1), cue.text, cue.speaker))
    return out


def cues_from_sidecar(
    sidecar: Mapping[str, Any],
    texts: Mapping[str, str],
    *,
    max_line_chars: int = 42,
    max_lines: int = 2,
    max_cue_s: float = 7.0,
) -> list[Cue]:
    """Cues without timings: each segment's text over its stretch of the programme.

    Long segments are split as `make_cues` would, with the segment's time shared
    among its words in proportion to their length (speech time follows
    characters more closely than word counts).
    """
    cues: list[Cue] = []
    for entry in sidecar["segments"]:
        tokens = texts.get(entry["id"], "").split()
        if not tokens:
            continue
        start, span = entry["offset_ms"] / 1000, entry["duration_ms"] / 1000
        weights = [len(t) + 1 for t in tokens]
        total, before, words = sum(weights), 0, []
        for token, weight in zip(tokens, weights):
            words.append(Word(token, start + span * before / total,
                              start + span * (before + weight) / total))
            before += weight
        cues.extend(make_cues(words, max_line_chars=max_line_chars, max_lines=max_lines,
                              max_cue_s=max_cue_s, min_cue_s=0.0))
    return _retime(cues, 0.0, sidecar.get("duration_ms", 0) / 1000 or None)


# --- Writers and parsers ------------------------------------------------------


def _clock(ms: int, sep: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{millis:03d}"


def to_srt(cues: Sequence[Cue]) -> str:
    """SubRip. A speaker is shown as a `[speaker_0] ` prefix (SRT has no voice tags)."""
    blocks = []
    for index, cue in enumerate(cues, 1):
        text = f"[{cue.speaker}] {cue.text}" if cue.speaker else cue.text
        blocks.append(f"{index}\n{_clock(cue.start_ms, ',')} --> {_clock(cue.end_ms, ',')}\n"
                      f"{text}\n")
    return "\n".join(blocks)


def to_vtt(cues: Sequence[Cue]) -> str:
    """WebVTT; a speaker is a `<v speaker_0>` voice span. Text is entity-escaped."""
    blocks = ["WEBVTT\n"]
    for cue in cues:
        text = html.escape(cue.text, quote=False)
        if cue.speaker:
            text = f"<v {re.sub(r'[<>&]', '', cue.speaker)}>{text}"
        blocks.append(f"{_clock(cue.start_ms, '.')} --> {_clock(cue.end_ms, '.')}\n{text}\n")
    return "\n".join(blocks)


_TIMING = re.compile(r"^\s*((?:\d+:)?\d{1,2}:\d{2}[,.]\d{3})\s+-->\s+((?:\d+:)?\d{1,2}:\d{2}[,.]\d{3})")


def _ms(stamp: str) -> int:
    parts = re.split(r"[:,.]", stamp)
    *hm, seconds, millis = (int(p) for p in parts)
    hours, minutes = (hm if len(hm) == 2 else [0, *hm])
    return ((hours * 60 + minutes) * 60 + seconds) * 1000 + millis


def _blocks(text: str) -> list[list[str]]:
    return [b.splitlines() for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip()) if b]


def _parse(blocks: list[list[str]], fmt: str) -> list[Cue]:
    cues = []
    for lines in blocks:
        at = next((i for i, line in enumerate(lines) if _TIMING.match(line)), None)
        if at is None or at > 1:
            raise ValueError(f"not a {fmt} cue: {lines[0][:60]!r}")
        timing = _TIMING.match(lines[at])
        assert timing is not None
        cues.append(Cue(_ms(timing.group(1)), _ms(timing.group(2)), "\n".join(lines[at + 1:])))
    return cues


def parse_srt(text: str) -> list[Cue]:
    """Read SubRip back (`[speaker] ` prefixes become `speaker`)."""
    cues = []
    for cue in _parse(_blocks(text), "SRT"):
        label = re.match(r"\[([^\]]+)\] ", cue.text)
        cues.append(Cue(cue.start_ms, cue.end_ms, cue.text[label.end():], label.group(1))
                    if label else cue)
    return cues


def parse_vtt(text: str) -> list[Cue]:
    """Read WebVTT back: voice spans become `speaker`, other tags are dropped."""
    blocks = _blocks(text.lstrip("\ufeff"))
    if not blocks or not blocks[0][0].startswith("WEBVTT"):
        raise ValueError("not WebVTT: the first line must be WEBVTT")
    cue_blocks = [b for b in blocks[1:] if not b[0].startswith(("NOTE", "STYLE", "REGION"))]
    cues = []
    for cue in _parse(cue_blocks, "WebVTT"):
        voice = re.match(r"<v(?:\.[\w.-]+)?\s+([^>]+)>", cue.text)
        body = html.unescape(re.sub(r"</?[^>]*>", "", cue.text))
        cues.append(Cue(cue.start_ms, cue.end_ms, body, voice.group(1).strip() if voice else None))
    return cues
