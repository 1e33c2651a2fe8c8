"""Pure-Python structural parsers: shared types, RIFF/WAVE and Ogg Opus.

These run on every download of batches of thousands, so they never spawn a
process: they walk the container (every MP3 frame header, every RIFF chunk,
every Ogg page) over a bytes-like buffer and either describe what they found
or raise `InvalidAudio` naming the byte or frame where it went wrong. They do
not decode audio; a file that passes is well-formed, not necessarily pleasant.

MP3 frame walking lives in `runner.audio.mp3frames`; `runner.audio.formats` is the
public face (format specs, `verify_audio`, `sniff`). These modules know only
byte layouts.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from runner.errors import InvalidAudio

Buffer = bytes | bytearray | memoryview


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
