"""Pure-Python structural parsers for MP3, RIFF/WAVE and Ogg Opus.

These run on every download of batches of thousands, so they never spawn a
process: they walk the container (every MP3 frame header, every RIFF chunk,
every Ogg page) over a bytes-like buffer and either describe what they found
or raise `InvalidAudio` naming the byte or frame where it went wrong. They do
not decode audio; a file that passes is well-formed, not necessarily pleasant.

`runner.audioformat` is the public face (format specs, `verify_audio`,
`sniff`); this module knows only byte layouts.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from runner.errors import AudioError

Buffer = bytes | bytearray | memoryview


class InvalidAudio(AudioError):
    """A file is not the audio that was asked for: wrong format, truncated or not audio.

    `problem` is what was found, `path` the file (filled in by the caller that
    knows it), `expected` the format that was asked for, when there was one.
    """

    def __init__(self, problem: str, *, path: str | None = None, expected: str | None = None):
        self.problem = problem
        self.path = path
        self.expected = expected
        super().__init__(problem)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        said = self.problem.startswith("expected")
        wanted = f" (expected {self.expected})" if self.expected and not said else ""
        return f"{where}{self.problem}{wanted}"


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What a container parser found. `frames` counts MP3 frames or Ogg pages."""

    container: str          # "mp3", "wav", "ogg"
    codec: str              # "mp3", "pcm_s16le", "pcm_f32le", "pcm_mulaw", "pcm_alaw", "opus", ...
    sample_rate: int
    channels: int
    duration_s: float
    bitrate_kbps: int | None
    frames: int = 0
    detail: str = ""        # e.g. "MPEG-1 Layer III", "Xing VBR"


# --- MP3 -------------------------------------------------------------------

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


@dataclass(frozen=True, slots=True)
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


def parse_mp3(buf: Buffer) -> StreamInfo:
    """Walk every frame of an MP3; raise `InvalidAudio` at the first thing wrong."""
    start = skip_id3v2(buf)
    if start >= len(buf):
        raise InvalidAudio("no MP3 frames: the file holds only an ID3 tag" if start else "empty")
    first = find_first_frame(buf, start)
    if first is None:
        raise InvalidAudio(f"no MPEG audio frame found after byte {start}")
    end = _audio_end(buf)
    frame0 = _header_at(buf, first)
    assert frame0 is not None  # find_first_frame checked it
    vbr = _vbr_header(buf, first, frame0)
    pos, count, audio_bytes, kbps_seen, channels = first, 0, 0, set(), 1
    while pos < end:
        frame = _header_at(buf, pos)
        if frame is None:
            if end - pos < 4:
                raise InvalidAudio(f"truncated: {end - pos} stray bytes after frame {count} "
                                   f"at byte {pos}")
            raise InvalidAudio(f"corrupt: no MPEG frame header at byte {pos} (after frame {count})")
        if frame.stream_key != frame0.stream_key:
            raise InvalidAudio(
                f"corrupt: frame {count + 1} at byte {pos} is {_VERSION_NAME[frame.version]} "
                f"Layer {'I' * frame.layer} {frame.sample_rate} Hz, the stream began as "
                f"{_VERSION_NAME[frame0.version]} Layer {'I' * frame0.layer} {frame0.sample_rate} Hz"
            )
        if pos + frame.length > end:
            raise InvalidAudio(f"truncated: frame {count + 1} runs past end of file "
                               f"(needs {frame.length} bytes at byte {pos}, {end - pos} left)")
        count += 1
        pos += frame.length
        if count > 1 or vbr is None:  # the Xing/Info frame carries no audio
            audio_bytes += frame.length
            kbps_seen.add(frame.kbps)
            channels = max(channels, frame.channels)
    audio_frames = count - (1 if vbr else 0)
    detail = f"{_VERSION_NAME[frame0.version]} Layer {'I' * frame0.layer}"
    delay = padding = 0
    if vbr is not None:
        kind, declared, delay, padding = vbr
        detail += f", {kind} header"
        # The only way to notice a download cut exactly at a frame boundary.
        if declared is not None and kind != "VBRI" and declared not in (count, audio_frames):
            raise InvalidAudio(f"truncated: the {kind} header declares {declared} frames, "
                               f"the file holds {audio_frames}")
    samples = max(audio_frames * frame0.samples - delay - padding, 0)
    duration = samples / frame0.sample_rate
    if len(kbps_seen) == 1:
        bitrate: int | None = next(iter(kbps_seen))
    else:
        raw_s = audio_frames * frame0.samples / frame0.sample_rate
        bitrate = round(audio_bytes * 8 / raw_s / 1000) if raw_s else None
    return StreamInfo("mp3", "mp3", frame0.sample_rate, channels, duration, bitrate,
                      frames=audio_frames, detail=detail)


