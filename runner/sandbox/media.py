"""Files the sandbox serves: generated results (rendered lazily) and uploads.

A generated file is stored as a recipe and rendered on its first download, in a
worker thread when clips must be encoded, then kept in a bounded cache (the
recipe stays, so an evicted file is rendered again, byte for byte). Every
rendered file is also registered by sha256 with what it says, which is how the
sandbox's speech-to-text recognises its own raw-format files.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from runner.sandbox import speech, synth
from runner.sandbox.clips import ClipLibrary
from runner.sandbox.formats import AudioFormat
from runner.sandbox.render import Plan, compose, read_marker

_CACHE_BYTES = 256 * 1024 * 1024
_REGISTRY_MAX = 200_000


_LIBRARY: ClipLibrary | None = None


def shared_library() -> ClipLibrary:
    """One clip library per process: it is a pure cache, so every sandbox app shares it."""
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = ClipLibrary({
            "w": speech.produce_word, "s": speech.produce_silence,
            "t": synth.produce_texture, "m": synth.produce_chord,
        })
    return _LIBRARY


@dataclass(frozen=True, slots=True)
class Recipe:
    """How to make a file, and what it contains (the marker) for speech-to-text.

    `riff`: raw samples (pcm, ulaw, alaw) served inside a RIFF/WAVE header."""

    plan: Plan
    fmt: AudioFormat
    marker: dict[str, Any]
    riff: bool = False

    @property
    def extension(self) -> str:
        return "wav" if self.riff else self.fmt.extension

    @property
    def content_type(self) -> str:
        return "audio/wav" if self.riff else self.fmt.content_type


@dataclass
class StoredFile:
    file_id: str
    name: str
    content_type: str
    created_s: float
    expires_s: float | None
    recipe: Recipe | None = None
    data: bytes | None = None  # uploads
    owner: tuple[str, str] | None = field(default=None)  # (provider, "path/name") of an upload


def speech_recipe(lib: ClipLibrary, utterance: speech.Utterance, fmt: AudioFormat
                  ) -> tuple[Recipe, speech.Timing]:
    keys, _ = utterance.clips()
    timing = speech.timing(lib, utterance, fmt)
    marker = {"v": 1, "kind": "speech", "text": utterance.text, "voice": utterance.voice,
              "language": utterance.language or "en", "duration_s": round(timing.duration_s, 3),
              "words": [list(w) for w in timing.words]}
    return Recipe(Plan(keys), fmt, marker), timing


def sound_recipe(kind: str, prompt: str, duration_s: float, seed: int, fmt: AudioFormat, *,
                 riff: bool = False) -> Recipe:
    plan = (synth.music_plan if kind == "music" else synth.sfx_plan)(prompt, duration_s, seed)
    marker = {"v": 1, "kind": kind, "prompt": prompt, "duration_s": duration_s}
    return Recipe(plan, fmt, marker, riff)


class MediaStore:
    def __init__(self) -> None:
        self.library = shared_library()
        self.files: dict[str, StoredFile] = {}
        self.uploads: dict[tuple[str, str], str] = {}  # (provider, "path/name") -> file id
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._cache_bytes = 0
        self.registry: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def reset(self) -> None:
        """Forget files and uploads; the clip library (pure cache) survives."""
        self.files.clear()
        self.uploads.clear()
        self._cache.clear()
        self._cache_bytes = 0

    def add(self, stored: StoredFile) -> StoredFile:
        self.files[stored.file_id] = stored
        if stored.owner is not None:
            previous = self.uploads.get(stored.owner)
            if previous is not None:
                self.files.pop(previous, None)  # same path and name: the upload overwrites
            self.uploads[stored.owner] = stored.file_id
        return stored

    async def content(self, stored: StoredFile) -> bytes:
        """The file's bytes, rendering it (off the event loop if encoding is needed)."""
        if stored.data is not None:
            return stored.data
        cached = self._cache.get(stored.file_id)
        if cached is not None:
            self._cache.move_to_end(stored.file_id)
            return cached
        assert stored.recipe is not None, "a generated file always has a recipe"
        data = await self.render(stored.recipe)
        self._remember(stored.file_id, data)
        return data

    async def render(self, recipe: Recipe) -> bytes:
        """Compose a recipe's file (encoding missing clips in a worker thread) and register it."""
        if self.library.missing(recipe.plan.clips, recipe.fmt):
            keys = recipe.plan.clips
            if recipe.marker["kind"] != "speech":  # one ffmpeg run for the whole family
                keys = synth.all_clips(recipe.marker["kind"]) + keys
            await asyncio.to_thread(self.library.ensure, keys, recipe.fmt)
        data = compose(self.library, recipe.plan, recipe.fmt, recipe.marker, riff=recipe.riff)
        self.register(data, recipe.marker)
        return data

    def register(self, data: bytes, marker: dict[str, Any]) -> None:
        self.registry[hashlib.sha256(data).hexdigest()] = marker
        if len(self.registry) > _REGISTRY_MAX:
            self.registry.popitem(last=False)

    def recognise(self, data: bytes) -> dict[str, Any] | None:
        """What a file made by this sandbox (or a sandbox before a restart) contains.

        Raw PCM / G.711 answers carry no marker, and clients wrap them in a WAV
        header (the runner does): the WAV's data chunk is then the sandbox's bytes.
        """
        found = self.registry.get(hashlib.sha256(data).hexdigest()) or read_marker(data)
        if found is None and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
            payload = _wav_data(data)
            if payload is not None:
                found = self.registry.get(hashlib.sha256(payload).hexdigest())
        return found

    def _remember(self, file_id: str, data: bytes) -> None:
        self._cache[file_id] = data
        self._cache_bytes += len(data)
        while self._cache_bytes > _CACHE_BYTES and len(self._cache) > 1:
            _, dropped = self._cache.popitem(last=False)
            self._cache_bytes -= len(dropped)


def _wav_data(data: bytes) -> bytes | None:
    """The payload of a WAV file's `data` chunk, or None."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"data":
            return data[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None
