"""Reading YAML manifests safely, fast, and with line numbers for every problem.

`runner.manifest.fastyaml` reads the block-style YAML manifests are made of, about four
times faster than libyaml's events reach Python; it builds exactly what the
builder below would, or declines. Whatever it declines is read here: values
built straight from libyaml's parse events (no PyYAML constructor), which lets
this module:
- accept plain data only: any tag other than the core ones (`!!python/...`,
  local `!tags`) is a problem, never a constructed object;
- resolve scalars by the YAML 1.2 core schema, so `no`, `on` and `yes` stay
  strings (the "Norway problem" of YAML 1.1 does not bite matrix values);
- report duplicate keys, which PyYAML silently overwrites;
- stop an alias bomb early: aliases share one object, and the values that
  aliases add to the document are counted, not built;
- refuse what no later stage could use: numbers that are not finite (`.nan`,
  `.inf`, `1e999`), integers too long to convert, and nesting deeper than any
  manifest needs (later stages walk values recursively);
- record nothing about positions while reading. When a problem needs a line,
  `YamlDocument.locate` reads the text once more with positions tracked (with the
  fast reader where it can): valid manifests, the common case, never pay for that
  index.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runner.errors import ManifestInvalid, Problem, shown
from runner.manifest import fastyaml
from runner.manifest.scalars import SPECIAL, resolve_plain

Loc = tuple[int, int]  # 1-based line and column
DocPath = tuple[str | int, ...]

# Values that aliases add to a document (each alias counts the size of what it
# repeats). A manifest that shares an `input:` by alias in each of 100,000 jobs
# adds ~1,000,000; a billion-laughs document 10**9. Literal values are not
# counted: a 50 MB manifest holds millions and is no bomb.
MAX_ALIASED_VALUES = 2_000_000
# Nesting depth: a manifest needs about 8 levels. Later stages (defaults merging,
# matrix substitution, jsonschema) recurse once or more per level.
MAX_DEPTH = 64

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {f"{_CORE}{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")}


class _Stop(Exception):
    """A problem that makes the rest of the document meaningless."""


class _Found(Exception):
    """A position-tracking pass has recorded every position it was asked for."""


class _Frame:
    """A mapping or list under construction."""

    __slots__ = (
        "anchor",
        "is_map",
        "key",
        "key_marks",
        "merges",
        "pending_merge",
        "size",
        "value",
    )

    def __init__(self, value: dict[str, Any] | list[Any], anchor: str | None) -> None:
        self.value = value
        self.is_map = isinstance(value, dict)
        self.anchor = anchor
        self.size = 1
        self.key: str | None = None  # mappings: the key waiting for its value
        self.pending_merge = False
        self.merges: list[tuple[Any, Loc]] = []
        self.key_marks: dict[str, Any] = {}


def _loc(event: Any) -> Loc:
    """1-based position of an event (libyaml's events always carry a start mark)."""
    return (event.start_mark.line + 1, event.start_mark.column + 1)


class _Builder:
    """Turns a parse event stream into plain values, collecting problems."""

    def __init__(self, display: str, *, track: bool, only: set[DocPath] | None = None,
                 only_keys: set[DocPath] | None = None, targets: int = 0,
                 max_items: int | None = None) -> None:
        self.display = display
        self.track = track
        # With `track`: record the positions of these values and keys only.
        self.only = only
        self.only_keys = only_keys
        self.targets = targets  # stop once this many positions are recorded (0: never)
        self.recorded = 0
        self.max_items = max_items  # the longest list allowed
        self.problems: list[Problem] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.aliased = 0  # values added by aliases (see MAX_ALIASED_VALUES)
        self.positions: dict[DocPath, Loc] = {}
        self.key_positions: dict[DocPath, Loc] = {}

    def problem(self, loc: Loc, message: str, path: str = "$") -> None:
        self.problems.append(Problem(self.display, loc[0], loc[1], path, message))

    def build(self, events: Iterator[Any]) -> Any:
        stack: list[_Frame] = []
        path: list[str | int] = []
        root: Any = None
        documents = 0
        scalar_event, alias_event = yaml.ScalarEvent, yaml.AliasEvent
        end_events = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
        for event in events:
            cls = type(event)
            parent = stack[-1] if stack else None
            if cls is scalar_event or cls is alias_event \
                    or cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                if parent is not None and parent.is_map and parent.key is None \
                        and not parent.pending_merge:
                    self._take_key(parent, event, path)
                    continue
                if cls is scalar_event and event.tag is None and not event.anchor:
                    # The common case, kept short: an untagged, unanchored value.
                    if event.implicit[0] and not event.style:
                        try:
                            value = resolve_plain(event.value)
                        except ValueError:
                            value = self._plain(event, path)  # reports it
                        if value.__class__ is float and value - value != 0.0:  # NaN, inf
                            self._non_finite(event, path)
                    else:
                        value = event.value
                    root = self._place(stack, path, value, 1, event)
                    continue
                root = self._value_event(event, stack, path, root)
            elif cls in end_events:
                frame = stack.pop()
                if frame.is_map:
                    self._apply_merges(frame)
                else:
                    path.pop()  # the index slot pushed at SequenceStart
                if frame.anchor:
                    self.anchors[frame.anchor] = (frame.value, frame.size)
                root = self._place(stack, path, frame.value, frame.size, None)
            elif cls is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    self.problem(_loc(event), "a second YAML document ('---'): a manifest is "
                                              "one document")
                    raise _Stop
        return root

    def _check_length(self, parent: _Frame, event: yaml.Event, path: list[str | int]) -> None:
        if self.max_items is not None and len(parent.value) >= self.max_items:
            self.problem(_loc(event), _too_many(self.max_items), _render(path))
            raise _Stop

    def _record(self, table: dict[DocPath, Loc], at: DocPath, event: yaml.Event) -> None:
        wanted = self.only_keys if table is self.key_positions else self.only
        if wanted is None or at in wanted:
            table[at] = _loc(event)
            self.recorded += 1
            if self.recorded == self.targets:
                raise _Found

    def _plain(self, event: yaml.ScalarEvent, path: list[str | int]) -> Any:
        """An untagged plain scalar's value; a number no later stage could use is a problem."""
        try:
            value = resolve_plain(event.value)
        except ValueError:  # more digits than int() converts (sys.get_int_max_str_digits)
            self.problem(_loc(event), _long_number(event.value), _render(path))
            return None
        if value.__class__ is float and not math.isfinite(value):
            self._non_finite(event, path)
        return value

    def _non_finite(self, event: yaml.ScalarEvent, path: list[str | int]) -> None:
        self.problem(_loc(event), _non_finite(event.value), _render(path))

    def _value_event(self, event: Any, stack: list[_Frame], path: list[str | int],
                     root: Any) -> Any:
        """Aliases, tagged or anchored scalars, and the start of mappings and lists."""
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors:
                self.problem(_loc(event), f"alias *{_short(str(event.anchor))} refers to no "
                             "complete anchor (undefined, or recursive)")
                raise _Stop
            value, size = self.anchors[event.anchor]
            self.aliased += size
            if self.aliased > MAX_ALIASED_VALUES:
                self.problem(_loc(event), f"aliases add more than {MAX_ALIASED_VALUES:,} values "
                             "to this document (an alias bomb?)")
                raise _Stop
            return self._place(stack, path, value, size, event)
        tag = event.tag
        if tag is not None and tag != "!" and tag not in _ALLOWED_TAGS:
            self.problem(_loc(event), f"tag {_short(tag.replace(_CORE, '!!'))} is not allowed: "
                                      "a manifest "
                                      "holds plain data (strings, numbers, lists, mappings)",
                         _render(path))
            raise _Stop
        anchor = event.anchor
        if isinstance(event, yaml.ScalarEvent):
            if tag is not None and tag != "!":
                value = self._tagged(tag, event.value, _loc(event), path)
                if value.__class__ is float and not math.isfinite(value):
                    self._non_finite(event, path)
            elif event.implicit[0] and not event.style:
                value = self._plain(event, path)
            else:
                value = event.value
            if anchor:
                self.anchors[anchor] = (value, 1)
            return self._place(stack, path, value, 1, event)
        if stack and not stack[-1].is_map:
            self._check_length(stack[-1], event, path)
        if len(stack) >= MAX_DEPTH:
            self.problem(_loc(event), f"nesting deeper than {MAX_DEPTH} levels: a manifest "
                         "needs far fewer", _render(path))
            raise _Stop
        if self.track:
            self._record(self.positions, tuple(path), event)
        if isinstance(event, yaml.MappingStartEvent):
            stack.append(_Frame({}, anchor))
        else:
            stack.append(_Frame([], anchor))
            path.append(0)
        return root

    def _take_key(self, parent: _Frame, event: yaml.Event, path: list[str | int]) -> None:
        if not isinstance(event, yaml.ScalarEvent):
            self.problem(_loc(event), "a mapping key must be a plain string, not a list or "
                                      "mapping", _render(path))
            raise _Stop
        key = event.value
        if key == "<<" and event.implicit[0]:
            parent.pending_merge = True
            return
        if key in parent.key_marks:
            self.problem(_loc(event), _duplicate_key(key, parent.key_marks[key].line + 1),
                         _render([*path, key]))
        parent.key_marks[key] = event.start_mark
        parent.key = key
        path.append(key)
        if self.track:
            self._record(self.key_positions, tuple(path), event)

    def _place(self, stack: list[_Frame], path: list[str | int], value: Any, size: int,
               event: yaml.Event | None) -> Any:
        """Attach a finished value to its parent; `event` is None for containers,
        whose position was recorded when they started."""
        if not stack:
            return value
        parent = stack[-1]
        parent.size += size
        if not parent.is_map:
            items = parent.value
            assert isinstance(items, list)
            if event is not None:  # a container was checked when it started
                self._check_length(parent, event, path)
            if self.track and event is not None:
                self._record(self.positions, (*path[:-1], len(items)), event)
            items.append(value)
            path[-1] = len(items)
            return None
        if parent.pending_merge:
            parent.pending_merge = False
            parent.merges.append((value, _loc(event) if event else (1, 1)))
            return None
        if self.track and event is not None:
            self._record(self.positions, tuple(path), event)
        assert parent.key is not None
        parent.value[parent.key] = value  # type: ignore[call-overload]
        parent.key = None
        path.pop()
        return None

    def _apply_merges(self, frame: _Frame) -> None:
        assert isinstance(frame.value, dict)
        for source, loc in frame.merges:
            sources = source if isinstance(source, list) else [source]
            for item in sources:
                if not isinstance(item, dict):
                    self.problem(loc, _BAD_MERGE)
                    continue
                for key, value in item.items():
                    frame.value.setdefault(key, value)

    def _tagged(self, tag: str, text: str, loc: Loc, path: list[str | int]) -> Any:
        name = tag[len(_CORE):]
        try:
            if name == "str":
                return text
            if name == "int":
                return int(text, 0)
            if name == "float":
                special = SPECIAL.get(text)
                return special if isinstance(special, float) else float(text)
            if name == "bool":
                return {"true": True, "false": False}[text.lower()]
            if name == "null":
                return None
        except (ValueError, KeyError):
            pass
        self.problem(loc, f"'{_short(text)}' is not a valid !!{name}", _render(path))
        return text


# The builder's words for what it finds while building (the fast reader finds the same).
_BAD_MERGE = "a merge key '<<' takes a mapping or a list of mappings"


def _too_many(max_items: int) -> str:
    return (f"a list of more than {max_items:,} items: more than the jobs a manifest may "
            "make (RUNNER_MAX_JOBS)")


def _long_number(text: str) -> str:
    return f"a number of {len(text):,} digits is too long to be a value"


def _non_finite(text: str) -> str:
    return f"{_short(text)} is not a finite number: NaN and infinities are not values any " \
        "model accepts"


def _duplicate_key(key: str, first_line: int) -> str:
    return f"duplicate key '{_short(key)}' (first defined at line {first_line})"


def _worded(display: str, found: tuple[Any, ...], max_items: int | None) -> Problem:
    """A problem the fast reader found, in the builder's words."""
    kind, (line, column) = found[0], found[1]
    if kind == fastyaml.BAD_MERGE:
        return Problem(display, line, column, "$", _BAD_MERGE)
    path = _render(found[2])
    if kind == fastyaml.TOO_MANY:
        assert max_items is not None
        message = _too_many(max_items)
    elif kind == fastyaml.NON_FINITE:
        message = _non_finite(found[3])
    elif kind == fastyaml.LONG_NUMBER:
        message = _long_number(found[3])
    else:
        message = _duplicate_key(found[3], found[4])
    return Problem(display, line, column, path, message)


def _short(text: str, limit: int = 40) -> str:
    """A user's text inside a message: one line, and short (a key may be megabytes)."""
    return shown(text, limit)



_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _render(path: list[str | int] | DocPath) -> str:
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _NAME.match(part):
            out += f".{part}"
        else:
            out += f"['{shown(part, 60)}']"
    if len(out) > 160:  # deep nesting: the start and the end say where
        out = out[:100] + "..." + out[-50:]
    return out


render_path = _render


@dataclass(frozen=True, slots=True)
class PendingProblem(Problem):
    """A problem whose line is found later, with every other problem's, in one pass
    over the text (`YamlDocument.place`): a large manifest is parsed twice at most."""

    at: DocPath = field(default=(), compare=False)
    at_key: bool = field(default=False, compare=False)


@dataclass
class YamlDocument:
    """A parsed manifest: its data, and the way back from a data path to a line."""

    display: str
    text: str
    data: Any

    def problem(self, path: DocPath, message: str, *, key: bool = False,
                job_id: str | None = None) -> Problem:
        """A problem at the value at `path` (at its key with `key=True`); its line and
        column are filled by `place`."""
        return PendingProblem(self.display, 0, 0, _render(path), message, job_id, path, key)

    def place(self, problems: list[Problem]) -> list[Problem]:
        """`problems` with the lines and columns of the pending ones, found in one pass."""
        pending = [p for p in problems if isinstance(p, PendingProblem)]
        if not pending:
            return problems
        found = self.locate_all([(p.at, p.at_key) for p in pending])
        placed: list[Problem] = []
        for p in problems:
            if isinstance(p, PendingProblem):
                line, column = found[(p.at, p.at_key)]
                p = Problem(p.file, line, column, p.path, p.message, p.job_id)
            placed.append(p)
        return placed

    def locate(self, path: DocPath, *, key: bool = False) -> Loc:
        """Line and column of the value at `path` (of its key with `key=True`)."""
        return self.locate_all([(path, key)])[(path, key)]

    def locate_all(self, wanted: list[tuple[DocPath, bool]]) -> dict[tuple[DocPath, bool], Loc]:
        """Line and column of each value (or key) asked for, in one parse that records
        only those. A path that does not exist in the source (a missing key) resolves to
        its nearest existing ancestor, which is where the fix goes."""
        prefixes = {path[:end] for path, _ in wanted for end in range(len(path) + 1)}
        # Every prefix is recorded once (and each key asked for): then the pass can stop.
        keys = {path for path, key in wanted if key}
        positions: dict[DocPath, Loc]
        key_positions: dict[DocPath, Loc]
        try:
            found = fastyaml.locate(self.text, prefixes, keys)
            positions, key_positions = found.positions, found.key_positions
        except fastyaml.Declined:
            builder = _Builder(self.display, track=True, only=prefixes, only_keys=keys,
                               targets=len(prefixes) + len(keys))
            with contextlib.suppress(_Found):
                builder.build(yaml.parse(self.text, Loader=_loader()))
            positions, key_positions = builder.positions, builder.key_positions
        out: dict[tuple[DocPath, bool], Loc] = {}
        for path, key in wanted:
            loc = key_positions.get(path) if key else None
            for end in range(len(path), -1, -1):
                if loc is not None:
                    break
                loc = positions.get(path[:end])
            out[(path, key)] = loc or (1, 1)
        return out


def _loader() -> Any:
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str, display: str, max_items: int | None = None) -> YamlDocument:
    """Parse manifest text; raises `ManifestInvalid` for anything that is not plain YAML data.

    `max_items`: no list may be longer (no list of a manifest holds more than the jobs
    it may make), so a file of too many jobs is refused before it is all in memory."""
    try:
        found = fastyaml.read(text, max_items, MAX_ALIASED_VALUES)
    except fastyaml.Declined:
        pass  # YAML the fast reader leaves to libyaml
    else:
        if found.problems:
            raise ManifestInvalid([_worded(display, p, max_items) for p in found.problems])
        return YamlDocument(display, text, found.data)
    builder = _Builder(display, track=False, max_items=max_items)
    try:
        data = builder.build(yaml.parse(text, Loader=_loader()))
    except _Stop:
        raise ManifestInvalid(builder.problems) from None
    except yaml.MarkedYAMLError as exc:
        raise ManifestInvalid([_syntax_problem(exc, text, display)]) from exc
    except yaml.reader.ReaderError as exc:  # not a MarkedYAMLError: it has no mark
        raise ManifestInvalid([_character_problem(exc, text, display)]) from exc
    if builder.problems:
        raise ManifestInvalid(builder.problems)
    return YamlDocument(display, text, data)


