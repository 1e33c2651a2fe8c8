"""MPEG audio (MP3) frame walking, for download verification without a decoder.

Every frame header is decoded (sync, version, layer, bitrate, sample rate,
padding) and the walk must land exactly on the end of the audio: a frame cut
short, a byte of garbage, or a change of version/layer/rate mid-stream is
reported with the frame number and byte offset. Tolerated around the frames:
ID3v2 tags (several), a first frame holding a Xing/Info (with a LAME/Lavc tag
giving encoder delay and padding) or VBRI header, and trailing ID3v1/APEv2
tags. A Xing frame count that disagrees with the walk means the file was cut
at a frame boundary.
"""

from __future__ import annotations

import contextvars
import struct
from collections.abc import Callable
from dataclasses import dataclass

from runner.audio.containers import Buffer, StreamInfo
from runner.errors import InvalidAudio

_MPEG1, _MPEG2, _MPEG25 = 3, 2, 0  # the 2-bit version field
_VERSION_NAME = {_MPEG1: "MPEG-1", _MPEG2: "MPEG-2", _MPEG25: "MPEG-2.5"}
_RATES = {_MPEG1: (44100, 48000, 32000), _MPEG2: (22050, 24000, 16000), _MPEG25: (11025, 12000, 8000)}
_KBPS = {  # (is MPEG-1, layer) -> table by bitrate index; index 0 is free format, 15 invalid
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
# Bits that identify a frame's shape: everything but private, mode extension,
# copyright, original and emphasis. Frames are cached by this key, so walking a
# file costs one dict lookup per frame.
_SHAPE_MASK = 0xFFFFFEC0


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: one object per cached shape
class _Frame:
    version: int
    layer: int  # 1, 2, 3
    kbps: int
    sample_rate: int
    length: int
    samples: int
    channels: int
    crc: bool

    @property
    def stream_key(self) -> tuple[int, int, int]:
        return (self.version, self.layer, self.sample_rate)


_frame_cache: dict[int, _Frame | None] = {}


def _frame(header: int) -> _Frame | None:
    """Decode a 32-bit MPEG audio frame header; None when it is not a valid one."""
    key = header & _SHAPE_MASK
    try:
        return _frame_cache[key]
    except KeyError:
        pass
    frame: _Frame | None = None
    version = (header >> 19) & 3
    layer = 4 - ((header >> 17) & 3)
    kbps_index = (header >> 12) & 15
    rate_index = (header >> 10) & 3
    if header >> 21 == 0x7FF and version != 1 and layer != 4 and kbps_index not in (0, 15) \
            and rate_index != 3:
        mpeg1 = version == _MPEG1
        kbps = _KBPS[(mpeg1, layer)][kbps_index]
        rate = _RATES[version][rate_index]
        pad = (header >> 9) & 1
        if layer == 1:
            length, samples = (12 * kbps * 1000 // rate + pad) * 4, 384
        elif layer == 2:
            length, samples = 144 * kbps * 1000 // rate + pad, 1152
        else:
            length = (144 if mpeg1 else 72) * kbps * 1000 // rate + pad
            samples = 1152 if mpeg1 else 576
        channels = 1 if (header >> 6) & 3 == 3 else 2
        frame = _Frame(version, layer, kbps, rate, length, samples, channels,
                       crc=not (header >> 16) & 1)
    _frame_cache[key] = frame
    return frame


def _header_at(buf: Buffer, pos: int) -> _Frame | None:
    if pos + 4 > len(buf):
        return None
    return _frame(int.from_bytes(buf[pos:pos + 4], "big"))


def skip_id3v2(buf: Buffer) -> int:
    """Offset just past any ID3v2 tags at the start (there may be several)."""
    pos = 0
    while len(buf) >= pos + 10 and buf[pos:pos + 3] == b"ID3":
        flags = buf[pos + 5]
        size = 0
        for byte in buf[pos + 6:pos + 10]:
            size = (size << 7) | (byte & 0x7F)  # "syncsafe": 7 bits per byte
        pos += 10 + size + (10 if flags & 0x10 else 0)
    return pos


def _audio_end(buf: Buffer) -> int:
    """Offset where frames must end: before a trailing ID3v1 and/or APEv2 tag."""
    end = len(buf)
    for _ in range(2):  # ID3v1 and APE can appear in either order
        if end >= 128 and buf[end - 128:end - 125] == b"TAG":
            end -= 128
        elif end >= 32 and buf[end - 32:end - 24] == b"APETAGEX":
            size, flags = struct.unpack_from("<I4xI", buf, end - 20)
            end -= size + (32 if flags & 0x80000000 else 0)
    return max(end, 0)


def find_first_frame(buf: Buffer, start: int, window: int = 65536) -> int | None:
    """First offset ≥ start holding a frame header confirmed by the next one.

    A lone 0xFFE sync pattern occurs by chance in any binary data; two
    consecutive consistent headers do not, in practice. A frame that ends at or
    past the end of the audio is accepted: the walk then reports the truncation.
    """
    end = _audio_end(buf)
    head = bytes(buf[start:min(end, start + window)])
    i = head.find(b"\xff")
    while i != -1:
        pos = start + i
        frame = _header_at(buf, pos)
        if frame is not None:
            following = pos + frame.length
            if following >= end:
                return pos
            confirm = _header_at(buf, following)
            if confirm is not None and confirm.stream_key == frame.stream_key:
                return pos
        i = head.find(b"\xff", i + 1)
    return None


def _side_info_len(frame: _Frame) -> int:
    if frame.version == _MPEG1:
        return 17 if frame.channels == 1 else 32
    return 9 if frame.channels == 1 else 17


def _vbr_header(buf: Buffer, pos: int, frame: _Frame) -> tuple[str, int | None, int, int] | None:
    """(kind, frame count, encoder delay, padding) of a Xing/Info/VBRI frame at pos."""
    if frame.layer != 3:
        return None
    xing = pos + 4 + (2 if frame.crc else 0) + _side_info_len(frame)
    tag = bytes(buf[xing:xing + 4])
    if tag in (b"Xing", b"Info"):
        flags = int.from_bytes(buf[xing + 4:xing + 8], "big")
        field = xing + 8
        count = None
        if flags & 1:
            count = int.from_bytes(buf[field:field + 4], "big")
            field += 4
        field += (4 if flags & 2 else 0) + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
        delay = padding = 0
        # The LAME tag (also written by ffmpeg as "Lavc...") follows: the encoder
        # delay and end padding are 12 bits each at byte 21 of it.
        if field + 24 <= pos + frame.length and bytes(buf[field:field + 4]) in (b"LAME", b"Lavc",
                                                                               b"Lavf", b"L3.9"):
            d0, d1, d2 = buf[field + 21:field + 24]
            delay, padding = (d0 << 4) | (d1 >> 4), ((d1 & 0x0F) << 8) | d2
        return (tag.decode(), count, delay, padding)
    if bytes(buf[pos + 36:pos + 40]) == b"VBRI":
        return ("VBRI", int.from_bytes(buf[pos + 50:pos + 54], "big"), 0, 0)
    return None


_STREAM_BITS = (3 << 19) | (3 << 17) | (3 << 10)  # version, layer, sample rate
_UNSEEN = _Frame(0, 0, 0, 0, 0, 0, 0, False)


# Set (by runner.audio.formats) while walking a memory-mapped file: called with how far
# the walk has got, so the pages behind it can leave the process's resident memory.
RELEASE_BEHIND: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "RELEASE_BEHIND", default=None)
_RELEASE_EVERY_BYTES = 8 << 20


def _walk_frames(buf: Buffer, pos: int, end: int) -> dict[_Frame, int]:
    """Count frames by shape from `pos` to exactly `end`; raise at the first bad one.

    The hot loop of download verification: one slice, one dict lookup, two
    integer tests and one count per frame.
    """
    counts: dict[_Frame, int] = {}
    header = int.from_bytes(buf[pos:pos + 4], "big")
    stream = header & _STREAM_BITS
    number = 0
    release = RELEASE_BEHIND.get()
    next_release = pos + _RELEASE_EVERY_BYTES if release is not None else end
    while pos < end:
        if pos >= next_release:
            # A memory-mapped file's walked pages stay in RSS until released: a 200 MB
            # download must not add 200 MB to the runner's footprint.
            assert release is not None
            release(pos)
            next_release = pos + _RELEASE_EVERY_BYTES
        if end - pos < 4:
            raise InvalidAudio(f"truncated: {end - pos} stray bytes after frame {number} "
                               f"at byte {pos}")
        header = int.from_bytes(buf[pos:pos + 4], "big")
        frame = _frame_cache.get(header & _SHAPE_MASK, _UNSEEN)
        if frame is _UNSEEN:
            frame = _frame(header)
        if frame is None:
            raise InvalidAudio(f"corrupt: no MPEG frame header at byte {pos} "
                               f"(after frame {number})")
        number += 1
        if header & _STREAM_BITS != stream:
            raise InvalidAudio(f"corrupt: frame {number} at byte {pos} is "
                               f"{_VERSION_NAME[frame.version]} Layer {'I' * frame.layer} "
                               f"{frame.sample_rate} Hz, unlike the frames before it")
        if pos + frame.length > end:
            raise InvalidAudio(f"truncated: frame {number} runs past end of file "
                               f"(needs {frame.length} bytes at byte {pos}, {end - pos} left)")
        counts[frame] = counts.get(frame, 0) + 1
        pos += frame.length
    return counts


def parse_mp3(buf: Buffer) -> StreamInfo:
    """Walk every frame of an MP3; raise `InvalidAudio` at the first thing wrong."""
    start = skip_id3v2(buf)
    if start >= len(buf):
        raise InvalidAudio("no MP3 frames: the file holds only an ID3 tag" if start else "empty")
    first = find_first_frame(buf, start)
    if first is None:
        raise InvalidAudio(f"no MPEG audio frame found after byte {start}")
    frame0 = _header_at(buf, first)
    assert frame0 is not None  # find_first_frame checked it
    vbr = _vbr_header(buf, first, frame0)
    counts = _walk_frames(buf, first, _audio_end(buf))
    if vbr is not None:  # the Xing/Info/VBRI frame carries no audio
        counts[frame0] -= 1
    audio_frames = sum(counts.values())
    audio_bytes = sum(frame.length * n for frame, n in counts.items())
    kbps_seen = {frame.kbps for frame, n in counts.items() if n}
    channels = max((frame.channels for frame, n in counts.items() if n), default=1)
    detail = f"{_VERSION_NAME[frame0.version]} Layer {'I' * frame0.layer}"
    delay = padding = 0
    if vbr is not None:
        kind, declared, delay, padding = vbr
        detail += f", {kind} header"
        # The only way to notice a download cut exactly at a frame boundary.
        if declared is not None and kind != "VBRI" and declared not in (audio_frames + 1,
                                                                        audio_frames):
            raise InvalidAudio(f"truncated: the {kind} header declares {declared} frames, "
                               f"the file holds {audio_frames}")
    samples = max(audio_frames * frame0.samples - delay - padding, 0)
    if len(kbps_seen) == 1:
        bitrate: int | None = next(iter(kbps_seen))
    else:
        raw_s = audio_frames * frame0.samples / frame0.sample_rate
        bitrate = round(audio_bytes * 8 / raw_s / 1000) if raw_s else None
    return StreamInfo("mp3", "mp3", frame0.sample_rate, channels, samples / frame0.sample_rate,
                      bitrate, frames=audio_frames, detail=detail)


def mp3_header_description(buf: Buffer) -> str | None:
    """'MP3 (MPEG-1 Layer III, 44100 Hz)' if buf has MPEG frames near start, else None."""
    pos = find_first_frame(buf, skip_id3v2(buf), window=4096)
    frame = _header_at(buf, pos) if pos is not None else None
    if frame is None:
        return None
    name = {1: "MP1", 2: "MP2", 3: "MP3"}[frame.layer]
    return f"{name} ({_VERSION_NAME[frame.version]} Layer {'I' * frame.layer}, {frame.sample_rate} Hz)"
