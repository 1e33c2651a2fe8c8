"""Speech-to-text results in every accepted shape, to text, SRT and WebVTT."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from runner.errors import AudioError
from runner.text.subtitles import parse_srt, parse_vtt
from runner.text.transcripts import cues, parse_stt, to_text, write_transcript


def _w(text: str, start: float, end: float, speaker: str | None = "speaker_0",
       kind: str = "word") -> dict[str, Any]:
    item: dict[str, Any] = {"text": text, "start": start, "end": end, "type": kind}
    if speaker:
        item["speaker_id"] = speaker
    return item


def _spaced(*items: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for item in items:
        if out:
            out.append(_w(" ", out[-1]["end"], item["start"], item.get("speaker_id"), "spacing"))
        out.append(item)
    return out


DIALOGUE = {
    "language_code": "eng", "language_probability": 0.99,
    "text": "Ever tried it? (laughter) No, never. Really?",
    "words": _spaced(
        _w("Ever", 0.14, 0.34), _w("tried", 0.34, 0.6), _w("it?", 0.6, 0.9),
        _w("(laughter)", 1.0, 1.8, "speaker_0", "audio_event"),
        _w("No,", 2.0, 2.2, "speaker_1"), _w("never.", 2.2, 2.7, "speaker_1"),
        _w("Really?", 3.0, 3.5, "speaker_0"),
    ),
}


@pytest.mark.parametrize("wrap", [
    lambda body: body,
    lambda body: {"resultObject": body},
    lambda body: {"resultObject": json.dumps(body)},
    lambda body: {"resultUrls": [], "resultObject": body},
    lambda body: {"taskId": "t1", "state": "success",
                  "resultJson": json.dumps({"resultObject": body})},
    lambda body: {"code": 200, "msg": "success",
                  "data": {"resultJson": json.dumps({"resultObject": body})}},
    lambda body: json.dumps({"resultObject": body}),
], ids=["elevenlabs", "resultObject", "resultObject-string", "both-keys", "recordInfo",
        "envelope", "json-string"])
def test_every_result_shape_parses(wrap: Any) -> None:
    transcript = parse_stt(wrap(DIALOGUE))
    assert transcript.text == DIALOGUE["text"]
    assert transcript.language_code == "eng"
    assert transcript.speakers == ["speaker_0", "speaker_1"]


def test_missing_words_and_missing_everything() -> None:
    assert parse_stt({"resultObject": {"text": "Just text."}}).words == []
    assert parse_stt({"text": "Null words.", "words": None}).text == "Null words."
    assert to_text(parse_stt({"text": "  Just text. "})) == "Just text.\n"
    assert cues(parse_stt({"text": "No timings."})) == []
    assert parse_stt({"words": _spaced(_w("Built", 0, 1), _w("back.", 1, 2))}).text == "Built back."
    with pytest.raises(AudioError, match="neither"):
        parse_stt({"resultObject": {"language_code": "eng"}})
    with pytest.raises(AudioError, match="not JSON"):
        parse_stt("<html>")


def test_diarized_text_is_speaker_labelled_with_events_inline() -> None:
    assert to_text(parse_stt(DIALOGUE)) == (
        "speaker_0: Ever tried it? (laughter)\n\n"
        "speaker_1: No, never.\n\n"
        "speaker_0: Really?\n")


def test_single_speaker_text_is_plain() -> None:
    body = {"text": "Hello there.", "words": _spaced(_w("Hello", 0, 0.4), _w("there.", 0.4, 0.9))}
    assert to_text(parse_stt(body)) == "Hello there.\n"
    (cue,) = cues(parse_stt(body))
    assert cue.speaker is None and cue.text == "Hello there."


def test_cues_never_mix_speakers_and_events_stand_alone() -> None:
    timed = cues(parse_stt(DIALOGUE), audio_duration_s=4.0)
    assert [(c.speaker, c.text) for c in timed] == [
        ("speaker_0", "Ever tried it?"), (None, "(laughter)"),
        ("speaker_1", "No, never."), ("speaker_0", "Really?")]
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(timed))
    assert timed[-1].end_ms <= 4000


def test_multichannel_results_merge_by_time() -> None:
    body = {"transcripts": [
        {"text": "Left side.", "language_code": "eng",
         "words": _spaced(_w("Left", 0.0, 0.3, None), _w("side.", 1.0, 1.3, None))},
        {"text": "Right.", "words": [_w("Right.", 0.5, 0.8, None)]},
    ]}
    transcript = parse_stt(body)
    assert transcript.speakers == ["channel_0", "channel_1"]
    assert to_text(transcript) == "channel_0: Left\n\nchannel_1: Right.\n\nchannel_0: side.\n"


def test_write_transcript_files(tmp_path: Path) -> None:
    raw = json.dumps({"resultObject": DIALOGUE})
    written = write_transcript(raw, tmp_path / "interview", audio_duration_s=4.0)
    assert sorted(written) == ["json", "srt", "txt", "vtt"]
    assert written["json"].read_text() == raw  # the provider's JSON exactly as received
    assert written["txt"].read_text().startswith("speaker_0: Ever tried it?")
    srt = parse_srt(written["srt"].read_text())
    vtt = parse_vtt(written["vtt"].read_text())
    assert [c.speaker for c in vtt] == ["speaker_0", None, "speaker_1", "speaker_0"]
    assert [c.text for c in srt] == [c.text for c in vtt]
    assert "<v speaker_1>No, never." in written["vtt"].read_text()
    assert all(c.end_ms <= 4000 for c in vtt)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "interview.json", "interview.srt", "interview.txt", "interview.vtt"]
    only_text = write_transcript({"text": "Untimed."}, tmp_path / "plain")
    assert sorted(only_text) == ["json", "txt"]
