"""Decoding audio through ffmpeg, without ffprobe.

The imageio-ffmpeg binary has no ffprobe, and pydub calls ffprobe whenever it
is not told the format. So ffmpeg is run here directly: bare provider samples
get an explicit `-f`, everything else is probed by ffmpeg itself, and the output
is either 16-bit WAV on a pipe (whose header then says the rate and channels)
or raw s16le at a rate and channel count the caller chose.

This is for stitching and tests, not for the download hot path (that is
`verify_audio`, which spawns nothing). Decoding many files spawns one ffmpeg
per batch of files, because process start-up costs more than decoding a
five-second clip.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

from runner.audio.containers import parse_wav
from runner.audio.ffmpeg import ffmpeg_exe
from runner.errors import AudioError, InvalidAudio

if TYPE_CHECKING:
    from pydub import AudioSegment

    from runner.audio.formats import FormatSpec

Source = str | Path | bytes


@dataclass(frozen=True, slots=True)
class Pcm:
    """Interleaved signed 16-bit little-endian samples."""

    data: bytes
    sample_rate: int
    channels: int

    @property
    def frames(self) -> int:
        return len(self.data) // (2 * self.channels)

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def _input_args(source: Source, spec: FormatSpec | None) -> list[str]:
    """Input options for one source: `-f` for bare samples, `file:` so ':' in names is safe."""
    if isinstance(source, bytes):
        head, target = source[:4], "pipe:0"
    else:
        with open(source, "rb") as f:
            head = f.read(4)
        target = f"file:{source}"
    # A raw spec's file may already be the runner's WAV wrap of the samples.
    raw = spec is not None and spec.raw and head != b"RIFF"
    return [*(spec.ffmpeg_input_args() if raw and spec else []), "-i", target]


def _stderr_tail(stderr: bytes) -> str:
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"


def _name(source: Source) -> str:
    return "<bytes>" if isinstance(source, bytes) else str(source)


def decode_pcm(
    source: Source,
    spec: FormatSpec | None = None,
    *,
    sample_rate: int | None = None,
    channels: int | None = None,
) -> Pcm:
    """Decode a file (or bytes) to s16le, resampled/remixed only where asked."""
    args = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
            *(["-nostdin"] if not isinstance(source, bytes) else []),
            *_input_args(source, spec), "-map", "0:a:0", "-vn", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-c:a", "pcm_s16le",
            *(["-ar", str(sample_rate)] if sample_rate else []),
            *(["-ac", str(channels)] if channels else []), "-f", "wav", "pipe:1"]
    try:
        proc = subprocess.run(args, input=source if isinstance(source, bytes) else None,
                              capture_output=True, check=False)
    except OSError as exc:
        raise AudioError(f"cannot run ffmpeg ({args[0]}): {exc}") from exc
    if proc.returncode != 0:
        raise InvalidAudio(f"ffmpeg cannot decode it: {_stderr_tail(proc.stderr)}",
                           path=_name(source), expected=spec.name if spec else None)
    layout = parse_wav(proc.stdout)  # sizes are 0xFFFFFFFF on a pipe; parse_wav allows it
    data = proc.stdout[layout.data_offset:layout.data_offset + layout.data_bytes]
    return Pcm(data, layout.info.sample_rate, layout.info.channels)


def decode(source: Source, spec: FormatSpec | None = None, *,
           sample_rate: int | None = None, channels: int | None = None) -> AudioSegment:
    """Decode to a pydub `AudioSegment` (16-bit), never touching ffprobe.

    pydub is imported here, not at the top: on Python 3.13 it needs the
    `audioop-lts` backport, and no command but this should depend on it.
    """
    with warnings.catch_warnings():
        # pydub looks for ffmpeg on PATH at import and warns when there is none; it
        # never runs it for us (we hand it decoded samples), so the warning is noise.
        warnings.filterwarnings("ignore", "Couldn't find ffmpeg", RuntimeWarning)
        from pydub import AudioSegment

    pcm = decode_pcm(source, spec, sample_rate=sample_rate, channels=channels)
    return AudioSegment(data=pcm.data, sample_width=2, frame_rate=pcm.sample_rate,
                        channels=pcm.channels)


def duration_s(source: Source, spec: FormatSpec | None = None) -> float:
    """Exact decoded duration in seconds (encoder delay and padding removed by ffmpeg)."""
    return decode_pcm(source, spec).duration_s


def _decode_batch(batch: Sequence[tuple[Path, FormatSpec | None]], sample_rate: int,
                  channels: int) -> list[bytes]:
    """One ffmpeg, N inputs, N raw outputs in a scratch folder; read back in order."""
    with tempfile.TemporaryDirectory(prefix="runner-decode-") as scratch:
        args = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error"]
        for path, spec in batch:
            args += _input_args(path, spec)
        outputs = [os.path.join(scratch, f"{i}.pcm") for i in range(len(batch))]
        for i, out in enumerate(outputs):
            args += ["-map", f"{i}:a:0", "-c:a", "pcm_s16le", "-ar", str(sample_rate),
                     "-ac", str(channels), "-f", "s16le", f"file:{out}"]
        try:
            proc = subprocess.run(args, capture_output=True, check=False)
        except OSError as exc:
            raise AudioError(f"cannot run ffmpeg ({args[0]}): {exc}") from exc
        if proc.returncode != 0:
            # Name the file that broke the batch: decode each alone until one fails.
            for path, spec in batch:
                decode_pcm(path, spec, sample_rate=sample_rate, channels=channels)
            raise AudioError(f"ffmpeg failed on a batch of {len(batch)} files starting with "
                             f"{batch[0][0]}: {_stderr_tail(proc.stderr)}")
        return [Path(out).read_bytes() for out in outputs]


def decode_many(
    sources: Sequence[tuple[Path, FormatSpec | None]],
    *,
    sample_rate: int,
    channels: int,
    batch_size: int = 24,
    workers: int | None = None,
) -> Iterator[bytes]:
    """Decode files to s16le at one rate/channel count; yields each file's samples in order.

    Batches run on `workers` threads (ffmpeg does the work, so the GIL is no
    obstacle), with at most `workers + 1` batches decoded ahead of the consumer:
    memory stays bounded however many files there are. One worker is the
    default because one ffmpeg with many inputs already decodes them on
    several threads; the worker's point is to decode ahead while the caller
    works on the previous batch.
    """
    workers = workers or 1
    batches = iter([sources[i:i + batch_size] for i in range(0, len(sources), batch_size)])
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="runner-decode")
    try:
        ahead: deque[Future[list[bytes]]] = deque(
            pool.submit(_decode_batch, batch, sample_rate, channels)
            for batch in islice(batches, workers + 1))
        while ahead:
            done = ahead.popleft().result()
            following = next(batches, None)
            if following is not None:
                ahead.append(pool.submit(_decode_batch, following, sample_rate, channels))
            yield from done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
