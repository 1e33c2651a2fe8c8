"""Speech-to-text results to files: the provider's JSON, plain text, SRT and WebVTT.

Accepted shapes (parsed defensively, see docs/providers.md,
"Market API: speech-to-text" and "ElevenLabs: speech to text"): the ElevenLabs body
`{text, language_code, words: [{text, start, end, type, speaker_id}]}`;
the market's `{resultObject: {...}}` (object or JSON string), also inside a
recordInfo `resultJson` string or `data`; a missing or null `words`; the
multichannel `{transcripts: [...]}`.

Text: speaker-labelled paragraphs ("speaker_0: ...") when two or more
speakers are present, audio events inline as written, e.g. "(laughter)".
Subtitles: a cue never mixes speakers, and an audio event is a cue of its own
with no voice, because it is not anyone's speech and has its own timing; in
WebVTT speech cues carry `<v speaker_0>`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runner.errors import AudioError
from runner.store import atomic
from runner.text.subtitles import Cue, event_text, make_cues, to_srt, to_vtt, words_from_stt


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language_code: str | None = None
    # The word list as the provider sent it (word, spacing and audio_event items).
    words: Sequence[Mapping[str, Any]] = field(default_factory=list)

    @property
    def speakers(self) -> list[str]:
        seen: dict[str, None] = {}
        for w in self.words:
            if w.get("type", "word") == "word" and w.get("speaker_id"):
                seen.setdefault(str(w["speaker_id"]))
        return list(seen)


def _as_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AudioError(f"speech-to-text {what} is not JSON: {exc}") from exc
    if not isinstance(value, Mapping):
        raise AudioError(f"speech-to-text {what} is a {type(value).__name__}, not an object")
    return value


def _unwrap(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    """Peel the market's envelopes off until the ElevenLabs-shaped body remains."""
    for _ in range(4):
        if isinstance(payload.get("data"), Mapping) and "text" not in payload:
            payload = payload["data"]
        elif payload.get("resultJson") is not None and "text" not in payload:
            payload = _as_mapping(payload["resultJson"], "resultJson")
        elif payload.get("resultObject") is not None:
            payload = _as_mapping(payload["resultObject"], "resultObject")
        else:
            break
    return payload


def parse_stt(payload: Mapping[str, Any] | str | bytes) -> Transcript:
    """A `Transcript` from any accepted result shape; `AudioError` if it holds none."""
    body = _unwrap(_as_mapping(payload, "result"))
    if isinstance(body.get("transcripts"), list):  # multichannel: one transcript per channel
        parts = [parse_stt(part) for part in body["transcripts"]]
        words = sorted(
            ({**w, "speaker_id": w.get("speaker_id") or f"channel_{n}"}
             for n, part in enumerate(parts) for w in part.words if w.get("type") != "spacing"),
            key=lambda w: float(w.get("start") or 0.0))
        spaced = [item for w in words for item in (w, {"type": "spacing", "text": " "})]
        return Transcript("\n".join(p.text for p in parts),
                          next((p.language_code for p in parts if p.language_code), None),
                          spaced[:-1])
    words = body.get("words") or []
    if not isinstance(words, list):
        raise AudioError(f"speech-to-text `words` is a {type(words).__name__}, not a list")
    text = body.get("text")
    if text is None:
        if not words:
            raise AudioError("speech-to-text result holds neither `text` nor `words`: "
                             f"keys {sorted(body)}")
        text = "".join(str(w.get("text", "")) for w in words).strip()
    return Transcript(str(text), body.get("language_code"), words)


def to_text(transcript: Transcript) -> str:
    """Plain text; speaker-labelled paragraphs when two or more speakers spoke."""
    if len(transcript.speakers) < 2:
        return transcript.text.strip() + "\n"
    turns: list[tuple[str, list[str]]] = []
    for w in transcript.words:
        kind, speaker = w.get("type", "word"), w.get("speaker_id")
        if kind == "word" and speaker and (not turns or turns[-1][0] != speaker):
            turns.append((str(speaker), []))
        elif not turns:
            turns.append((str(speaker or "speaker"), []))
        text = str(w.get("text", ""))
        turns[-1][1].append(event_text(text) if kind == "audio_event" else text)
    paragraphs = [f"{speaker}: {' '.join(''.join(parts).split())}"
                  for speaker, parts in turns if "".join(parts).strip()]
    return "\n\n".join(paragraphs) + "\n"


def cues(transcript: Transcript, *, audio_duration_s: float | None = None) -> list[Cue]:
    """Subtitle cues: per speaker, audio events on their own (see module doc)."""
    words = words_from_stt(transcript.words)
    if len(transcript.speakers) < 2:  # one voice: no voice tags to write
        words = [dataclasses.replace(w, speaker=None) for w in words]
    return make_cues(words, audio_duration_s=audio_duration_s)


def write_transcript(
    payload: Mapping[str, Any] | str | bytes,
    stem: str | Path,
    *,
    audio_duration_s: float | None = None,
) -> dict[str, Path]:
    """Write `<stem>.json` (the provider's JSON as received), `.txt`, `.srt`, `.vtt`.

    Each file is written atomically. Subtitles are written only when the result
    has timed words; the returned mapping names the files written.
    """
    stem = Path(stem)
    raw = payload if isinstance(payload, str | bytes) else json.dumps(
        payload, ensure_ascii=False, indent=2) + "\n"
    written = {"json": stem.with_name(stem.name + ".json")}
    atomic.write_bytes(written["json"], raw.encode("utf-8") if isinstance(raw, str) else raw)
    written.update(write_readable(parse_stt(payload), stem, audio_duration_s=audio_duration_s))
    return written


def write_readable(transcript: Transcript, stem: Path, *,
                   audio_duration_s: float | None = None) -> dict[str, Path]:
    """`<stem>.txt`, and `.srt`/`.vtt` when the transcript has timed words (atomic)."""
    written = {"txt": stem.with_name(stem.name + ".txt")}
    atomic.write_text(written["txt"], to_text(transcript))
    timed = cues(transcript, audio_duration_s=audio_duration_s)
    if timed:
        written["srt"] = stem.with_name(stem.name + ".srt")
        written["vtt"] = stem.with_name(stem.name + ".vtt")
        atomic.write_text(written["srt"], to_srt(timed))
        atomic.write_text(written["vtt"], to_vtt(timed))
    return written
