"""Audio formats the providers return, the files the runner writes, and fast checks.

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

`verify_audio` is the structural check run on every download (pure Python, no
process spawned); `sniff` says what a file really is; decoding through ffmpeg
lives in `runner.audiodecode` and is re-exported here.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Self

from runner.audioparse import (
    WAVE_FORMAT_ALAW,
    WAVE_FORMAT_MULAW,
    WAVE_FORMAT_PCM,
    Buffer,
    InvalidAudio,
    StreamInfo,
    ogg_codec,
    parse_ogg_opus,
    parse_wav,
)
from runner.mp3frames import RELEASE_BEHIND, mp3_header_description, parse_mp3

__all__ = [
    "AudioInfo", "Codec", "FormatSpec", "InvalidAudio", "Sniffed", "WavWriter",
    "carries_wav_header", "decode", "decode_pcm", "duration_s", "sniff", "verify_audio",
    "wav_header", "wrap_raw",
]


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


def _check_raw_size(spec: FormatSpec, data_bytes: int) -> None:
    if data_bytes % spec.bytes_per_sample:
        raise InvalidAudio(f"truncated: {data_bytes} bytes of {spec.name} is not a whole number "
                           f"of {spec.bytes_per_sample}-byte samples", expected=spec.name)


def wrap_raw(data: bytes, spec: FormatSpec) -> bytes:
    """A complete WAV file holding `data` (raw provider samples) unchanged; `data` that
    is a WAV file already is returned as it is."""
    if carries_wav_header(data):
        return data
    _check_raw_size(spec, len(data))
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
        _check_raw_size(self._spec, self.data_bytes)
        if self.data_bytes & 1:
            self._file.write(b"\0")  # RIFF chunks are even-sized
        end = self._file.tell()
        self._file.seek(self._start)
        self._file.write(wav_header(self._spec, self.data_bytes))
        self._file.seek(end)
        return self.data_bytes


# --- Verification --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int
    duration_s: float
    bitrate_kbps: int | None = None


@dataclass(frozen=True, slots=True)
class Sniffed:
    """What a file is, by content: `kind` for code, `description` for people."""

    kind: str  # mp3 wav ogg-opus ogg-vorbis ogg flac mp4 aac webm html json xml text empty unknown
    description: str


_MMAP_ABOVE_BYTES = 4 << 20  # small files are cheaper to read than to map


class _Content:
    """A file's bytes, read or memory-mapped; a context manager."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        size = path.stat().st_size
        self._map: mmap.mmap | None = None
        self.data: Buffer
        if size > _MMAP_ABOVE_BYTES:
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            self.data = memoryview(self._map)
        else:
            self.data = self._file.read()

    def __enter__(self) -> Self:
        if self._map is not None:
            self._token = RELEASE_BEHIND.set(self._release_behind)
        return self

    def _release_behind(self, pos: int) -> None:
        assert self._map is not None
        end = pos - pos % mmap.PAGESIZE
        if end > 0 and hasattr(mmap, "MADV_DONTNEED"):
            self._map.madvise(mmap.MADV_DONTNEED, 0, end)

    def __exit__(self, *exc: object) -> None:
        if self._map is not None:
            RELEASE_BEHIND.reset(self._token)
        if isinstance(self.data, memoryview):
            self.data.release()
        if self._map is not None:
            self._map.close()
        self._file.close()


def _text_excerpt(head: bytes) -> str | None:
    """The first line of a text file, when the bytes look like text (an error page)."""
    try:
        text = head[:512].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text or any(ch < " " and ch not in "\t\r\n" for ch in text):
        return None
    line = " ".join(text.split())[:60]
    return line


