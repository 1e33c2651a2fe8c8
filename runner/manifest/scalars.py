"""Plain scalars under the YAML 1.2 core schema, shared by both manifest readers.

`yaml_source` (over libyaml's events) and `fastyaml` (over the text) must give a
plain scalar the same value, so both call `resolve_plain`. The core schema, not
PyYAML's YAML 1.1 resolver: `no`, `on` and `yes` stay strings (the "Norway
problem" does not bite matrix values), `017` is the integer 17, `1_000` a string.
"""

from __future__ import annotations

import re
from typing import Any

_INT = re.compile(r"[-+]?[0-9]+\Z")
_INT_OCT = re.compile(r"0o[0-7]+\Z")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
# The words the core schema gives a value other than a string.
SPECIAL: dict[str, Any] = {
    "~": None, "null": None, "Null": None, "NULL": None, "": None,
    "true": True, "True": True, "TRUE": True,
    "false": False, "False": False, "FALSE": False,
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}


def resolve_plain(text: str) -> Any:
    """The value of an untagged plain scalar under the YAML 1.2 core schema. Raises
    ValueError for an integer of more digits than `int()` converts."""
    if text in SPECIAL:
        return SPECIAL[text]
    first = text[0]
    if first.isdigit() or first in "+-.":
        if text.isascii() and first != ".":  # the common numbers, without a regex
            if text.isdigit():
                return int(text)
            if text.replace(".", "", 1).isdigit():
                return float(text)
        if _INT.match(text):
            return int(text)
        if _FLOAT.match(text):
            return float(text)
        if _INT_HEX.match(text):
            return int(text, 16)
        if _INT_OCT.match(text):
            return int(text, 0)  # "0o17": the pattern allows nothing else
    return text
