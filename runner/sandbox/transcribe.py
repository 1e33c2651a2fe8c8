"""Speech-to-text: exact for the sandbox's own files, deterministic for any other audio.

A file the sandbox made is recognised (sha256 registry or embedded marker) and
transcribed as the text it was made from, with the timings it was made with.
Any other audio is decoded with ffmpeg for its real duration and given a
made-up transcript, seeded by its bytes, whose words span that duration.
"""

from __future__ import annotations

import hashlib
import random
import re
import subprocess
from dataclasses import dataclass
from typing import Any

from runner.audio.ffmpeg import ffmpeg_exe

_ISO3 = {"en": "eng", "de": "deu", "fr": "fra", "es": "spa", "it": "ita", "pt": "por",
         "ru": "rus", "ja": "jpn", "zh": "zho", "nl": "nld", "pl": "pol", "sv": "swe"}
_LEXICON = ("the", "sound", "of", "a", "quiet", "morning", "we", "heard", "rain", "on", "roof",
            "and", "then", "voices", "in", "hall", "it", "was", "late", "but", "nobody", "left",
            "music", "played", "softly", "while", "people", "talked", "about", "old", "days",
            "city", "lights", "came", "alive", "after", "dark", "every", "story", "begins",
            "with", "small", "step", "forward", "they", "said", "yes", "river", "ran", "cold")
_EVENTS = ("(laughter)", "(applause)", "(music)", "(footsteps)")


class UndecodableAudio(ValueError):
    """The bytes are not audio ffmpeg can decode."""


@dataclass(frozen=True, slots=True)
class SttOptions:
    language_code: str = ""
    tag_audio_events: bool = True
    diarize: bool = False
    granularity: str = "word"  # none | word | character
    num_speakers: int | None = None
    raw_pcm_16k: bool = False  # ElevenLabs file_format=pcm_s16le_16


def decoded_duration_s(data: bytes, raw_pcm_16k: bool = False) -> float:
    """Real duration of `data`, by decoding it (no ffprobe here)."""
    if raw_pcm_16k:
        return len(data) / 32000
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
         "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1"],
        input=data, capture_output=True, check=False,
    )
    if proc.returncode != 0 or not proc.stdout:
        raise UndecodableAudio("the file could not be decoded as audio")
    return len(proc.stdout) / 16000


def from_marker(marker: dict[str, Any], options: SttOptions) -> dict[str, Any]:
    """The transcript of a file the sandbox made."""
    language = options.language_code or _ISO3.get(str(marker.get("language", "en"))[:2], "eng")
    duration = float(marker.get("duration_s", 0.0))
    if marker.get("kind") != "speech":
        words: list[dict[str, Any]] = []
        if options.tag_audio_events:
            label = "(music)" if marker.get("kind") == "music" else "(sound effect)"
            words.append(_word(label, 0.0, duration, "audio_event", options, 0))
        return _result(language, "", words, duration)
    text = str(marker["text"])
    timed = [tuple(w) for w in marker.get("words", [])]
    out: list[dict[str, Any]] = []
    for chunk in re.finditer(r"\S+", text):
        inside = [w for w in timed if chunk.start() <= w[0] < chunk.end()]
        if not inside:  # punctuation standing alone keeps the previous word's end
            inside = [(0, 0, out[-1]["end"], out[-1]["end"])] if out else [(0, 0, 0.0, 0.0)]
        start, end = float(inside[0][2]), float(inside[-1][3])
        if out:
            out.append(_word(" ", out[-1]["end"], start, "spacing", options, 0))
        out.append(_word(chunk.group(), start, end, "word", options, 0))
    return _result(language, text, out, duration)


def invented(data: bytes, duration_s: float, options: SttOptions) -> dict[str, Any]:
    """A deterministic transcript for audio the sandbox did not make."""
    rng = random.Random(hashlib.sha256(data).digest())
    speakers = max(1, min(options.num_speakers or 2, 32)) if options.diarize else 1
    slots = max(1, int(duration_s * 2.5))
    slot = max(duration_s - 0.1, 0.05) / slots
    words: list[dict[str, Any]] = []
    texts: list[str] = []
    sentence_left, speaker, capital = rng.randint(5, 11), 0, True
    for i in range(slots):
        start = round(0.05 + i * slot, 3)
        end = round(start + slot * 0.8, 3)
        if options.tag_audio_events and sentence_left == 0 and rng.random() < 0.3:
            words.append(_word(rng.choice(_EVENTS), start, end, "audio_event", options, speaker))
            sentence_left = rng.randint(5, 11)
            continue
        token = rng.choice(_LEXICON)
        token = token.capitalize() if capital else token
        sentence_left -= 1
        capital = sentence_left <= 0 or i == slots - 1
        if capital:
            token += "."
        if words and words[-1]["type"] != "audio_event":
            words.append(_word(" ", words[-1]["end"], start, "spacing", options, speaker))
        words.append(_word(token, start, end, "word", options, speaker))
        texts.append(token)
        if sentence_left <= 0:
            sentence_left = rng.randint(5, 11)
            speaker = (speaker + 1) % speakers
    language = options.language_code or "eng"
    return _result(language, " ".join(texts), words, duration_s)


def _word(text: str, start: float, end: float, kind: str, options: SttOptions,
          speaker: int) -> dict[str, Any]:
    word: dict[str, Any] = {"text": text, "start": round(start, 3), "end": round(end, 3),
                            "type": kind, "logprob": 0.0 if kind != "word" else -0.05}
    if options.granularity == "none":
        word["start"] = word["end"] = None
    if options.diarize:
        word["speaker_id"] = f"speaker_{speaker}"
    if options.granularity == "character" and kind == "word":
        step = (end - start) / max(1, len(text))
        word["characters"] = [
            {"text": c, "start": round(start + k * step, 3), "end": round(start + (k + 1) * step, 3)}
            for k, c in enumerate(text)
        ]
    return word


def _result(language: str, text: str, words: list[dict[str, Any]], duration_s: float
            ) -> dict[str, Any]:
    return {"language_code": language, "language_probability": 0.98, "text": text,
            "words": words, "audio_duration_secs": round(duration_s, 3)}
