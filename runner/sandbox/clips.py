"""The clip library: every sandbox sound is a sequence of cached, pre-encoded clips.

Spawning ffmpeg per request would cap the sandbox at a few dozen files a second,
so outputs are composed instead. A *clip* is a short mono sound at 22.05 kHz (a
spoken word, a texture of a sound effect, a bar of music, a silence). The first
time a clip is needed in a format, it is encoded, together with every other clip
missing from that format, in one ffmpeg run, then split into pieces that can be
concatenated in any order:

- raw formats (pcm, wav, ulaw, alaw): samples, split at exact sample counts;
- mp3: frames encoded with the bit reservoir off, so every frame stands alone,
  each clip padded to whole frames and aligned to frame boundaries;
- opus: 20 ms packets, each clip padded to whole packets, later wrapped in Ogg
  pages written here.

A clip's duration in a format is therefore known without encoding it
(`out_samples`), which is what lets timestamps be computed when a task is created.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence

from runner.audio.ffmpeg import ffmpeg_exe
from runner.sandbox import containers
from runner.sandbox.formats import AudioFormat

SOURCE_RATE = 22050
ClipKey = tuple[str, ...]
# LAME's delay as ffmpeg reports it (encoder delay 576 + decoder delay 529) and
# libopus's pre-skip at 48 kHz: leading silence that keeps clips on frame boundaries.
_MP3_DELAY = 1105
_OPUS_PRESKIP = 312
# Silence around each clip inside its frames, in output samples. MDCT windows
# overlap the neighbouring frame (and Opus predicts band energies from the
# previous packet), so a clip cut out of the encoder's stream is only whole if
# it starts and ends in silence; then any two clips splice cleanly.
_GUARD = {"mp3": 576, "opus": 960}


def _run_ffmpeg(args: Sequence[str], data: bytes) -> bytes:
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", *args],
        input=data, capture_output=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {proc.stderr.decode(errors='replace')[-500:]}")
    return proc.stdout


def _raw_key(fmt: AudioFormat) -> tuple[str, int, int]:
    # pcm and wav share their chunks: both are s16le at the same rate.
    codec = "pcm" if fmt.codec == "wav" else fmt.codec
    return (codec, fmt.rate, fmt.channels)


class ClipLibrary:
    """Source PCM of every clip (from its producer) and its encoded pieces per format.

    Thread-safe: encoding runs in worker threads while the event loop reads the caches.
    """

    def __init__(self, producers: dict[str, Callable[[ClipKey], bytes]]) -> None:
        # A clip key's first element names its producer ("w" word, "t" texture...).
        self._producers = producers
        self._pcm: dict[ClipKey, bytes] = {}
        self._raw: dict[tuple[tuple[str, int, int], ClipKey], bytes] = {}
        self._coded: dict[tuple[str, ClipKey], list[bytes]] = {}
        self._lock = threading.Lock()

    # --- source ------------------------------------------------------------
    def pcm(self, key: ClipKey) -> bytes:
        """Mono s16le at 22.05 kHz; produced once and kept."""
        cached = self._pcm.get(key)
        if cached is None:
            cached = self._producers[key[0]](key)
            self._pcm[key] = cached
        return cached

    def source_samples(self, key: ClipKey) -> int:
        return len(self.pcm(key)) // 2

    def out_samples(self, key: ClipKey, fmt: AudioFormat) -> int:
        """Samples this clip lasts in `fmt` (whole frames/packets for mp3/opus)."""
        n = (self.source_samples(key) * fmt.rate + SOURCE_RATE // 2) // SOURCE_RATE
        grid = fmt.grid
        if grid == 1:
            return n
        return -(-(n + 2 * _GUARD[fmt.codec]) // grid) * grid

    @staticmethod
    def lead_samples(fmt: AudioFormat) -> int:
        """Silence before a clip's sound inside its frames (0 for raw formats)."""
        return _GUARD.get(fmt.codec, 0)

    # --- encoded pieces ------------------------------------------------------
    def missing(self, keys: Sequence[ClipKey], fmt: AudioFormat) -> list[ClipKey]:
        if fmt.codec in ("mp3", "opus"):
            return [k for k in dict.fromkeys(keys) if (fmt.name, k) not in self._coded]
        raw = _raw_key(fmt)
        return [k for k in dict.fromkeys(keys) if (raw, k) not in self._raw]

    def ensure(self, keys: Sequence[ClipKey], fmt: AudioFormat) -> None:
        """Encode every clip of `keys` not yet available in `fmt` (one ffmpeg run each stage)."""
        with self._lock:
            todo = self.missing(keys, fmt)
            if not todo:
                return
            if fmt.codec in ("mp3", "opus"):
                self._encode_frames(todo, fmt)
            else:
                self._encode_raw(todo, fmt)

    def raw_piece(self, key: ClipKey, fmt: AudioFormat) -> bytes:
        return self._raw[(_raw_key(fmt), key)]

    def frames(self, key: ClipKey, fmt: AudioFormat) -> list[bytes]:
        return self._coded[(fmt.name, key)]

    def _encode_raw(self, keys: list[ClipKey], fmt: AudioFormat) -> None:
        codec_args = {"ulaw": ["-f", "mulaw"], "alaw": ["-f", "alaw"]}.get(fmt.codec, ["-f", "s16le"])
        width = 1 if fmt.codec in ("ulaw", "alaw") else 2 * fmt.channels
        sources = [self.pcm(k) for k in keys]
        out = _run_ffmpeg(
            ["-f", "s16le", "-ar", str(SOURCE_RATE), "-ac", "1", "-i", "pipe:0",
             "-ar", str(fmt.rate), "-ac", str(fmt.channels), *codec_args, "pipe:1"],
            b"".join(sources),
        )
        # Cut at the scaled cumulative boundaries; pad the resampler's shortfall with silence.
        total_in = 0
        start = 0
        silence = b"\xd5" if fmt.codec == "alaw" else b"\xff" if fmt.codec == "ulaw" else b"\x00"
        for key, source in zip(keys, sources, strict=True):
            total_in += len(source) // 2
            end = (total_in * fmt.rate + SOURCE_RATE // 2) // SOURCE_RATE
            piece = out[start * width:end * width]
            piece += silence * ((end - start) * width - len(piece))
            self._raw[(_raw_key(fmt), key)] = piece
            start = end

    def _encode_frames(self, keys: list[ClipKey], fmt: AudioFormat) -> None:
        raw_fmt = AudioFormat("pcm", fmt.rate)
        missing_raw = self.missing(keys, raw_fmt)
        if missing_raw:
            self._encode_raw(missing_raw, raw_fmt)
        grid = fmt.grid
        delay = _MP3_DELAY if fmt.codec == "mp3" else _OPUS_PRESKIP
        lead = (-delay) % grid
        guard = _GUARD[fmt.codec]
        parts = [b"\x00\x00" * lead]
        counts = []
        for key in keys:
            pcm = self._raw[(_raw_key(raw_fmt), key)]
            frames = self.out_samples(key, fmt) // grid
            counts.append(frames)
            tail = frames * grid - len(pcm) // 2 - guard
            parts.append(b"\x00\x00" * guard + pcm + b"\x00\x00" * tail)
        parts.append(b"\x00\x00" * (3 * grid))  # flush the encoder's look-ahead
        pcm_in = b"".join(parts)
        if fmt.codec == "mp3":
            encoded = _run_ffmpeg(
                ["-f", "s16le", "-ar", str(fmt.rate), "-ac", "1", "-i", "pipe:0",
                 "-c:a", "libmp3lame", "-b:a", f"{fmt.kbps}k", "-reservoir", "0",
                 "-write_xing", "0", "-id3v2_version", "0", "-f", "mp3", "pipe:1"],
                pcm_in,
            )
            pieces = containers.mp3_frames(encoded)
        else:
            encoded = _run_ffmpeg(
                ["-f", "s16le", "-ar", "48000", "-ac", "1", "-i", "pipe:0",
                 "-c:a", "libopus", "-b:a", f"{fmt.kbps}k", "-vbr", "off",
                 "-frame_duration", "20", "-f", "ogg", "pipe:1"],
                pcm_in,
            )
            pieces = list(containers.ogg_packets(encoded))[2:]  # drop OpusHead, OpusTags
        pos = (lead + delay) // grid
        for key, count in zip(keys, counts, strict=True):
            chunk = pieces[pos:pos + count]
            if len(chunk) < count:
                raise RuntimeError(f"encoder returned too few frames for {fmt.name}")
            self._coded[(fmt.name, key)] = chunk
            pos += count
