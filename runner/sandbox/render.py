"""Turning a plan (a sequence of clips) into the bytes of a file in one format.

Also the sandbox's signature: outputs carry a marker (an ID3 TXXX frame, an Opus
comment, a WAV chunk) holding what was said and when, so the sandbox's
speech-to-text recognises its own files even after a restart. Raw formats have no
room for it; those are recognised by the sha256 registry while the process lives.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import dataclass
from typing import Any

from runner.sandbox import containers
from runner.sandbox.clips import ClipKey, ClipLibrary
from runner.sandbox.formats import AudioFormat

MARKER_NAME = "runner-sandbox"
_OPUS_KEY = "RUNNER_SANDBOX"
_WAV_CHUNK = b"rsbx"
_OGG_PACKETS_PER_PAGE = 50  # one second of 20 ms packets


@dataclass(frozen=True, slots=True)
class Plan:
    """Clips in order; `total_s` cuts (or pads) the result to that duration."""

    clips: tuple[ClipKey, ...]
    total_s: float | None = None


def target_samples(total_s: float, fmt: AudioFormat) -> int:
    grid = fmt.grid
    return max(1, round(total_s * fmt.rate / grid)) * grid


def compose(lib: ClipLibrary, plan: Plan, fmt: AudioFormat, marker: dict[str, Any] | None, *,
            riff: bool = False) -> bytes:
    """The file for `plan` in `fmt`; `lib.ensure(plan.clips, fmt)` must have run.
    `riff` puts raw samples (pcm, ulaw, alaw) in a RIFF/WAVE file, marker and all."""
    payload = encode_marker(marker) if marker is not None else None
    if fmt.codec in ("mp3", "opus"):
        frames = [f for key in plan.clips for f in lib.frames(key, fmt)]
        if plan.total_s is not None:
            wanted = target_samples(plan.total_s, fmt) // fmt.grid
            frames = frames[:wanted] if len(frames) >= wanted else frames + [frames[-1]] * (
                wanted - len(frames))
        if fmt.codec == "mp3":
            head = containers.id3_tag(MARKER_NAME, payload) if payload else b""
            return head + b"".join(frames)
        return _ogg_opus(frames, [f"{_OPUS_KEY}={payload}"] if payload else [])
    width = 1 if fmt.codec in ("ulaw", "alaw") else 2 * fmt.channels
    body = b"".join(lib.raw_piece(key, fmt) for key in plan.clips)
    if plan.total_s is not None:
        wanted = target_samples(plan.total_s, fmt) * width
        body = body[:wanted] + bytes(max(0, wanted - len(body)))
    if fmt.codec == "wav" or riff:
        extra = [(_WAV_CHUNK, payload.encode())] if payload else []
        tag = {"ulaw": containers.WAVE_MULAW, "alaw": containers.WAVE_ALAW}.get(
            fmt.codec, containers.WAVE_PCM)
        return containers.wav_file(body, fmt.rate, fmt.channels, extra, tag=tag)
    return body


def _ogg_opus(packets: list[bytes], comments: list[str]) -> bytes:
    serial = 0x52534258  # "RSBX"
    pages = [
        containers.ogg_page([containers.opus_head(pre_skip=0)], serial=serial, sequence=0,
                            granule=0, first=True),
        containers.ogg_page([containers.opus_tags("runner-sandbox", comments)], serial=serial,
                            sequence=1, granule=0),
    ]
    step = _OGG_PACKETS_PER_PAGE
    for seq, start in enumerate(range(0, len(packets), step), start=2):
        chunk = packets[start:start + step]
        pages.append(containers.ogg_page(
            chunk, serial=serial, sequence=seq, granule=(start + len(chunk)) * 960,
            last=start + step >= len(packets),
        ))
    return b"".join(pages)


def encode_marker(marker: dict[str, Any]) -> str:
    raw = json.dumps(marker, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def read_marker(data: bytes) -> dict[str, Any] | None:
    """The marker a sandbox file carries, or None for any other audio."""
    payload: str | None
    if data[:3] == b"ID3":
        payload = containers.id3_text(data, MARKER_NAME)
    elif data[:4] == b"OggS":
        payload = containers.opus_comment(data, _OPUS_KEY)
    elif data[:4] == b"RIFF":
        chunk = containers.wav_chunk(data, _WAV_CHUNK)
        payload = chunk.decode("ascii", errors="replace") if chunk else None
    else:
        payload = None
    if not payload:
        return None
    try:
        value = json.loads(zlib.decompress(base64.b64decode(payload)))
    except (ValueError, zlib.error):
        return None
    return value if isinstance(value, dict) else None