def _character_problem(exc: yaml.reader.ReaderError, text: str, display: str) -> Problem:
    """A character YAML allows nowhere in a file (NUL and the other control characters,
    U+FFFE, U+FFFF), at its line and column. libyaml's position counts UTF-8 bytes, the
    pure-Python reader's characters; both read in order, so the first occurrence of the
    character is the one refused."""
    character = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
    at = text.find(character)
    if at < 0:
        line, column = 1, 1
    else:
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
    code = ord(character)
    what = "a control character" if code < 0x20 or 0x7F <= code <= 0x9F else "a non-character"
    escape = f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return Problem(display, line, column, "$",
                   f"{what} (U+{code:04X}), which YAML does not allow in a file; remove it, or "
                   f"write it as the escape \"{escape}\" inside a double-quoted string")


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, display: str) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    lines = text.splitlines()
    offending = lines[line - 1][column - 1:column] if 0 < line <= len(lines) else ""
    if offending == "\t" or (exc.problem and "\\t" in exc.problem):
        message = "a tab character: YAML indentation must use spaces"
    elif exc.problem and "maximum nesting depth" in exc.problem:  # libyaml's own limit
        message = "nesting deeper than YAML allows (1,000 levels): a manifest needs far fewer"
    else:
        context = exc.context or ""
        if context and exc.context_mark is not None and exc.context_mark is not mark:
            context += f" started at line {exc.context_mark.line + 1}"
        message = "YAML syntax error: " + ": ".join(p for p in (context, exc.problem) if p)
    return Problem(display, line, column, "$", message)


def read_manifest_text(path: Path, display: str) -> str:
    """The text of a manifest file; a file that is not UTF-8 is a located problem."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ManifestInvalid([Problem(display, 1, 1, "$", "no such file")]) from None
    except OSError as exc:
        raise ManifestInvalid([Problem(display, 1, 1, "$", f"cannot read: {exc.strerror}")]) \
            from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[:exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ManifestInvalid([Problem(
            display, line, column, "$",
            f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded; save the file as UTF-8",
        )]) from None


def load_yaml(path: Path, display: str | None = None,
              max_items: int | None = None) -> YamlDocument:
    display = display if display is not None else str(path)
    return parse_yaml(read_manifest_text(path, display), display, max_items)