def _sniff_buffer(buf: Buffer) -> Sniffed:
    head = bytes(buf[:64])
    if not head:
        return Sniffed("empty", "an empty file")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        try:
            info = parse_wav(buf).info
        except InvalidAudio as exc:
            return Sniffed("wav", f"a broken WAV file ({exc.problem})")
        layout = {1: "mono", 2: "stereo"}.get(info.channels, f"{info.channels} channels")
        return Sniffed("wav", f"WAV {info.codec} {info.sample_rate} Hz {layout}")
    if head[:4] == b"OggS":
        codec = ogg_codec(buf) or "unknown"
        return Sniffed(f"ogg-{codec}" if codec != "unknown" else "ogg", f"Ogg {codec.capitalize()}")
    if head[:4] == b"fLaC":
        return Sniffed("flac", "FLAC")
    if head[4:8] == b"ftyp":
        return Sniffed("mp4", "MP4/M4A")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Sniffed("webm", "WebM/Matroska")
    mp3 = mp3_header_description(buf)
    if mp3:
        return Sniffed("mp3", mp3)
    if head[:2] in (b"\xff\xf1", b"\xff\xf9"):
        return Sniffed("aac", "AAC (ADTS)")
    if head[:3] == b"ID3":
        return Sniffed("unknown", "an ID3 tag followed by no MPEG audio")
    text = _text_excerpt(bytes(buf[:512]))
    if text is not None:
        low = text.lower()
        kind = ("html" if low.startswith(("<!doctype html", "<html")) else
                "json" if low.startswith(("{", "[")) else
                "xml" if low.startswith("<") else "text")
        name = {"html": "an HTML document", "json": "a JSON document", "xml": "an XML document",
                "text": "a text file"}[kind]
        return Sniffed(kind, f'{name} ("{text}")')
    return Sniffed("unknown", "unrecognised binary data")


def sniff(path: str | Path) -> Sniffed:
    """What `path` actually is, judged by its content (never by its name)."""
    with _Content(Path(path)) as content:
        return _sniff_buffer(content.data)


_CONTAINER_OF = {Codec.MP3: ("mp3",), Codec.OPUS: ("ogg-opus",), Codec.WAV: ("wav",),
                 Codec.PCM: ("wav",), Codec.ULAW: ("wav",), Codec.ALAW: ("wav",)}


