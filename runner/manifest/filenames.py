"""Paths a manifest names: what makes one usable, before anything is paid for.

A path that a file system refuses (a NUL byte, a name over 255 bytes) fails only
when the file is written, after the request was paid for; a path that leaves its
folder writes or reads where it should not. So every path a manifest gives is
checked here first: outputs (inside output_dir), `output_dir` itself, and the
local files a job reads (`text_file`, `audio: {file:}`, inside the manifest's
folder).
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path

from runner.errors import shown

# Linux, macOS and Windows file systems allow 255 bytes (UTF-8) or UTF-16 units
# per name; Linux's PATH_MAX is 4096 with the terminating NUL.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4095
_SEPARATORS = re.compile(r"[/\\]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def name_problem(text: str, what: str) -> str | None:
    """Why `text` cannot be a path on a common file system, or None."""
    bad = _CONTROL.search(text)
    if bad is not None:
        return (f"{what} '{shown(text)}' holds a control character ({bad.group()!r}); a file "
                "name cannot hold one")
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what} '{shown(text)}' holds a lone surrogate, which no file name can hold"
    if len(encoded) <= MAX_NAME_BYTES:
        return None
    if len(encoded) > MAX_PATH_BYTES:
        return f"{what} is {len(encoded):,} bytes long; paths may have at most {MAX_PATH_BYTES:,}"
    for part in _SEPARATORS.split(text):
        size = len(part.encode("utf-8"))
        if size > MAX_NAME_BYTES:
            return (f"{what} has a name of {size:,} bytes ('{shown(part, 40)}'); file systems "
                    f"allow {MAX_NAME_BYTES} per name")
    return None


def collision_key(relative: str) -> str:
    """Two outputs with the same key are one file somewhere: macOS and Windows ignore
    letter case, and macOS stores names decomposed (NFD)."""
    if relative.isascii():  # NFC leaves ASCII as it is
        return relative.lower()
    return unicodedata.normalize("NFC", relative).casefold()


_DRIVE = re.compile(r"[A-Za-z]:")


def is_absolute(text: str) -> bool:
    """Absolute on any system: `/x`, `\\x` (and UNC `\\\\host\\share`), `C:x`.
    (A regex: PureWindowsPath costs more than the rest of an output's checks.)"""
    return text.startswith(("/", "\\")) or _DRIVE.match(text) is not None


def local_file(manifest_dir: Path, given: str, what: str) -> tuple[Path | None, str | None]:
    """A file a job reads, relative to the manifest: (its real path, None) or (None, why not).

    It must stay inside the manifest's folder (no absolute path, no `..` out, no
    symbolic link out) and be a regular file: a FIFO or a device would hang or
    never end.
    """
    problem = name_problem(given, what)
    if problem:
        return None, problem
    if is_absolute(given):
        return None, (f"{what} '{shown(given)}' is an absolute path; give a path relative to "
                      "the manifest's folder")
    root = os.path.realpath(manifest_dir)
    joined = os.path.join(root, given)
    real = os.path.realpath(joined)
    if real != root and not real.startswith(root + os.sep):
        lexical = os.path.normpath(joined)
        how = "through a symbolic link" if lexical.startswith(root + os.sep) else "with '..'"
        return None, (f"{what} '{shown(given)}' leaves the manifest's folder {how}; keep the "
                      "files a manifest reads beside it or below it")
    try:
        st = os.stat(real)
    except FileNotFoundError:
        return None, f"no such {what}: {shown(given)}"
    except OSError as exc:
        return None, f"cannot read {what} {shown(given)}: {exc.strerror}"
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        return None, f"{what} '{shown(given)}' is {kind}"
    return Path(real), None
