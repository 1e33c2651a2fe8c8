"""ElevenLabs' streamed answers: `/stream` (chunked audio) and `/stream/with-timestamps`
(one JSON object per line), cut from a take the sandbox has already rendered."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from typing import Any

CHUNK_BYTES = 4096


async def pieces(audio: bytes) -> AsyncIterator[bytes]:
    """The audio as a chunked body, the way `/stream` sends it while it is generated."""
    for start in range(0, len(audio), CHUNK_BYTES):
        yield audio[start:start + CHUNK_BYTES]
        await asyncio.sleep(0)


def _slice(alignment: dict[str, list[Any]], start: int, end: int) -> dict[str, list[Any]]:
    return {key: values[start:end] for key, values in alignment.items()}


async def timestamped_lines(audio: bytes, alignment: dict[str, list[Any]],
                             normalized: dict[str, list[Any]]) -> AsyncIterator[bytes]:
    """`/stream/with-timestamps`: one JSON object per line, each a piece of the audio
    (base64) with the characters it carries and their times from the start of the whole.
    Joining the pieces' audio gives the file; joining their characters, the text."""
    count = max(1, min(len(alignment["characters"]) or 1,
                       math.ceil(len(audio) / (4 * CHUNK_BYTES))))
    chars, norm_chars = len(alignment["characters"]), len(normalized["characters"])
    for i in range(count):
        piece = audio[len(audio) * i // count:len(audio) * (i + 1) // count]
        line = {"audio_base64": base64.b64encode(piece).decode("ascii"),
                "alignment": _slice(alignment, chars * i // count, chars * (i + 1) // count),
                "normalized_alignment": _slice(normalized, norm_chars * i // count,
                                               norm_chars * (i + 1) // count)}
        yield json.dumps(line, separators=(",", ":")).encode() + b"\n"
        await asyncio.sleep(0)
