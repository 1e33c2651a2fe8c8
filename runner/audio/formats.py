"""Audio formats the providers return and the files the runner writes.

Provider format names (`mp3_44100_128`, `pcm_24000`, `ulaw_8000`, `alaw_8000`,
`opus_48000_64`, `wav`) parse into a `FormatSpec`. Raw provider bytes (pcm, ulaw,
alaw: samples with no header) are wrapped in a RIFF/WAVE header without
re-encoding, so every file the runner writes is playable and self-describing:

    spec     provider sends            runner writes
    mp3_*    MP3 frames                .mp3  as received
    opus_*   Ogg Opus                  .opus as received
    wav      RIFF/WAVE                 .wav  as received
    pcm_R    s16le mono, no header     .wav  format tag 1 (PCM) + the same bytes
    ulaw_R   G.711 mu-law, no header   .wav  format tag 7 + the same bytes
    alaw_R   G.711 A-law, no header    .wav  format tag 6 + the same bytes
    (any of the three already in WAV)  .wav  as received, never wrapped twice

Checking a file against its format is `runner.audio.verify`; decoding through
ffmpeg is `runner.audio.decode`.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

from runner.audio.containers import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    Buffer,
)
from runner.errors import InvalidAudio

__all__ = ["Codec", "FormatSpec", "WavWriter", "carries_wav_header",
           "wav_header", "wrap_raw"]


class Codec(StrEnum):
    MP3 = "mp3"
    PCM = "pcm_s16le"
    ULAW = "pcm_mulaw"
    ALAW = "pcm_alaw"
    OPUS = "opus"
    WAV = "wav"  # any RIFF/WAVE file (stable-audio returns 16-bit stereo PCM)


# Sample rates a provider may name; anything else in a format name is a typo.
_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
_NAME = re.compile(r"(?P<kind>mp3|pcm|ulaw|alaw|opus|wav)(?:_(?P<rate>\d+))?(?:_(?P<kbps>\d+))?")
# (needs rate, needs kbps) per kind of name.
_SHAPE = {"mp3": (True, True), "opus": (True, True), "pcm": (True, False),
          "ulaw": (True, False), "alaw": (True, False), "wav": (False, False)}
_CODEC = {"mp3": Codec.MP3, "opus": Codec.OPUS, "pcm": Codec.PCM, "ulaw": Codec.ULAW,
          "alaw": Codec.ALAW, "wav": Codec.WAV}
_RAW_INPUT = {Codec.PCM: "s16le", Codec.ULAW: "mulaw", Codec.ALAW: "alaw"}  # ffmpeg -f
_WAV_TAG = {Codec.PCM: WAVE_FORMAT_PCM, Codec.ULAW: WAVE_FORMAT_MULAW, Codec.ALAW: WAVE_FORMAT_ALAW}


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """An audio format as a provider names it, e.g. `FormatSpec.parse("mp3_44100_128")`."""

    name: str
    codec: Codec
    sample_rate: int | None  # None: `wav`, any rate
    bitrate_kbps: int | None  # mp3 and opus only

    @classmethod
    def parse(cls, name: str) -> FormatSpec:
        """Parse a provider format name; `ValueError` says what a valid one looks like."""
        match = _NAME.fullmatch(name.strip().lower())
        hint = ("mp3_<rate>_<kbps>, opus_48000_<kbps>, pcm_<rate>, ulaw_8000, alaw_8000, "
                "wav or wav_<rate>")
        if not match:
            raise ValueError(f"unknown audio format {name!r}: expected one of {hint}")
        kind, rate_s, kbps_s = match["kind"], match["rate"], match["kbps"]
        needs_rate, needs_kbps = _SHAPE[kind]
        if (needs_rate and not rate_s) or needs_kbps != bool(kbps_s) or (kind == "wav" and kbps_s):
            raise ValueError(f"malformed audio format {name!r}: expected one of {hint}")
        rate = int(rate_s) if rate_s else None
        if rate is not None and rate not in _RATES:
            raise ValueError(f"audio format {name!r}: {rate} Hz is not a sample rate "
                             f"(one of {', '.join(map(str, sorted(_RATES)))})")
        if kind == "opus" and rate != 48000:
            raise ValueError(f"audio format {name!r}: Opus is always 48000 Hz")
        return cls(match.group(0), _CODEC[kind], rate, int(kbps_s) if kbps_s else None)

    @property
    def raw(self) -> bool:
        """True when the provider sends bare samples that the runner wraps in WAV."""
        return self.codec in _RAW_INPUT

    @property
    def extension(self) -> str:
        return {Codec.MP3: ".mp3", Codec.OPUS: ".opus"}.get(self.codec, ".wav")

    @property
    def channels(self) -> int | None:
        return 1 if self.raw else None  # raw provider audio is mono

    @property
    def bytes_per_sample(self) -> int:
        return 2 if self.codec is Codec.PCM else 1

    def ffmpeg_input_args(self) -> list[str]:
        """`-f` and friends ffmpeg needs to read bare samples (it cannot guess them)."""
        if not self.raw:
            return []
        return ["-f", _RAW_INPUT[self.codec], "-ar", str(self.sample_rate), "-ac", "1"]

    def ffmpeg_output_args(self, sample_rate: int) -> list[str]:
        """Encoder, bitrate, rate and muxer to write this format (raw ones as WAV)."""
        rate = str(self.sample_rate or sample_rate)
        if self.codec is Codec.MP3:
            return ["-c:a", "libmp3lame", "-b:a", f"{self.bitrate_kbps}k", "-ar", rate, "-f", "mp3"]
        if self.codec is Codec.OPUS:
            return ["-c:a", "libopus", "-b:a", f"{self.bitrate_kbps}k", "-ar", rate, "-f", "opus"]
        codec = "pcm_s16le" if self.codec in (Codec.PCM, Codec.WAV) else self.codec.value
        return ["-c:a", codec, "-ar", rate, "-f", "wav"]

    def describe(self) -> str:
        """'mp3 at 44100 Hz' — the words used in verification messages."""
        kind = {Codec.MP3: "mp3", Codec.OPUS: "Ogg Opus", Codec.WAV: "WAV", Codec.PCM: "PCM s16le",
                Codec.ULAW: "G.711 mu-law", Codec.ALAW: "G.711 A-law"}[self.codec]
        return f"{kind} at {self.sample_rate} Hz" if self.sample_rate else kind

    def __str__(self) -> str:
        return self.name


# --- WAV wrapping of raw provider audio -------------------------------------


def wav_header(spec: FormatSpec, data_bytes: int) -> bytes:
    """RIFF/WAVE header for `data_bytes` of `spec`'s raw samples (mono).

    PCM gets the canonical 44-byte header. G.711 is a non-PCM format tag, which
    RIFF requires to carry an 18-byte fmt chunk (cbSize) and a `fact` chunk with
    the sample count; players that are strict about that then accept it too.
    """
    if not spec.raw:
        raise ValueError(f"{spec.name} is not a raw format; only pcm, ulaw and alaw are wrapped")
    assert spec.sample_rate is not None  # every raw format names its rate
    width = spec.bytes_per_sample
    pcm = spec.codec is Codec.PCM
    fmt = struct.pack("<HHIIHH", _WAV_TAG[spec.codec], 1, spec.sample_rate,
                      spec.sample_rate * width, width, 8 * width)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt if pcm else (
        b"fmt " + struct.pack("<IH", len(fmt) + 2, *struct.unpack("<H", fmt[:2]))
        + fmt[2:] + struct.pack("<H", 0)
        + b"fact" + struct.pack("<II", 4, data_bytes // width)
    )
    riff_size = 4 + len(chunks) + 8 + data_bytes + (data_bytes & 1)
    return (b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + chunks
            + b"data" + struct.pack("<I", data_bytes))


def carries_wav_header(data: Buffer) -> bool:
    """True when `data` starts with a RIFF/WAVE header. A raw format (pcm, ulaw, alaw)
    that arrives like this is already a WAV file and must not be wrapped again."""
    return len(data) >= 12 and bytes(data[:4]) == b"RIFF" and bytes(data[8:12]) == b"WAVE"


def check_raw_size(spec: FormatSpec, data_bytes: int) -> None:
    if data_bytes % spec.bytes_per_sample:
        raise InvalidAudio(f"truncated: {data_bytes} bytes of {spec.name} is not a whole number "
                           f"of {spec.bytes_per_sample}-byte samples", expected=spec.name)


def wrap_raw(data: bytes, spec: FormatSpec) -> bytes:
    """A complete WAV file holding `data` (raw provider samples) unchanged; `data` that
    is a WAV file already is returned as it is."""
    if carries_wav_header(data):
        return data
    check_raw_size(spec, len(data))
    return wav_header(spec, len(data)) + data + (b"\0" if len(data) & 1 else b"")


class WavWriter:
    """Stream raw provider samples into a WAV file: header first, sizes patched at the end.

        with open(tmp, "wb") as f:
            w = WavWriter(f, spec)
            async for chunk in response.aiter_bytes(): w.write(chunk)
            w.finish()

    The file object must be seekable. Until `finish` the sizes in the header are
    zero, so a crash mid-download leaves a file that verifies as empty, never
    one that claims audio it does not hold.
    """

    def __init__(self, fileobj: BinaryIO, spec: FormatSpec) -> None:
        self._file, self._spec, self.data_bytes = fileobj, spec, 0
        self._start = fileobj.tell()
        fileobj.write(wav_header(spec, 0))

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self.data_bytes += len(data)

    def finish(self) -> int:
        """Pad, patch the header with the real sizes; returns the data size in bytes."""
        check_raw_size(self._spec, self.data_bytes)
        if self.data_bytes & 1:
            self._file.write(b"\0")  # RIFF chunks are even-sized
        end = self._file.tell()
        self._file.seek(self._start)
        self._file.write(wav_header(self._spec, self.data_bytes))
        self._file.seek(end)
        return self.data_bytes