def mp3_header_description(buf: Buffer) -> str | None:
    """'MP3 (MPEG-1 Layer III, 44100 Hz)' if buf has MPEG frames near start, else None."""
    pos = find_first_frame(buf, skip_id3v2(buf), window=4096)
    frame = _header_at(buf, pos) if pos is not None else None
    if frame is None:
        return None
    name = {1: "MP1", 2: "MP2", 3: "MP3"}[frame.layer]
    return f"{name} ({_VERSION_NAME[frame.version]} Layer {'I' * frame.layer}, {frame.sample_rate} Hz)"


# --- RIFF/WAVE ---------------------------------------------------------------

WAVE_FORMAT_PCM, WAVE_FORMAT_FLOAT, WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW = 1, 3, 6, 7
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_WAV_CODECS = {
    (WAVE_FORMAT_PCM, 8): "pcm_u8", (WAVE_FORMAT_PCM, 16): "pcm_s16le",
    (WAVE_FORMAT_PCM, 24): "pcm_s24le", (WAVE_FORMAT_PCM, 32): "pcm_s32le",
    (WAVE_FORMAT_FLOAT, 32): "pcm_f32le", (WAVE_FORMAT_FLOAT, 64): "pcm_f64le",
    (WAVE_FORMAT_ALAW, 8): "pcm_alaw", (WAVE_FORMAT_MULAW, 8): "pcm_mulaw",
}
# Writers that cannot seek back (ffmpeg to a pipe) leave sizes at this value.
_UNKNOWN_SIZE = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class WavLayout:
    info: StreamInfo
    data_offset: int
    data_bytes: int
    block_align: int


