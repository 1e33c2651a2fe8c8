"""Byte-level container work that needs no codec: MP3 frames, Ogg pages, WAV and ID3.

The sandbox composes its outputs from pre-encoded pieces (MP3 frames encoded
without a bit reservoir, Opus packets), so it must split encoder output into
those pieces and write valid files around them without spawning ffmpeg per
request.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

_MPEG1_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_MPEG2_KBPS = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mp3_frames(data: bytes) -> list[bytes]:
    """Split a bare MPEG-1/2 Layer III stream into frames (skips an ID3v2 tag)."""
    pos = 0
    if data[:3] == b"ID3":
        size = data[6:10]
        pos = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    frames: list[bytes] = []
    end = len(data)
    while pos + 4 <= end:
        b1, b2 = data[pos + 1], data[pos + 2]
        if data[pos] != 0xFF or (b1 & 0xE0) != 0xE0:
            raise ValueError(f"no MP3 frame sync at byte {pos}")
        version = (b1 >> 3) & 3
        kbps = (_MPEG1_KBPS if version == 3 else _MPEG2_KBPS)[b2 >> 4]
        rate = _RATES[version][(b2 >> 2) & 3]
        padding = (b2 >> 1) & 1
        length = (144 if version == 3 else 72) * kbps * 1000 // rate + padding
        frames.append(data[pos:pos + length])
        pos += length
    return frames


def id3_tag(description: str, value: str) -> bytes:
    """An ID3v2.3 tag holding one TXXX frame (ASCII text; decoders skip it)."""
    body = b"\x00" + description.encode("ascii") + b"\x00" + value.encode("ascii")
    frame = b"TXXX" + struct.pack(">I", len(body)) + b"\x00\x00" + body
    size = len(frame)
    syncsafe = bytes(((size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F))
    return b"ID3\x03\x00\x00" + syncsafe + frame


def id3_text(data: bytes, description: str) -> str | None:
    """The value of the TXXX frame named `description` in a leading ID3v2.3 tag."""
    if data[:3] != b"ID3" or len(data) < 10:
        return None
    size = data[6:10]
    end = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
    pos = 10
    while pos + 10 <= min(end, len(data)):
        frame_id = data[pos:pos + 4]
        length = struct.unpack(">I", data[pos + 4:pos + 8])[0]
        body = data[pos + 10:pos + 10 + length]
        if frame_id == b"TXXX":
            desc, _, value = body[1:].partition(b"\x00")
            if desc.decode("latin-1") == description:
                return value.decode("latin-1")
        if length == 0:
            break
        pos += 10 + length
    return None


# --- Ogg -------------------------------------------------------------------
# Ogg's CRC is CRC-32 with polynomial 0x04C11DB7, not reflected, init 0 and no
# final xor. zlib's crc32 is the reflected twin, so feed it bit-reversed bytes
# and reverse the result: the whole page is checksummed in C.
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(page: bytes) -> int:
    raw = zlib.crc32(page.translate(_REVERSE), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def ogg_page(payload_packets: Sequence[bytes], *, serial: int, sequence: int, granule: int,
             first: bool = False, last: bool = False) -> bytes:
    """One Ogg page holding whole packets (at most 255 lacing values in total)."""
    lacing = bytearray()
    for packet in payload_packets:
        lacing.extend(b"\xff" * (len(packet) // 255))
        lacing.append(len(packet) % 255)
    header_type = (0x02 if first else 0) | (0x04 if last else 0)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, header_type, granule, serial, sequence, 0,
                         len(lacing))
    page = header + bytes(lacing) + b"".join(payload_packets)
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def ogg_packets(data: bytes) -> Iterator[bytes]:
    """Every packet of a single-stream Ogg file, in order."""
    pos, pending = 0, b""
    while pos + 27 <= len(data):
        if data[pos:pos + 4] != b"OggS":
            raise ValueError(f"no Ogg page at byte {pos}")
        count = data[pos + 26]
        lacing = data[pos + 27:pos + 27 + count]
        pos += 27 + count
        for value in lacing:
            pending += data[pos:pos + value]
            pos += value
            if value < 255:
                yield pending
                pending = b""


def opus_head(pre_skip: int, channels: int = 1) -> bytes:
    return struct.pack("<8sBBHIhB", b"OpusHead", 1, channels, pre_skip, 48000, 0, 0)


def opus_tags(vendor: str, comments: Sequence[str]) -> bytes:
    out = bytearray(b"OpusTags")
    out += struct.pack("<I", len(vendor)) + vendor.encode()
    out += struct.pack("<I", len(comments))
    for comment in comments:
        encoded = comment.encode()
        out += struct.pack("<I", len(encoded)) + encoded
    return bytes(out)


def opus_comment(data: bytes, key: str) -> str | None:
    """The value of `key=` in an Ogg Opus file's OpusTags packet."""
    if data[:4] != b"OggS":
        return None
    try:
        packets = ogg_packets(data)
        next(packets)
        tags = next(packets)
    except (StopIteration, ValueError):
        return None
    if not tags.startswith(b"OpusTags"):
        return None
    pos = 8
    vendor_len = struct.unpack("<I", tags[pos:pos + 4])[0]
    pos += 4 + vendor_len
    count = struct.unpack("<I", tags[pos:pos + 4])[0]
    pos += 4
    prefix = key.encode() + b"="
    for _ in range(count):
        length = struct.unpack("<I", tags[pos:pos + 4])[0]
        comment = tags[pos + 4:pos + 4 + length]
        pos += 4 + length
        if comment.startswith(prefix):
            return comment[len(prefix):].decode()
    return None


# --- WAV -------------------------------------------------------------------
WAVE_PCM, WAVE_ALAW, WAVE_MULAW = 1, 6, 7


def wav_file(samples: bytes, rate: int, channels: int,
             extra_chunks: Sequence[tuple[bytes, bytes]] = (), *, tag: int = WAVE_PCM) -> bytes:
    """A RIFF/WAVE file of s16le samples (or 8-bit G.711 for the A-law / mu-law tags),
    with optional extra chunks before `data`. G.711 gets the 18-byte fmt chunk and
    the `fact` chunk RIFF asks of non-PCM formats."""
    width = 2 if tag == WAVE_PCM else 1
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width,
                      8 * width)
    if tag != WAVE_PCM:
        fmt += struct.pack("<H", 0)
    chunks = [b"fmt " + struct.pack("<I", len(fmt)) + fmt]
    if tag != WAVE_PCM:
        chunks.append(b"fact" + struct.pack("<II", 4, len(samples) // (channels * width)))
    for chunk_id, body in extra_chunks:
        pad = b"\x00" if len(body) % 2 else b""
        chunks.append(chunk_id + struct.pack("<I", len(body)) + body + pad)
    chunks.append(b"data" + struct.pack("<I", len(samples)))
    head = b"".join(chunks)
    pad = b"\x00" if len(samples) % 2 else b""
    return (b"RIFF" + struct.pack("<I", 4 + len(head) + len(samples) + len(pad)) + b"WAVE" + head
            + samples + pad)


def wav_chunk(data: bytes, chunk_id: bytes) -> bytes | None:
    """The body of the first chunk named `chunk_id` in a RIFF/WAVE file."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if cid == chunk_id:
            return data[pos + 8:pos + 8 + size]
        if cid == b"data":
            return None
        pos += 8 + size + (size % 2)
    return None
