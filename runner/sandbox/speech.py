"""Intelligible sandbox speech: espeak-ng words, spliced into utterances with timings.

Each distinct word is spoken once by espeak-ng (through ctypes; the library and
its data come from the `espeakng-loader` wheel) and kept as a clip, so a new
request costs no synthesis for words heard before and no ffmpeg run at all when
its words are cached. Pauses follow punctuation. Because every clip's length in
every format is known up front, word and character timings are exact for the
file that will be served. Without espeak-ng the words are a vowel-like babble of
the same rhythm, so nothing else changes.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import random
import re
import threading
from array import array
from dataclasses import dataclass
from typing import Any

from runner.sandbox.clips import SOURCE_RATE, ClipKey, ClipLibrary
from runner.sandbox.formats import AudioFormat

_TOKEN = re.compile(r"\w+(?:['’\-]\w+)*|[^\w\s]")
_PAUSE_MS = {",": 180, ";": 220, ":": 220, ".": 380, "!": 380, "?": 380, "…": 380}
_GAP_MS = 45
BASE_WPM = 175

# The 21 market voices and ElevenLabs' premade voice ids for the same people.
VOICE_IDS: dict[str, str] = {
    "Rachel": "21m00Tcm4TlvDq8ikWAM", "Aria": "9BWtsMINqrJLrRacOk9x",
    "Roger": "CwhRBWXzGAHq8TQ4Fs17", "Sarah": "EXAVITQu4vr4xnSDxMaL",
    "Laura": "FGY2WhTYpPnrIDTdsKH5", "Charlie": "IKne3meq5aSn9XLyUdCD",
    "George": "JBFqnCBsd6RMkjVDRZzb", "Callum": "N2lVS1w4EtoT3dr4eOWO",
    "River": "SAz9YHcvj6GT2YYXdXww", "Liam": "TX3LPaxmHKxFdv7VOQHJ",
    "Charlotte": "XB0fDUnXU5powFXDhCwa", "Alice": "Xb7hH8MSUJpSbSDYk0k2",
    "Matilda": "XrExE9yKIg1WjnnlVkGX", "Will": "bIHbv24MWmeRgasZH58o",
    "Jessica": "cgSgspJ2msm6clMCkdW9", "Eric": "cjVigY5qzO86Huf0OWal",
    "Chris": "iP95p4xoKVk53GoZ742B", "Brian": "nPczCjzI2devNBz1zQrb",
    "Daniel": "onwK4e9ZLuTAKqWW03F9", "Lily": "pFZP5JQG7iQjIQuC4Bku",
    "Bill": "pqHfZKP75CvOlQylNhV4",
}
MARKET_VOICES = tuple(VOICE_IDS)
_FEMALE = {"Rachel", "Aria", "Sarah", "Laura", "Charlotte", "Alice", "Matilda", "Jessica",
           "Lily", "River"}


def voice_profile(voice: str) -> str:
    """An espeak variant and pitch for a voice name or id, e.g. `f3:55`; stable per voice."""
    name = next((n for n, vid in VOICE_IDS.items() if vid == voice), voice)
    digest = hashlib.sha256(name.encode()).digest()
    if name in _FEMALE:
        return f"f{1 + digest[0] % 4}:{50 + digest[1] % 25}"
    return f"m{1 + digest[0] % 6}:{30 + digest[1] % 25}"


class _Espeak:
    """The espeak-ng library in synchronous mode; not thread-safe, so always under a lock."""

    class _Event(ctypes.Structure):
        _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                    ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                    ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                    ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]

    def __init__(self) -> None:
        import espeakng_loader

        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data_parent = os.path.dirname(espeakng_loader.get_data_path())
        if self._lib.espeak_Initialize(2, 0, data_parent.encode(), 0) != SOURCE_RATE:
            raise OSError("espeak-ng did not initialise at 22050 Hz")
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                         ctypes.c_int, ctypes.POINTER(self._Event))
        self._chunks: list[bytes] = []

        def collect(wav: Any, count: int, _events: Any) -> int:
            if count > 0:
                self._chunks.append(ctypes.string_at(wav, count * 2))
            return 0

        self._callback = callback_type(collect)  # kept alive: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice = ""

    def speak(self, text: str, voice: str, pitch: int, wpm: int) -> bytes:
        if voice != self._voice:
            if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                variant = voice.partition("+")[2]
                self._lib.espeak_SetVoiceByName(f"en-us+{variant}".encode())
            self._voice = voice
        self._lib.espeak_SetParameter(1, max(80, min(450, wpm)), 0)  # espeakRATE
        self._lib.espeak_SetParameter(3, pitch, 0)  # espeakPITCH
        self._chunks = []
        encoded = text.encode()
        self._lib.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, 1, None, None)
        self._lib.espeak_Synchronize()
        return b"".join(self._chunks)


_ENGINE: _Espeak | None = None
_ENGINE_FAILED = False
_ENGINE_LOCK = threading.Lock()


def _speak(word: str, language: str, profile: str, wpm: int) -> bytes:
    global _ENGINE, _ENGINE_FAILED
    variant, _, pitch = profile.partition(":")
    with _ENGINE_LOCK:
        if _ENGINE is None and not _ENGINE_FAILED:
            try:
                _ENGINE = _Espeak()
            except (OSError, ImportError):
                _ENGINE_FAILED = True
        if _ENGINE is not None:
            voice = f"{language or 'en-us'}+{variant}"
            return _trim(_ENGINE.speak(word, voice, int(pitch), wpm))
    return _babble(word, int(pitch), wpm)


def _trim(pcm: bytes, threshold: int = 200) -> bytes:
    samples = array("h", pcm)
    first = next((i for i, v in enumerate(samples) if abs(v) > threshold), 0)
    last = next((i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > threshold),
                len(samples) - 1)
    margin = SOURCE_RATE // 100
    return samples[max(0, first - margin):last + margin].tobytes()


def _babble(word: str, pitch: int, wpm: int) -> bytes:
    """A vowel-like stand-in for a word: one voiced burst per syllable."""
    syllables = max(1, len(re.findall(r"[aeiouy]+", word.lower())))
    seconds = 60.0 / wpm * 0.8 * syllables
    n = int(seconds * SOURCE_RATE)
    f0 = 90 + pitch * 2
    per = n // syllables
    out = array("h")
    for i in range(n):
        env = math.sin(math.pi * (i % per) / per)
        t = i / SOURCE_RATE
        value = sum(math.sin(2 * math.pi * f0 * k * t) / k for k in (1, 2, 3, 5))
        out.append(int(5000 * env * value))
    return out.tobytes()


def produce_word(key: ClipKey) -> bytes:
    """Clip producer for ("w", language, profile, wpm, word)."""
    _, language, profile, wpm, word = key
    return _speak(word, language, profile, int(wpm))


def produce_silence(key: ClipKey) -> bytes:
    """Clip producer for ("s", milliseconds)."""
    return bytes(2 * (int(key[1]) * SOURCE_RATE // 1000))


@dataclass(frozen=True, slots=True)
class Utterance:
    """What to say and how: the inputs that decide the sound of a TTS request."""

    text: str
    voice: str
    speed: float = 1.0
    language: str = ""
    # Picks the pauses between words: takes of the same text differ, words stay cached.
    seed: int = 0

    def clips(self) -> tuple[tuple[ClipKey, ...], list[tuple[int, int, int]]]:
        """Clip keys in order, and (clip index, char start, char end) of every word."""
        profile = voice_profile(self.voice)
        wpm = str(round(BASE_WPM * self.speed))
        keys: list[ClipKey] = []
        words: list[tuple[int, int, int]] = []
        gaps = random.Random(self.seed)
        for match in _TOKEN.finditer(self.text):
            token = match.group()
            if token in _PAUSE_MS:
                keys.append(("s", str(_PAUSE_MS[token])))
                continue
            if not (token[0].isalnum() or token[0] == "_"):
                continue
            if keys:
                keys.append(("s", str(_GAP_MS + 10 * gaps.randrange(-2, 3))))
            words.append((len(keys), match.start(), match.end()))
            keys.append(("w", self.language.lower(), profile, wpm, token.lower()))
        if not keys:
            keys.append(("s", "250"))
        return tuple(keys), words


@dataclass(frozen=True, slots=True)
class Timing:
    """Where each word of the text is heard in the file, in seconds."""

    duration_s: float
    words: list[tuple[int, int, float, float]]  # char start, char end, start_s, end_s


def timing(lib: ClipLibrary, utterance: Utterance, fmt: AudioFormat) -> Timing:
    keys, words = utterance.clips()
    starts = []
    pos = 0
    for key in keys:
        starts.append(pos)
        pos += lib.out_samples(key, fmt)
    lead = lib.lead_samples(fmt)
    out = []
    for index, c0, c1 in words:
        sound = lib.source_samples(keys[index]) * fmt.rate / SOURCE_RATE
        start = (starts[index] + lead) / fmt.rate
        out.append((c0, c1, round(start, 3), round(start + sound / fmt.rate, 3)))
    return Timing(pos / fmt.rate, out)


def alignment(text: str, words: list[tuple[int, int, float, float]], duration_s: float
              ) -> dict[str, list[Any]]:
    """ElevenLabs' character alignment: every character of `text` with start and end times."""
    starts = [0.0] * len(text)
    ends = [0.0] * len(text)
    prev_end, cursor = 0.0, 0
    bounds = [*words, (len(text), len(text), duration_s, duration_s)]
    for c0, c1, w0, w1 in bounds:
        gap = c0 - cursor  # spaces and punctuation between words share the pause
        for i in range(gap):
            starts[cursor + i] = round(prev_end + (w0 - prev_end) * i / gap, 3)
            ends[cursor + i] = round(prev_end + (w0 - prev_end) * (i + 1) / gap, 3)
        span = c1 - c0
        for i in range(span):
            starts[c0 + i] = round(w0 + (w1 - w0) * i / span, 3)
            ends[c0 + i] = round(w0 + (w1 - w0) * (i + 1) / span, 3)
        prev_end, cursor = w1, c1
    return {"characters": list(text), "character_start_times_seconds": starts,
            "character_end_times_seconds": ends}
