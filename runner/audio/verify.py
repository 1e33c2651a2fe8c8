"""Is a file the audio it claims to be? Fast structural checks, and what a file really is.

`verify_audio` is the check run on every download (pure Python, no process
spawned: every MP3 frame header, every RIFF chunk, every Ogg page is walked);
`sniff` says what a file is by its content, for messages that name what arrived.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from runner.audio.containers import (
    Buffer,
    StreamInfo,
    ogg_codec,
    parse_ogg_opus,
    parse_wav,
)
from runner.audio.decode import decode_pcm
from runner.audio.formats import Codec, FormatSpec, carries_wav_header, check_raw_size
from runner.audio.mp3frames import RELEASE_BEHIND, mp3_header_description, parse_mp3
from runner.errors import InvalidAudio

__all__ = ["AudioInfo", "Sniffed", "sniff", "verify_audio", "verify_audio_bytes"]


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
            check_raw_size(spec, len(buf))
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
