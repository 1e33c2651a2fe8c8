"""Finding an ffmpeg binary on a machine that may have none installed.

Order: `$RUNNER_FFMPEG`, `ffmpeg` on PATH, then the static binary that the
`imageio-ffmpeg` wheel ships. That wheel has no ffprobe, so code here never
relies on ffprobe: decoders pass the input format explicitly.
"""

from __future__ import annotations

import functools
import os
import shutil

from runner.errors import FfmpegNotFound


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use; raises `FfmpegNotFound` with the fix."""
    configured = os.environ.get("RUNNER_FFMPEG")
    if configured:
        if not os.access(configured, os.X_OK):
            raise FfmpegNotFound(f"RUNNER_FFMPEG={configured} is not an executable file")
        return configured
    on_path = shutil.which("ffmpeg")
    if on_path:
        return on_path
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FfmpegNotFound(
            "no ffmpeg found: install it (apt install ffmpeg) or `pip install imageio-ffmpeg`, "
            "or set RUNNER_FFMPEG to its path"
        ) from exc
    try:
        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except RuntimeError as exc:
        raise FfmpegNotFound(f"imageio-ffmpeg has no usable binary here: {exc}") from exc
