"""Subtitles: words from alignments, shifting by the stitch sidecar, cue rules, SRT/VTT."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from audiogen import make
from hypothesis import given, settings
from hypothesis import strategies as st

from runner.audio.decode import decode_pcm
from runner.audio.formats import FormatSpec
from runner.audio.stitch import SegmentInput, StitchSettings, stitch
from runner.errors import AudioError
from runner.text.subtitles import (
    Cue,
    Word,
    cues_from_sidecar,
    make_cues,
    parse_srt,
    parse_vtt,
    shift_words,
    to_srt,
    to_vtt,
    words_from_alignment,
    words_from_stt,
)


def alignment(text: str, start_s: float = 0.0, per_char_s: float = 0.06) -> dict[str, Any]:
    chars = list(text)
    starts = [round(start_s + i * per_char_s, 3) for i in range(len(chars))]
    return {"characters": chars, "character_start_times_seconds": starts,
            "character_end_times_seconds": [round(s + per_char_s, 3) for s in starts]}


def test_words_from_character_alignment() -> None:
    words = words_from_alignment(alignment("Hello, world.  Hi", per_char_s=0.1))
    assert [(w.text, w.start_s, w.end_s) for w in words] == [
        ("Hello,", 0.0, 0.6), ("world.", 0.7, 1.3), ("Hi", 1.5, 1.7)]
    with pytest.raises(AudioError, match="differ in length"):
        words_from_alignment({"characters": ["a"], "character_start_times_seconds": [],
                              "character_end_times_seconds": [0.1]})
    assert words_from_alignment({}) == []


def test_words_from_stt_list() -> None:
    items = [
        {"text": "Hi", "start": 0.1, "end": 0.3, "type": "word", "speaker_id": "speaker_0"},
        {"text": " ", "start": 0.3, "end": 0.4, "type": "spacing", "speaker_id": "speaker_0"},
        {"text": "(laughter)", "start": 0.4, "end": 1.2, "type": "audio_event"},
        {"text": "there", "start": None, "end": None, "type": "word", "speaker_id": "speaker_1"},
        {"text": "applause", "start": 2.0, "end": 2.5, "type": "audio_event"},
    ]
    words = words_from_stt(items)
    assert [(w.text, w.kind, w.speaker) for w in words] == [
        ("Hi", "word", "speaker_0"), ("(laughter)", "audio_event", None),
        ("there", "word", "speaker_1"), ("(applause)", "audio_event", None)]
    assert words[2].start_s == words[2].end_s == 1.2  # untimed: takes the previous end


def test_shift_words_by_offsets_and_trimmed_silence() -> None:
    sidecar = {"segments": [
        {"id": "a", "offset_ms": 0.0, "duration_ms": 1000.0, "trim_start_ms": 250.0},
        {"id": "b", "offset_ms": 1500.0, "duration_ms": 800.0, "trim_start_ms": 100.0},
    ]}
    merged = shift_words({
        "a": [Word("one", 0.3, 0.6), Word("two", 0.7, 1.4)],
        "b": [Word("early", 0.05, 0.2), Word("three", 0.2, 0.5)],
    }, sidecar)
    assert [(w.text, round(w.start_s, 3), round(w.end_s, 3)) for w in merged] == [
        ("one", 0.05, 0.35), ("two", 0.45, 1.0),  # clamped to the segment's end
        ("early", 1.5, 1.6), ("three", 1.6, 1.9)]


VOCABULARY = ["the", "narrator", "said,", "quietly", "and", "then", "stopped.", "Why?",
              "Mr.", "Holmes", "antidisestablishmentarianism", "no;", "yes!", "a", "of"]


@st.composite
def timed_words(draw: st.DrawFn) -> list[Word]:
    texts = draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=80))
    words, clock = [], draw(st.floats(0, 2))
    for text in texts:
        clock += draw(st.sampled_from([0.0, 0.05, 0.1, 0.7, 3.0]))
        length = draw(st.sampled_from([0.1, 0.3, 0.6, 8.0]))
        speaker = draw(st.sampled_from(["s0", "s0", "s0", "s1"]))
        words.append(Word(text, clock, clock + length, speaker))
        clock += length
    return words


@settings(max_examples=200, deadline=None)
@given(timed_words(), st.floats(0, 2))
def test_cue_rules_hold_for_any_words(words: list[Word], tail_s: float) -> None:
    duration_s = words[-1].end_s + tail_s
    cues = make_cues(words, audio_duration_s=duration_s)
    # Every word, in order, exactly once.
    assert " ".join(c.text.replace("\n", " ") for c in cues).split() == [w.text for w in words]
    position = 0
    for cue in cues:
        lines = cue.text.split("\n")
        count = len(cue.text.split())
        assert len(lines) <= 2
        assert all(len(line) <= 42 for line in lines) or count == 1
        spoken = words[position:position + count]
        assert len({w.speaker for w in spoken}) == 1 and cue.speaker == spoken[0].speaker
        assert spoken[-1].end_s - spoken[0].start_s <= 7.0 or count == 1
        assert cue.end_ms - cue.start_ms <= 7000 or count == 1
        assert 0 <= cue.start_ms < cue.end_ms <= round(duration_s * 1000)
        position += count
    for a, b in itertools.pairwise(cues):
        assert a.end_ms <= b.start_ms


def test_cues_prefer_sentence_ends_then_commas() -> None:
    text = ("It was late. The fog pressed against the windows, thick and yellow, "
            "and nobody in the house could sleep that night at all.")
    words = words_from_alignment(alignment(text, per_char_s=0.05))
    cues = make_cues(words)
    assert cues[0].text == "It was late."
    assert cues[1].text.replace("\n", " ").endswith(("windows,", "yellow,"))
    assert all(max(map(len, c.text.split("\n"))) <= 42 for c in cues)


def test_cues_prefer_a_pause_to_a_plain_word_boundary() -> None:
    first = ["one", "two", "three"]
    second = ["four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
    words = [Word(w, i * 0.3, i * 0.3 + 0.25) for i, w in enumerate(first)]
    words += [Word(w, 1.65 + i * 0.3, 1.9 + i * 0.3) for i, w in enumerate(second)]  # 0.8 s gap
    assert make_cues(words, max_line_chars=30)[0].text == "one two three"


def test_a_long_pause_ends_a_cue_and_short_cues_are_stretched() -> None:
    words = [Word("Hi.", 0.0, 0.2), Word("Yes.", 0.5, 0.7), Word("Okay.", 3.0, 3.2)]
    cues = make_cues(words, audio_duration_s=3.6)
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [
        (0, 1000, "Hi. Yes."), (3000, 3600, "Okay.")]  # stretched to 1 s, clipped by the audio
    turns = [Word("Hi.", 0.0, 0.2, "a"), Word("Yes.", 0.6, 0.8, "b")]
    assert [(c.start_ms, c.end_ms) for c in make_cues(turns)] == [(0, 600), (600, 1600)]


def test_srt_and_vtt_round_trip() -> None:
    cues = [Cue(0, 1500, "First line\nsecond line", "speaker_0"),
            Cue(1500, 3_723_004, "Tom & Jerry <live> --> now", None),
            Cue(3_723_004, 3_724_000, "(laughter)", None)]
    srt, vtt = to_srt(cues), to_vtt(cues)
    assert "00:00:01,500 --> 01:02:03,004" in srt
    assert "\n[speaker_0] First line\n" in srt
    assert vtt.startswith("WEBVTT\n") and "<v speaker_0>First line" in vtt
    assert "Tom &amp; Jerry &lt;live&gt; --&gt; now" in vtt
    assert parse_srt(srt) == cues
    assert parse_vtt(vtt) == cues


def test_parsers_refuse_what_is_not_subtitles() -> None:
    with pytest.raises(ValueError):
        parse_vtt("1\n00:00:00,000 --> 00:00:01,000\nx\n")
    with pytest.raises(ValueError):
        parse_srt("hello\nworld\n")
    assert parse_vtt("WEBVTT\n\nNOTE a comment\n\ncue-1\n00:01.000 --> 00:02.500 align:start\n"
                     "<i>hi</i>\n") == [Cue(1000, 2500, "hi")]


def test_fallback_cues_from_the_sidecar() -> None:
    sidecar = {"duration_ms": 20_000.0, "segments": [
        {"id": "a", "offset_ms": 0.0, "duration_ms": 2_000.0},
        {"id": "b", "offset_ms": 2_500.0, "duration_ms": 16_000.0},
    ]}
    long_text = " ".join(["Another sentence that keeps the narrator busy."] * 6)
    cues = cues_from_sidecar(sidecar, {"a": "A short one.", "b": long_text})
    assert cues[0] == Cue(0, 2000, "A short one.")
    rest = cues[1:]
    assert len(rest) >= 3 and rest[0].start_ms == 2500 and rest[-1].end_ms == 18_500
    assert " ".join(c.text.replace("\n", " ") for c in rest) == long_text
    assert all(c.end_ms - c.start_ms <= 7000 for c in rest)


def test_stitched_programme_subtitles_fall_inside_the_audio(tmp_path: Path) -> None:
    spec = FormatSpec.parse("mp3_44100_128")
    texts = ["The first part is here.", "A second part follows it.", "And the third ends it."]
    segments, per_segment = [], {}
    for i, text in enumerate(texts):
        seconds = 0.08 * len(text)
        path = make(tmp_path / f"s{i}.mp3", spec,
                    [("silence", 0.3), (f"tone:{300 + 100 * i}", seconds), ("silence", 0.3)])
        segments.append(SegmentInput(f"s{i}", path, spec, paragraph_index=i // 2))
        # The TTS alignment of segment i: its characters spread over the tone.
        per_segment[f"s{i}"] = words_from_alignment(alignment(text, 0.3, 0.08))
    result = stitch(segments, tmp_path / "prog.mp3", StitchSettings(target_lufs=None))
    audio_s = decode_pcm(result.path).duration_s
    words = shift_words(per_segment, result.sidecar)
    for entry in result.sidecar["segments"]:  # each word lands in its own segment's span
        own = shift_words({entry["id"]: per_segment[entry["id"]]}, result.sidecar)
        start_ms, end_ms = entry["offset_ms"], entry["offset_ms"] + entry["duration_ms"]
        assert all(start_ms <= w.start_s * 1000 <= w.end_s * 1000 <= end_ms for w in own)
        # The alignment put speech 0.3 s into the source; trimming moved it to the start.
        assert abs(own[0].start_s * 1000 - start_ms - StitchSettings().keep_silence_ms) < 20
    cues = make_cues(words, audio_duration_s=audio_s)
    for parsed in (parse_srt(to_srt(cues)), parse_vtt(to_vtt(cues))):
        assert parsed == cues
        assert all(0 <= c.start_ms < c.end_ms <= audio_s * 1000 for c in parsed)
        assert " ".join(c.text.replace("\n", " ") for c in parsed) == " ".join(texts)
    fallback = cues_from_sidecar(result.sidecar, {f"s{i}": t for i, t in enumerate(texts)})
    assert all(c.end_ms <= audio_s * 1000 + 1 for c in fallback)