def parse_wav(buf: Buffer) -> WavLayout:
    """Parse RIFF chunks; check the fmt chunk and that the data chunk is all there."""
    size = len(buf)
    if size < 12 or buf[:4] != b"RIFF" or buf[8:12] != b"WAVE":
        raise InvalidAudio("not a RIFF/WAVE file")
    riff_size = int.from_bytes(buf[4:8], "little")
    if riff_size != _UNKNOWN_SIZE and riff_size + 8 > size:
        raise InvalidAudio(f"truncated: the RIFF header declares {riff_size + 8} bytes, "
                           f"the file has {size}")
    pos = 12
    fmt: tuple[int, int, int, int, int, int] | None = None
    while pos + 8 <= size:
        chunk_id, chunk_size = bytes(buf[pos:pos + 4]), int.from_bytes(buf[pos + 4:pos + 8], "little")
        body = pos + 8
        if chunk_id == b"fmt ":
            if chunk_size < 16 or body + chunk_size > size:
                raise InvalidAudio(f"corrupt: fmt chunk of {chunk_size} bytes at byte {pos}")
            tag, channels, rate, byte_rate, align, bits = struct.unpack_from("<HHIIHH", buf, body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and chunk_size >= 40:
                tag = int.from_bytes(buf[body + 24:body + 26], "little")  # SubFormat GUID head
            fmt = (tag, channels, rate, byte_rate, align, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudio("corrupt: the data chunk comes before any fmt chunk")
            present = size - body
            if chunk_size == _UNKNOWN_SIZE:
                chunk_size = present - present % max(fmt[4], 1)
            elif chunk_size > present:
                raise InvalidAudio(f"truncated: the data chunk declares {chunk_size} bytes, "
                                   f"only {present} present")
            return _wav_layout(fmt, body, chunk_size)
        pos = body + chunk_size + (chunk_size & 1)  # chunks are padded to even sizes
    raise InvalidAudio("no data chunk" if fmt else "no fmt chunk")


def _wav_layout(fmt: tuple[int, int, int, int, int, int], offset: int, data: int) -> WavLayout:
    tag, channels, rate, byte_rate, align, bits = fmt
    codec = _WAV_CODECS.get((tag, bits))
    if codec is None:
        raise InvalidAudio(f"unsupported WAV encoding: format tag {tag}, {bits} bits per sample")
    if channels < 1 or rate < 1 or align != channels * bits // 8 or byte_rate != rate * align:
        raise InvalidAudio(f"corrupt fmt chunk: {channels} channels, {rate} Hz, "
                           f"{bits} bits, block align {align}, byte rate {byte_rate}")
    if data % align:
        raise InvalidAudio(f"truncated: {data} data bytes is not a whole number of "
                           f"{align}-byte sample frames")
    info = StreamInfo("wav", codec, rate, channels, data / byte_rate, byte_rate * 8 // 1000,
                      frames=data // align)
    return WavLayout(info, offset, data, align)


# --- Ogg Opus ----------------------------------------------------------------

_OGG_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, n
_BIT_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(page: Buffer) -> int:
    """Ogg's CRC-32 (poly 0x04C11DB7, MSB first, init 0, no final xor) at C speed.

    zlib implements the bit-reflected twin of that CRC. Feeding it bit-reversed
    bytes, starting from 0 and without its final inversion, gives the Ogg CRC
    bit-reversed, so page CRCs cost a `translate` and a `crc32` per page rather
    than a Python loop over every byte.
    """
    raw = zlib.crc32(bytes(page).translate(_BIT_REVERSE), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


_OGG_CODECS = {b"OpusHead": "opus", b"\x01vorbis": "vorbis", b"\x7fFLAC": "flac",
               b"Speex   ": "speex"}


def ogg_codec(buf: Buffer) -> str | None:
    """The codec of the first logical stream of an Ogg file, from its first packet."""
    if len(buf) < 28 or buf[:4] != b"OggS":
        return None
    body = 27 + buf[26]
    for magic, name in _OGG_CODECS.items():
        if bytes(buf[body:body + len(magic)]) == magic:
            return name
    return "unknown"


def parse_ogg_opus(buf: Buffer, *, check_crc: bool = True) -> StreamInfo:
    """Walk Ogg pages of an Opus stream; duration = last granule − pre-skip at 48 kHz."""
    size, pos, page = len(buf), 0, 0
    serial: int | None = None
    pre_skip = channels = 0
    last_granule, last_seq, eos = -1, -1, False
    while pos < size:
        if size - pos < 27:
            raise InvalidAudio(f"truncated: {size - pos} stray bytes after page {page}")
        capture, version, kind, granule, page_serial, seq, crc, nseg = \
            _OGG_HEADER.unpack_from(buf, pos)
        if capture != b"OggS" or version != 0:
            raise InvalidAudio(f"corrupt: no Ogg page at byte {pos} (after page {page})")
        lacing = buf[pos + 27:pos + 27 + nseg]
        end = pos + 27 + nseg + sum(lacing)
        if len(lacing) < nseg or end > size:
            raise InvalidAudio(f"truncated: page {page + 1} runs past end of file")
        page += 1
        if check_crc:
            blanked = bytes(buf[pos:pos + 22]) + b"\0\0\0\0" + bytes(buf[pos + 26:end])
            if ogg_crc(blanked) != crc:
                raise InvalidAudio(f"corrupt: page {page} at byte {pos} fails its CRC check")
        if serial is None:
            body = pos + 27 + nseg
            if not kind & 2 or bytes(buf[body:body + 8]) != b"OpusHead" or end - body < 19:
                found = ogg_codec(buf)
                raise InvalidAudio(f"found Ogg {found.capitalize() if found else 'data'}, "
                                   f"not an Ogg Opus stream")
            serial, channels = page_serial, buf[body + 9]
            pre_skip = int.from_bytes(buf[body + 10:body + 12], "little")
        if page_serial == serial:
            if last_seq >= 0 and seq != last_seq + 1:
                raise InvalidAudio(f"corrupt: page {page} has sequence number {seq}, "
                                   f"expected {last_seq + 1} (a page is missing)")
            last_seq = seq
            if granule != -1:
                last_granule = granule
            eos = bool(kind & 4)
        pos = end
    if not eos:
        raise InvalidAudio(f"truncated: no end-of-stream page after page {page}")
    samples = max(last_granule - pre_skip, 0)
    duration = samples / 48000
    bitrate = round(size * 8 / duration / 1000) if duration else None
    return StreamInfo("ogg", "opus", 48000, channels, duration, bitrate, frames=page,
                      detail=f"pre-skip {pre_skip}")