def _parse_as(buf: Buffer, spec: FormatSpec, check_crc: bool) -> StreamInfo:
    found = _sniff_buffer(buf)
    if spec.raw and found.kind == "mp3" and not _is_whole_mp3(buf):
        # Quiet s16le samples hold 0xFFFx pairs that can pass for two MPEG headers;
        # only a file that parses as MP3 to its end counts as a wrong-format answer.
        found = Sniffed("unknown", found.description)
    if found.kind not in _CONTAINER_OF[spec.codec]:
        if spec.raw and found.kind == "unknown":
            # Bare samples have no signature: all that can be checked is their size.
            _check_raw_size(spec, len(buf))
            assert spec.sample_rate is not None
            seconds = len(buf) / spec.bytes_per_sample / spec.sample_rate
            return StreamInfo("raw", spec.codec.value, spec.sample_rate, 1, seconds,
                              spec.sample_rate * spec.bytes_per_sample * 8 // 1000)
        raise InvalidAudio(f"expected {spec.describe()}, found {found.description}")
    if found.kind == "mp3":
        return parse_mp3(buf)
    if found.kind == "ogg-opus":
        return parse_ogg_opus(buf, check_crc=check_crc)
    layout = parse_wav(buf)
    if carries_wav_header(buf[layout.data_offset:layout.data_offset + 12]):
        # A provider's WAV wrapped once more: the inner header would play as a click and
        # every size in it lies. It parses as a valid WAV, so only this look catches it.
        raise InvalidAudio(f"a second RIFF/WAVE header at byte {layout.data_offset}, inside "
                           "the audio data: the file was wrapped in WAV twice")
    return layout.info


def _is_whole_mp3(buf: Buffer) -> bool:
    try:
        parse_mp3(buf)
    except InvalidAudio:
        return False
    return True


def verify_audio(
    path: str | Path,
    spec: FormatSpec | str,
    *,
    min_duration_s: float = 0.05,
    check_crc: bool = True,
    decode_check: bool = False,
) -> AudioInfo:
    """Check that `path` is well-formed audio in `spec`'s format; raise `InvalidAudio` if not.

    MP3: every frame header is walked (ID3v2/ID3v1/APE tags and a Xing/Info/LAME
    frame tolerated), one version/layer/rate throughout, nothing cut off; a
    Xing frame count must match. WAV: RIFF chunks, fmt tag and data size against
    the file size. Ogg Opus: every page's capture pattern, sequence and CRC,
    OpusHead, an end-of-stream page; duration from the last granule.
    A raw spec (pcm/ulaw/alaw) accepts the bare bytes or the runner's WAV wrap
    of them. `min_duration_s` rejects files that hold next to no audio (50 ms
    is two MP3 frames at 44.1 kHz). Bitrate is reported, never enforced:
    providers may use VBR, and it does not change what the file is.
    `decode_check` also decodes the whole file with ffmpeg (tens of ms, a
    process per file) and requires the decoded duration to agree within 50 ms:
    for when a structurally sound file with a corrupt payload matters.
    """
    spec = FormatSpec.parse(spec) if isinstance(spec, str) else spec
    path = Path(path)
    try:
        with _Content(path) as content:
            info = _checked(content.data, spec, str(path), min_duration_s, check_crc)
    except OSError as exc:
        raise InvalidAudio(f"cannot read: {exc.strerror}", path=str(path),
                           expected=spec.name) from exc
    if decode_check:
        decoded_s = decode_pcm(path, spec).duration_s
        if abs(decoded_s - info.duration_s) > 0.05:
            raise InvalidAudio(f"decodes to {decoded_s:.3f} s of audio, its headers say "
                               f"{info.duration_s:.3f} s", path=str(path), expected=spec.name)
    return info


def verify_audio_bytes(data: Buffer, spec: FormatSpec | str, *, label: str,
                       min_duration_s: float = 0.05, check_crc: bool = True) -> AudioInfo:
    """`verify_audio` for bytes already in memory (a small download): the same checks,
    without writing and reading the file back. `label` names it in errors."""
    spec = FormatSpec.parse(spec) if isinstance(spec, str) else spec
    return _checked(data, spec, label, min_duration_s, check_crc)


def _checked(buf: Buffer, spec: FormatSpec, label: str, min_duration_s: float,
             check_crc: bool) -> AudioInfo:
    try:
        info = _parse_as(buf, spec, check_crc)
    except InvalidAudio as exc:
        exc.path, exc.expected = label, exc.expected or spec.name
        raise
    _check_stream(info, spec, label)
    if info.duration_s < min_duration_s:
        raise InvalidAudio(f"holds {info.duration_s * 1000:.0f} ms of audio, "
                           f"less than the {min_duration_s * 1000:.0f} ms minimum",
                           path=label, expected=spec.name)
    return AudioInfo(info.codec, info.sample_rate, info.channels, info.duration_s, info.bitrate_kbps)


def _check_stream(info: StreamInfo, spec: FormatSpec, label: str) -> None:
    problem = None
    if spec.raw and info.codec != spec.codec.value:
        problem = f"expected {spec.describe()}, found WAV {info.codec} {info.sample_rate} Hz"
    elif spec.raw and info.channels != 1:
        problem = f"expected mono {spec.describe()}, found {info.channels} channels"
    elif spec.sample_rate is not None and info.sample_rate != spec.sample_rate:
        kind = {"mp3": "mp3", "wav": f"WAV {info.codec}", "ogg": "Ogg Opus"}.get(
            info.container, info.codec)
        problem = f"expected {spec.describe()}, found {kind} {info.sample_rate} Hz"
    if problem:
        raise InvalidAudio(problem, path=label, expected=spec.name)


# Decoding needs ffmpeg; it lives in its own module (bottom import: it uses FormatSpec).
from runner.audiodecode import decode, decode_pcm, duration_s
