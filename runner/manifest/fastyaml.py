"""A fast reader for the YAML manifests are written in: libyaml's values, or nothing.

PyYAML hands Python one object per libyaml parse event, with two position
marks each: 1.3 s for a 50 MB manifest before a single value is built, 2.6 s
with the building. This reader builds the same values from the text itself,
line by line with `str` methods, for the YAML that manifests are made of:
block mappings and lists, plain scalars (on one line or going on over several,
as PyYAML's dump writes long texts), quoted one-line scalars, one-line flow
collections, literal and folded block scalars, anchors, aliases and `<<`
merges, comments, a leading `---`. The jobs of a large manifest are alike: once
one has been read line by line, the next ones with the same keys at the same
columns are read an item at a time (`_Shape`).

It is exact or it declines. Whatever it is not certain libyaml reads the same
way (a tag, a tab outside a comment, a multi-line flow or quoted scalar, a line
of a plain scalar that is not plain text, an odd indentation, a second document,
a character libyaml refuses, ...) raises `Declined`, and `yaml_source` parses the text with
libyaml as before: every syntax error and every message is libyaml's and the
builder's. What it accepts, it builds as `yaml_source._Builder` would (same
values, same objects shared by aliases, same merges), and it reports the
problems the builder would report while building (a non-finite number, an
integer too long, a duplicate key, a merge of a non-mapping, a list over the
cap) at the positions libyaml gives: the start of the node, the end of the
`:` or `-` for an empty value. The differential tests in
tests/manifest/test_fastyaml.py hold it to that.

Positions are not recorded while reading. `locate` reads again and records
only the nodes asked for, as `yaml_source.YamlDocument.locate_all` does with
libyaml.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from runner.manifest.scalars import resolve_plain

Loc = tuple[int, int]  # 1-based line and column, as libyaml's marks + 1
DocPath = tuple[str | int, ...]

# Problem kinds reported to yaml_source, which words them as the builder does.
NON_FINITE = "non_finite"  # (kind, loc, path, scalar text)
LONG_NUMBER = "long_number"  # (kind, loc, path, scalar text)
DUPLICATE_KEY = "duplicate_key"  # (kind, loc, path with the key, key, line of the previous)
BAD_MERGE = "bad_merge"  # (kind, loc)
TOO_MANY = "too_many"  # (kind, loc, path): a list over max_items; reading stops there
RawProblem = tuple[Any, ...]

# The deepest nesting this reader follows; deeper, libyaml and the builder decide
# (the builder refuses 64 levels).
MAX_DEPTH = 48
# After a list over the cap, the builder stops; libyaml has read a little further
# by then (a token that may be a key is held until the next one is scanned, and
# a plain scalar's scan reaches the start of the line after it). This reader
# reads this many lines with text past it, so that whatever libyaml may have
# refused there is declined.
LOOKAHEAD_LINES = 3
# A plain key longer than this is left to libyaml (a simple key may not span more
# than 1,024 characters there).
MAX_KEY_CHARS = 1000


class Declined(Exception):
    """The text has YAML this reader leaves to libyaml."""


# Characters libyaml reads as plain text. Carriage returns, other line breaks (NEL,
# LS, PS), a byte-order mark inside the text and control characters are declined
# (libyaml refuses some and reads others in ways not mirrored here). A tab is read
# in a comment line only, and declined anywhere else (see _line): an editor's tab in
# a comment of a large manifest would otherwise send it all to libyaml.
_ASCII_TEXT = bytes(range(0x20, 0x7F)) + b"\t\n"
# Characters libyaml refuses or reads its own way (the complement of what this reader
# takes: a class of a few ranges compiles in a fraction of a millisecond).
_OTHER = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
_ANCHOR = re.compile(r"[0-9A-Za-z_-]+")
_HEX = re.compile(r"[0-9A-Fa-f]+\Z")
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
    "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}
# A plain scalar may not start with these (libyaml's indicators); '-' may when a
# non-space follows. '?' and ':' may too in block context: declined here.
_NOT_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_END = frozenset(",[]{}")
_UNSET: Any = object()
# The lines most manifests are made of (see _Reader._lines): maybe a dash, a simple
# key, and a value that does not start with a space, or nothing (a block follows:
# `input:`, then its keys one level in); the value too when it is short
# and ends the line (a possessive repeat: a longer one is given up after 200
# characters, without stepping back through them). A long value is found with str
# methods, which run at memory speed where a regular expression steps through every
# character; a short one costs less in the match than in the calls that find it.
_COMMON_LINE = re.compile(r"( *)(- +)?([A-Za-z_][A-Za-z0-9_]{0,99}):"
                          r"(?:( +)(?=[^ \n])(?:([^\n]{1,200}+)\n)?|\n)")
_COMMON_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./")
# A pair of a flat flow mapping (see _Reader._flat_map): a simple key; a quoted value
# without a quote inside (nor a backslash, if double-quoted), or a plain one without
# ':', '#', quotes or flow indicators.
_FLAT_PAIR = (r"([A-Za-z_][A-Za-z0-9_]{0,99}): +(?:'([^'\n]*+)'|\"([^\"\\\n]*+)\""
              r"|([A-Za-z0-9_./][^,\[\]{}#'\":\n]*+))")


@functools.cache
def _flat_pattern(pairs: int) -> re.Pattern[str]:
    """A flat flow mapping of `pairs` pairs, with the spaces and the trailing comma
    YAML allows."""
    return re.compile(r"\{ *" + r" *, *".join([_FLAT_PAIR] * pairs) + r" *(?:, *)?\} *")


# A line of an item the common lines read (see _Shape): its indentation, maybe a dash,
# a simple key, and a value or nothing (a mapping one level in follows).
_SHAPE_LINE = re.compile(r"( *)(- +)?([A-Za-z_][A-Za-z0-9_]{0,99}):( +[^ \n][^\n]*)?\n")
# Shapes a reader keeps (the most recent first), and the items it tries to learn one
# from at most, per document: a list whose items all differ, or that no shape reads,
# costs a few attempts, not one per item.
KEPT_SHAPES = 8
MAX_SHAPE_TRIALS = 64
Spec = tuple[tuple[str, "int | Spec"], ...]  # per key: its value's index, or a mapping's spec


class _Shape:
    """The lines of a list item that the common lines read (`- id: ...`, `model: ...`,
    `input:` and its keys one level in) as one pattern, which matches a whole later
    item with the same keys at the same columns, and with nothing else before the
    next item (blank lines aside). A large manifest's jobs are alike: one match per
    job costs less than one per line and a frame per mapping. Each value the pattern
    captures is read as the common line would read it (`_Reader._inline`); where one
    is not, the item is left to the lines."""

    __slots__ = ("build", "depth", "entries", "flows", "folds", "match")

    def __init__(self, pattern: str, spec: Spec, depth: int, entries: int,
                 flows: tuple[_FlowShape | None, ...], folds: bool) -> None:
        self.match = re.compile(pattern).match
        self.folds = folds  # a value may go on over the lines below (see _going_on)
        # The item from its values, as one expression: `lambda v: {'id': v[0], 'input':
        # {'text': v[1]}}` builds it three times faster than a walk over `spec`. The
        # keys are simple ones (_SHAPE_LINE), written with repr.
        self.build: Callable[[list[Any]], dict[str, Any]] = \
            eval("lambda v: " + _display(spec))
        self.flows = flows  # per value: the shape of the flat flow mapping it was
        self.depth = depth  # the mappings an item opens, one inside the other
        self.entries = entries  # keys in all (what _close counts for the item's size)


def _display(spec: Spec) -> str:
    """The dict display that builds an item of shape `spec` from its values `v`."""
    return "{" + ", ".join(f"{key!r}: " + (f"v[{slot}]" if isinstance(slot, int)
                                            else _display(slot)) for key, slot in spec) + "}"


# What a plain value inside a flat flow mapping may not hold (_flat_pairs, _FlowShape).
_FLOW_PLAIN_BREAKS = frozenset(",[]{}#'\":\t")
_SINGLE, _DOUBLE, _PLAIN = 2, 3, 4  # a value's group in a pair of _flat_pattern


class _FlowShape:
    """A flat flow mapping (see _Reader._flat_map) as the text around its values,
    `{voice: ` · `, text: '` · `'}`, and the kind of each value. A later mapping made
    of the same pieces is cut at them with str methods: a pattern steps through a
    long quoted text a character at a time, `find` runs at memory speed. Each value
    holds none of the characters that could end it early (a quote, a comma, a
    bracket...), so the cut is the only reading there is."""

    __slots__ = ("keys", "kinds", "pieces")

    def __init__(self, keys: tuple[str, ...], kinds: tuple[int, ...],
                 pieces: tuple[str, ...]) -> None:
        self.keys = keys
        self.kinds = kinds
        self.pieces = pieces  # one more than the values

    def read(self, text: str, plain_value: Callable[[str], Any]) -> dict[str, Any] | None:
        """The mapping `text` (without trailing spaces) holds; None where it is not
        made of the same pieces, or a value is not one of the same kind."""
        pieces = self.pieces
        if not text.startswith(pieces[0]) or not text.endswith(pieces[-1]):
            return None
        out: dict[str, Any] = {}
        start = len(pieces[0])
        last = len(self.kinds) - 1
        for n, kind in enumerate(self.kinds):
            after = pieces[n + 1]
            end = len(text) - len(after) if n == last else text.find(after, start)
            if end < start:
                return None
            value: Any = text[start:end]
            if kind == _SINGLE:
                if "'" in value or "\t" in value:
                    return None
            elif kind == _DOUBLE:
                if '"' in value or "\\" in value or "\t" in value:
                    return None
            elif not value or value[0] not in _COMMON_START or value[-1] == " " \
                    or not _FLOW_PLAIN_BREAKS.isdisjoint(value):
                return None
            elif value[0] not in _STRING_START:
                value = plain_value(value)
                if value is _UNSET:
                    return None
            out[self.keys[n]] = value
            start = end + len(after)
        return out


def _flow_shape_of(text: str) -> _FlowShape | None:
    """The shape of the flat flow mapping `text` (one _flat_map has read)."""
    pairs = text.count(": ")
    match = _flat_pattern(pairs).fullmatch(text) if 0 < pairs <= 8 else None
    if match is None:
        return None
    keys, kinds, pieces = [], [], []
    last = 0
    for first in range(1, 4 * pairs, 4):
        kind = next(k for k in (_SINGLE, _DOUBLE, _PLAIN) if match.start(first + k - 1) >= 0)
        start, end = match.span(first + kind - 1)
        if kind == _PLAIN and text[end - 1] == " ":
            return None  # spaces before the comma: _flat_map strips them, this would not
        keys.append(match.group(first))
        kinds.append(kind)
        pieces.append(text[last:start])
        last = end
    pieces.append(text[last:])
    return _FlowShape(tuple(keys), tuple(kinds), tuple(pieces))


def _shape_of(span: str, list_col: int) -> _Shape | None:
    """The shape of the item that `span` (whole lines) holds, if it is one item of the
    list at `list_col` made of lines of _SHAPE_LINE's kind."""
    parts: list[str] = []
    root: list[Any] = []
    open_maps: list[tuple[int, list[Any]]] = []  # column of its keys, its entries
    waiting: list[Any] | None = None  # a `key:` alone: its mapping's entries
    flows: list[_FlowShape | None] = []
    folds = False
    values = depth = pos = 0
    while pos < len(span):
        match = _SHAPE_LINE.match(span, pos)
        if match is None:
            return None
        pos = match.end()
        lead, dash, key, value = match.groups()
        indent = len(lead)
        if not open_maps:
            if dash is None or indent != list_col:
                return None
            open_maps.append((indent + len(dash), root))
        elif dash is not None:
            return None
        elif waiting is not None:
            if indent <= open_maps[-1][0]:
                return None
            open_maps.append((indent, waiting))
            waiting = None
        else:
            while open_maps and open_maps[-1][0] > indent:
                open_maps.pop()
            if not open_maps or open_maps[-1][0] != indent:
                return None
        depth = max(depth, len(open_maps))
        entries = open_maps[-1][1]
        if any(known == key for known, _ in entries):
            return None
        head = re.escape(lead + (dash or "") + key + ":")
        if value is None:
            waiting = []
            entries.append((key, waiting))
            parts.append(head + "\n")
        else:
            entries.append((key, values))
            values += 1
            # The value (`.` runs faster than [^\n]), and where the item's went on over
            # the lines below, theirs (a pattern for them costs at every value).
            going_on = _going_on(open_maps[-1][0])
            found = going_on.match(span, pos - 1)
            if found is not None and found.group():
                pos += len(found.group())
                folds = True
                parts.append(head + " +([^ \n].*" + going_on.pattern + ")\n")
            else:
                parts.append(head + " +([^ \n].*)\n")
            item = value.strip(" ")
            flows.append(_flow_shape_of(item) if item[0] == "{" else None)
    if not open_maps or waiting is not None:
        return None
    # Then blank lines, and the next item's dash or the end of the text.
    parts.append(f"((?: *\n)*)(?= {{{list_col}}}- |\\Z)")
    return _Shape("".join(parts), _frozen(root), depth, len(parts) - 1, tuple(flows), folds)


def _frozen(entries: list[Any]) -> Spec:
    return tuple((key, slot if isinstance(slot, int) else _frozen(slot))
                 for key, slot in entries)


@functools.cache
def _going_on(col: int) -> re.Pattern[str]:
    """From the break that ends a plain scalar's first line: the lines that go on with
    it in a block at `col`, each indented past `col` and not a comment, maybe after
    empty lines (see _Reader._folded)."""
    return re.compile(rf"(?:\n(?: *\n)* {{{col + 1}}}(?! *#).*)*")


def _fold(first: str, block: str) -> str | None:
    """The plain scalar of `first` (its first line, without trailing spaces) and `block`
    (the lines that go on with it, each after its line break: see _going_on), folded
    as libyaml folds it: one line break is a space, n + 1 of them are n line breaks.
    None: a line of it is not plain text (`key: `, a comment after text, a tab)."""
    if "\t" in block or ": " in block or ":\n" in block or " #" in block or block[-1] == ":":
        return None
    texts = [line.strip(" ") for line in block[1:].split("\n")]
    if "" not in texts:
        return first + " " + " ".join(texts)
    parts, empty = [first], 0  # empty lines between: each is a line break
    for text in texts:
        if not text:
            empty += 1
            continue
        parts += ["\n" * empty if empty else " ", text]
        empty = 0
    return "".join(parts)


# Plain values that start so are strings under the core schema whatever follows
# (true, false, null and the numbers start otherwise).
_STRING_START = frozenset("abcdeghijklmopqrsuvwxyzABCDEGHIJKLMOPQRSUVWXYZ_/")


def usable(text: str) -> bool:
    """Whether every character of `text` is one this reader handles (a cheap pass:
    bytes.translate runs at memory speed, a regular expression does not)."""
    if text.isascii():
        return not text.encode("ascii").translate(None, _ASCII_TEXT)
    return _OTHER.search(text) is None


class _Frame:
    """An open block mapping or list. What most frames keep all their life is a class
    default, set on the frame only when it changes: a large manifest opens one frame
    per job, and each attribute set costs."""

    extra = 0  # what its size has beyond one per entry (see _close)
    key: str | None = None  # mappings: the key whose value comes next
    merge_next = False  # the value that comes next is a `<<` merge source
    merges: list[tuple[Any, Loc]] | None = None
    pend = False  # a key or dash without a value on its line: a block may follow
    pend_loc: Loc = (0, 0)  # where the empty value is if none follows
    pend_anchor: tuple[str, Loc] | None = None
    indentless = False  # a list at its parent key's column (`key:\n- a`)
    hot = False  # locate: this node's path is asked for (or leads to one)
    path: DocPath = ()

    def __init__(self, is_map: bool, col: int, loc: Loc, anchor: str | None,
                 slot: str | int | None) -> None:
        self.is_map = is_map
        self.col = col  # column (0-based) of its keys or dashes
        self.value: Any = {} if is_map else []
        self.loc = loc
        self.anchor = anchor
        self.slot = slot  # its key or index in the parent (None: the root)
        self.key_lines: dict[str, int] | None = {} if is_map else None


class Result:
    """What `read` found: the data, and the problems the builder would report."""

    __slots__ = ("data", "key_positions", "positions", "problems", "stopped")

    def __init__(self) -> None:
        self.data: Any = None
        self.problems: list[RawProblem] = []
        self.stopped = False  # a TOO_MANY problem ended the reading
        self.positions: dict[DocPath, Loc] = {}
        self.key_positions: dict[DocPath, Loc] = {}


def read(text: str, max_items: int | None = None, max_aliased: int = 2_000_000) -> Result:
    """The document's data and problems; raises `Declined` for YAML left to libyaml."""
    reader = _Reader(text, max_items, max_aliased)
    reader.run()
    return reader.result


def locate(text: str, values: set[DocPath], keys: set[DocPath]) -> Result:
    """Read again, recording the positions of the values at `values` (a set closed
    under prefixes) and of the keys at `keys`; stops once all are found."""
    reader = _Reader(text, None, 2_000_000, values, keys)
    reader.run()
    return reader.result


class _Stop(Exception):
    pass


class _Reader:
    def __init__(self, text: str, max_items: int | None, max_aliased: int,
                 want: set[DocPath] | None = None, want_keys: set[DocPath] | None = None
                 ) -> None:
        self.resolve: Callable[[str], Any] = resolve_plain
        self.known: dict[str, Any] = {}  # see _plain_value
        if "\r" in text:
            text = text.replace("\r\n", "\n")  # a break either way; columns are unchanged
        if "\r" in text or not usable(text):
            raise Declined
        self.text = text
        self.max_items = max_items
        self.max_aliased = max_aliased
        self.result = Result()
        self.problems = self.result.problems
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.aliased = 0
        self.stack: list[_Frame] = []
        self.root: Any = _UNSET
        self.lineno = 0
        self.pos = 0
        self.track = want is not None
        self.want = want or set()
        self.want_keys = want_keys or set()
        self.targets = len(self.want) + len(self.want_keys)
        self.recorded = 0
        self.root_hot = () in self.want
        self.window = -1  # lines with text still to read past a list over the cap
        self.started = False  # a line with text (or `---`) has been read
        self.kept = 0  # the problems up to the list over the cap
        self.shapes: list[_Shape] = []  # see _Shape; the last one used first
        self.tried = 0  # items a shape was sought in
        self.shaped = 0  # items read by their shape

    # The main loop ------------------------------------------------------------

    def run(self) -> None:
        try:
            self._lines()
            while self.stack:
                self._close()
        except _Stop:
            pass
        if self.result.stopped:
            del self.problems[self.kept:]  # the builder stopped there
            return
        self.result.data = None if self.root is _UNSET else self.root

    def _lines(self) -> None:
        """Every line: the most common ones read right here, in as few steps as Python
        allows; the others by `_line`, which decides everything.

        The common lines (see _COMMON_LINE) are `key: value` in the innermost mapping,
        and `- key: value` starting the next item of the list that holds it, with a
        scalar or flat flow-mapping value on the line; or `key:` alone, whose value is
        the mapping that the next common line, one level in, starts (`input:` and its
        keys below it). They are taken only when the frames are plain (no merge, no
        anchor) and the value is one `_value` would read the same way; otherwise
        nothing is changed and `_line` reads the line (closing frames first, as `_line`
        would anyway). `current` is the innermost frame when it is such a mapping.

        An item of a list that common lines read whole teaches its shape (`_Shape`);
        from the next item on, the items with a known shape are read whole, by one
        pattern each (`_shaped`)."""
        text = self.text
        find = text.find
        size = len(text)
        stack = self.stack
        common = _COMMON_LINE.match
        inline = self._inline
        plain_value = self._plain_value
        max_items = self.max_items
        fast = self.window < 0 and not self.track
        pos = self.pos
        lineno = self.lineno
        current: _Frame | None = None
        col = -1  # current's column, and its values and key lines
        values: Any = None
        lines: Any = None
        value: Any
        item_start = -1  # where the item on top began, if common lines read all of it
        while pos < size:
            if fast:
                if current is None and stack:
                    current = stack[-1]
                    if not current.is_map or current.merge_next \
                            or (current.pend and current.pend_anchor is not None):
                        current = None
                    else:
                        col, values, lines = current.col, current.value, current.key_lines
                match = common(text, pos) if current is not None else None
                if match is not None:
                    assert current is not None  # (a match is only tried with one)
                    indent_text, dash, key, spaces, item = match.groups()
                    indent = len(indent_text)
                    opening = current.pend
                    if opening:
                        # `current` has a key without a value (`input:`): the line can
                        # only be the first key of its mapping, as _open_pending reads it.
                        if indent <= col or dash is not None or len(stack) >= MAX_DEPTH:
                            match = None  # anything else: _line
                            current = None
                    elif indent != col or dash is not None:
                        # Another item of the list that holds `current`, or back out
                        # of `current`: close what the line closes, as _line would
                        # (the next item of the list of jobs, inline: the commonest).
                        parent = stack[-2] if len(stack) > 1 else None
                        if dash is not None and parent is not None and not parent.is_map \
                                and parent.col == indent and current.merges is None \
                                and current.anchor is None:
                            stack.pop()
                            parent.value.append(values)
                            parent.extra += len(values) + current.extra
                            top = parent
                            if (max_items is not None and len(top.value) >= max_items) \
                                    or len(stack) >= MAX_DEPTH:
                                match = None  # _line reports it, or declines
                                current = None
                        elif not self._common_close(indent, dash is not None):
                            current = None
                            match = None
                        else:
                            top = stack[-1]
                            if dash is not None:
                                if (max_items is not None and len(top.value) >= max_items) \
                                        or len(stack) >= MAX_DEPTH:
                                    match = None  # _line reports it, or declines
                            elif top.is_map and top.col == indent and not top.merge_next:
                                current = top
                                col, values, lines = top.col, top.value, top.key_lines
                            else:
                                match = None
                            if match is None:
                                current = None
                    if match is not None and dash is not None and not opening:
                        # The next item of the list on top: the items from here that
                        # have the shape of an earlier one are read whole.
                        if item_start >= 0 and self.tried < MAX_SHAPE_TRIALS:
                            self._learn(text[item_start:pos].rstrip(" \n") + "\n", indent)
                        if self.shapes:
                            pos, read = self._shaped(stack[-1], pos)
                            if read:
                                lineno += read
                                current = None
                                item_start = -1
                                continue
                if match is not None:
                    extra = folded = 0
                    if spaces is None:  # `key:` alone: its value is the block below
                        value = _UNSET
                        end = match.end() - 1
                    else:
                        if item is None:  # a long value, or the last line
                            start = match.end()
                            end = find("\n", start)
                            if end < 0:
                                end = size
                            item = text[start:end]
                        else:
                            end = match.end() - 1  # its line break
                        value = inline(item)
                        if value is _UNSET:
                            match = None  # _value reads it, declines it or reports it
                        elif value.__class__ is dict:
                            extra = len(value)
                        else:
                            # A plain scalar may go on over the lines below, indented past
                            # its key (PyYAML's dump folds long texts so).
                            below = end + 2 + indent + (len(dash) if dash else 0)
                            if below < size and text[below - 1] == " " and item[0] not in "'\"" \
                                    and text.startswith(" " * (below - end - 1), end + 1):
                                raw, after, more = self._folded(item.rstrip(" "), below - end - 2,
                                                                end + 1)
                                value = plain_value(raw)
                                if value is _UNSET:
                                    match = None  # _value reports it
                                else:
                                    end = after - 1
                                    folded = more
                    if match is not None:
                        assert current is not None
                        lineno += 1
                        if opening:  # what _open_pending and _push do for a mapping
                            current.pend = False
                            col = indent
                            current = _Frame(True, col, (lineno, col + 1), None, current.key)
                            stack.append(current)
                            values, lines = current.value, current.key_lines
                        elif dash is not None:
                            top = stack[-1]
                            col = indent + len(dash)
                            item_start = pos
                            current = _Frame(True, col, (lineno, col + 1), None, len(top.value))
                            stack.append(current)
                            values, lines = current.value, current.key_lines
                        if key in lines:
                            lineno -= 1
                            if dash is not None:
                                stack.pop()
                            current = None
                        else:
                            lines[key] = lineno
                            if value is _UNSET:  # as _entry leaves a key without a value
                                current.key = key
                                current.pend = True
                                current.pend_loc = (lineno, col + len(key) + 2)
                                current.pend_anchor = None
                            else:
                                values[key] = value
                                if extra:
                                    current.extra += extra
                            pos = end + 1
                            lineno += folded
                            continue
                    else:
                        current = None
                fast = self.window < 0
            end = find("\n", pos)
            if end < 0:
                end = size
            line = text[pos:end]
            self.pos = end + 1
            self.lineno = lineno + 1
            self._line(line)
            pos = self.pos
            lineno = self.lineno
            current = None
            if line.strip(" "):
                item_start = -1  # (a blank line changes nothing)
            fast = fast and self.window < 0
        self.pos = pos
        self.lineno = lineno

    def _learn(self, span: str, list_col: int) -> None:
        """Keep the shape of the item `span` (read by common lines), if it has one."""
        self.tried += 1
        shape = _shape_of(span, list_col)
        if shape is None or any(known.match == shape.match for known in self.shapes):
            return
        self.shapes.insert(0, shape)
        del self.shapes[KEPT_SHAPES:]

    def _shaped(self, frame: _Frame, pos: int) -> tuple[int, int]:
        """Read the items of the list `frame` from `pos` on while each has a known
        shape; where they end, and how many lines they took."""
        text = self.text
        shapes = self.shapes
        items = frame.value
        inline = self._inline
        plain_value = self._plain_value
        known = self.known  # (every text in it is a whole plain scalar: see _plain_value)
        string_start = _STRING_START
        room = MAX_DEPTH - len(self.stack)
        lines = 0
        shape = shapes[0]
        while self.max_items is None or len(items) < self.max_items:
            match = shape.match(text, pos) if shape.depth <= room else None
            if match is None:
                for other in shapes:
                    if other is not shape and other.depth <= room:
                        match = other.match(text, pos)
                        if match is not None:
                            shape = other
                            break
                if match is None:
                    break
            raw = match.groups()
            values = []
            size = shape.entries
            more = 0  # lines that went on with a value
            folds = shape.folds
            for item, flow in zip(raw, shape.flows):  # (raw's last: blank lines)
                if folds and "\n" in item:  # a plain scalar that goes on over lines below
                    first, _, rest = item.partition("\n")
                    first = first.rstrip(" ")
                    folded = _fold(first, "\n" + rest) \
                        if first[0] not in "'\"{" and inline(first) is not _UNSET else None
                    if folded is None:
                        return pos, lines
                    value = plain_value(folded)
                    if value is _UNSET:
                        return pos, lines
                    values.append(value)
                    more += item.count("\n")
                    continue
                if flow is None and item[0] in string_start and ": " not in item \
                        and " #" not in item and item[-1] not in ": " and "\t" not in item:
                    values.append(item)  # a plain string, as _inline reads it, in fewer steps
                    continue
                value = known.get(item, _UNSET)  # a plain scalar read before (`2.5`, `true`)
                if value is not _UNSET:
                    values.append(value)
                    continue
                value = flow.read(item.rstrip(" "), plain_value) if flow is not None else None
                if value is None:
                    value = inline(item)
                    if value is _UNSET:
                        return pos, lines
                if value.__class__ is dict:
                    size += len(value)
                values.append(value)
            items.append(shape.build(values))
            frame.extra += size
            lines += shape.entries + raw[-1].count("\n") + more
            pos = match.end()
            self.shaped += 1
        if shape is not shapes[0]:
            shapes.remove(shape)
            shapes.insert(0, shape)
        return pos, lines

    def _common_close(self, indent: int, dash: bool) -> bool:
        """Close the frames a common line at `indent` closes (what `_line` does before
        reading it), when they are plain ones. False: none was closed, and the line
        is left to `_line`."""
        stack = self.stack
        top = stack[-1]
        closing = []
        at = len(stack) - 1
        while top.col > indent or (top.col == indent and top.indentless and not dash):
            if at == 0 or top.merges or top.anchor is not None or top.pend:
                return False
            parent = stack[at - 1]
            if parent.is_map and parent.merge_next:
                return False
            closing.append(top)
            at -= 1
            top = parent
        if top.col != indent or dash == top.is_map:
            return False
        for frame in closing:
            # what _close does, for a plain mapping or list
            stack.pop()
            parent = stack[-1]
            value = frame.value
            if parent.is_map:
                parent.value[parent.key] = value
            else:
                parent.value.append(value)
            parent.extra += len(value) + frame.extra
        return True

    def _inline(self, item: str) -> Any:
        """The value of a common line (`item`: the line after `key: `, without its
        break) when `_value` would read it so: a plain or quoted scalar, or a flat flow
        mapping. _UNSET: anything else, left to `_value` (which reads it, declines it
        or reports it)."""
        if "\t" in item:
            return _UNSET  # (_line declines it)
        first = item[0]
        if first in _STRING_START:
            if ": " in item or " #" in item or item[-1] == ":":
                return _UNSET  # _value declines it, or reads a comment
            return item if item[-1] != " " else item.rstrip(" ")
        if first == "'" or first == '"':
            # Quoted, without a doubled quote or an escape: the text itself.
            close = item.find(first, 1)
            if close < 0 or item[close + 1:].strip(" ") \
                    or (first == '"' and "\\" in item[:close]):
                return _UNSET
            return item[1:close]
        if first == "{":
            value = self._flat_map(item)
            return _UNSET if value is None else value
        if first in _COMMON_START:
            if ": " in item or " #" in item or item[-1] == ":":
                return _UNSET
            return self._plain_value(item.rstrip(" "))  # _UNSET: _value reports it
        return _UNSET

    def _flat_map(self, text: str) -> dict[str, Any] | None:
        """A flow mapping of simple keys and plain or quoted values that fills `text`:
        `{text: 'Steps on gravel', duration_seconds: 2.5}`. A short one is matched
        whole by one pattern; a long one (a quoted text of hundreds of characters, which
        a pattern would step through) is read with str methods. None: anything else
        (left to `_flow`, which reads every flow collection)."""
        if len(text) <= 200:
            pairs = text.count(": ")
            if 0 < pairs <= 8:
                match = _flat_pattern(pairs).fullmatch(text)
                if match is not None:
                    return self._flat_groups(match.groups())
        try:
            return self._flat_pairs(text)
        except IndexError:  # it ends too soon
            return None

    def _flat_groups(self, groups: tuple[str | None, ...]) -> dict[str, Any] | None:
        """The mapping _flat_pattern matched: (key, single-quoted, double-quoted, plain)
        for each pair."""
        value: dict[str, Any] = {}
        for i in range(0, len(groups), 4):
            key = groups[i]
            assert key is not None
            if key in value:
                return None  # a duplicate key: _flow reports it
            plain = groups[i + 3]
            if plain is None:
                single = groups[i + 1]
                value[key] = single if single is not None else groups[i + 2]
                continue
            if plain[-1] == " ":
                plain = plain.rstrip(" ")
            if plain[0] in _STRING_START:
                value[key] = plain
                continue
            item = self._plain_value(plain)
            if item is _UNSET:
                return None
            value[key] = item
        return value

    def _flat_pairs(self, text: str) -> dict[str, Any] | None:
        value: dict[str, Any] = {}
        find = text.find
        size = len(text)
        i = 1
        while True:
            while text[i] == " ":
                i += 1
            colon = find(": ", i)
            if colon < 0:
                return None
            key = text[i:colon]
            if not (key.isidentifier() and key.isascii() and colon - i <= 100) or key in value:
                return None
            i = colon + 2
            while text[i] == " ":
                i += 1
            quote = text[i]
            if quote == "'" or quote == '"':
                close = find(quote, i + 1)
                if close < 0 or (quote == '"' and "\\" in text[i:close]):
                    return None  # an escape: _flow reads it
                value[key] = text[i + 1:close]
                i = close + 1
                while i < size and text[i] == " ":
                    i += 1
                if i == size or text[i] not in ",}":
                    return None  # a quote doubled inside, or more after it
            else:
                if text[i] not in _COMMON_START:
                    return None
                comma = find(",", i)
                brace = find("}", i)
                end = brace if comma < 0 or 0 <= brace < comma else comma
                if end < 0:
                    return None
                plain = text[i:end].rstrip(" ")
                if not _FLOW_PLAIN_BREAKS.isdisjoint(plain):
                    return None
                if plain[0] in _STRING_START:
                    value[key] = plain
                else:
                    item = self._plain_value(plain)
                    if item is _UNSET:
                        return None
                    value[key] = item
                i = end
            if text[i] == "}":
                break
            i += 1  # past the comma
            while i < size and text[i] == " ":
                i += 1
            if i < size and text[i] == "}":
                break  # a comma before the brace
        if i + 1 < size and text[i + 1:].strip(" "):
            return None
        return value

    def _plain_value(self, raw: str) -> Any:
        """The value of a plain scalar that the common path may take: _UNSET for one
        that _value reports (a number too long, NaN or an infinity). A text that starts
        as no number, boolean or null can is a string as it is; the others repeat from
        job to job (`2.5`, `true`), and each is resolved once."""
        if raw[0] in _STRING_START:
            return raw
        known = self.known.get(raw, _UNSET)
        if known is not _UNSET:
            return known
        try:
            value = self.resolve(raw)
        except ValueError:
            return _UNSET
        if value.__class__ is float and value - value != 0.0:
            return _UNSET
        if len(self.known) < 4096:  # a bound: they are short texts, most of them alike
            self.known[raw] = value
        return value

    def _line(self, line: str) -> None:
        """Any line: its place in the frames, then its content."""
        stack = self.stack
        body = line.lstrip(" ")
        if not body or body[0] == "#":
            return
        if "\t" in line:
            raise Declined  # a tab anywhere but in a comment line
        if self.window >= 0:
            if self.window == 0:
                raise _Stop
            self.window -= 1
        indent = len(line) - len(body)
        if indent == 0 and body[0] in "-." and body[:3] in ("---", "...") \
                and (len(body) == 3 or body[3] == " "):
            if self.started or body[:3] == "..." or not _only_comment(body, 3):
                raise Declined  # a document marker: libyaml's business
            self.started = True
            return
        self.started = True
        dash = body[0] == "-" and (len(body) == 1 or body[1] == " ")
        top = stack[-1] if stack else None
        if top is not None and top.pend:
            if indent > top.col or (indent == top.col and dash and top.is_map):
                self._open_pending(top, line, indent, body, dash)
                return
            self._place_empty(top)
        while stack:
            top = stack[-1]
            if top.col > indent or (top.col == indent and top.indentless and not dash):
                self._close()
                continue
            break
        if not stack:
            if self.root is not _UNSET:
                raise Declined  # more than one node at the top
            if dash:
                self._open_list(None, indent, line, body, None)
            else:
                self._open_map_line(None, indent, line, body, None)
            return
        top = stack[-1]
        if top.col != indent or dash != (not top.is_map):
            # More indented than its frame (more of a plain scalar, or an error), or
            # a key among dashes: libyaml decides.
            raise Declined
        if dash:
            self._item(top, line, indent, body)
        else:
            self._entry(top, line, indent, body)

    # Lines in a frame -----------------------------------------------------------

    def _item(self, frame: _Frame, line: str, indent: int, body: str) -> None:
        """A `- ...` line of the list `frame`."""
        rest = body[1:].lstrip(" ")
        col = len(line) - len(rest)
        if not rest or rest[0] == "#":
            frame.pend = True
            frame.pend_loc = (self.lineno, indent + 2)
            frame.pend_anchor = None
            return
        self._dash_content(frame, line, col, rest)

    def _dash_content(self, frame: _Frame, line: str, col: int, rest: str) -> None:
        """What follows a list item's dash: a value, or the first key of a mapping."""
        first = rest[0]
        if first == "-" and (len(rest) == 1 or rest[1] == " "):
            raise Declined  # `- - a`
        if first == "&":
            name, after = self._anchor(rest)
            acol = col
            col = len(line) - len(after)
            if not after or after[0] == "#":
                frame.pend = True
                frame.pend_loc = (self.lineno, acol + 1)
                frame.pend_anchor = (name, (self.lineno, acol + 1))
                return
            if self._is_key_line(after):
                raise Declined  # the anchor would belong to the key
            self._value(frame, line, col, after, (name, (self.lineno, acol + 1)))
            return
        if self._is_key_line(rest):
            self._open_map_line(frame, col, line, rest, None)
            return
        self._value(frame, line, col, rest, None)

    def _entry(self, frame: _Frame, line: str, col: int, body: str) -> None:
        """A `key: ...` line of the mapping `frame` (the key at column `col`)."""
        key, plain, after, colon = self._key(body, col)
        self._take_key(frame, key, plain, (self.lineno, col + 1))
        vcol = len(line) - len(after)
        if not after or after[0] == "#":
            frame.pend = True
            frame.pend_loc = (self.lineno, colon + 2)
            frame.pend_anchor = None
            return
        if after[0] == "&":
            name, rest = self._anchor(after)
            if not rest or rest[0] == "#":
                frame.pend = True
                frame.pend_loc = (self.lineno, vcol + 1)
                frame.pend_anchor = (name, (self.lineno, vcol + 1))
                return
            self._value(frame, line, len(line) - len(rest), rest, (name, (self.lineno, vcol + 1)),
                        in_map=True)
            return
        self._value(frame, line, vcol, after, None, in_map=True)

    def _take_key(self, frame: _Frame, key: str, plain: bool, loc: Loc) -> None:
        if plain and key == "<<":
            frame.merge_next = True
            frame.key = None
            return
        lines = frame.key_lines
        assert lines is not None
        if key in lines:
            self.problems.append((DUPLICATE_KEY, loc, (*self._frame_path(), key), key,
                                  lines[key]))
            frame.extra += 1  # the builder counts every value placed
        lines[key] = loc[0]
        frame.key = key
        if self.track and frame.hot:
            self._record_key((*frame.path, key), loc)

    def _open_pending(self, frame: _Frame, line: str, indent: int, body: str,
                      dash: bool) -> None:
        """The line starts the value of `frame`'s pending key or dash."""
        frame.pend = False
        anchor = frame.pend_anchor
        if dash:
            self._open_list(frame, indent, line, body, anchor)
            return
        if self._is_key_line(body):
            self._open_map_line(frame, indent, line, body, anchor)
            return
        if anchor is not None or body[0] in "|>":
            raise Declined
        self._value(frame, line, indent, body, None, in_map=frame.is_map)

    def _open_list(self, parent: _Frame | None, indent: int, line: str, body: str,
                   anchor: tuple[str, Loc] | None) -> None:
        loc = anchor[1] if anchor else (self.lineno, indent + 1)
        frame = self._push(parent, False, indent, loc, anchor)
        frame.indentless = parent is not None and parent.is_map and parent.col == indent
        self._item(frame, line, indent, body)

    def _open_map_line(self, parent: _Frame | None, col: int, line: str, body: str,
                       anchor: tuple[str, Loc] | None) -> None:
        loc = anchor[1] if anchor else (self.lineno, col + 1)
        frame = self._push(parent, True, col, loc, anchor)
        self._entry(frame, line, col, body)

    def _push(self, parent: _Frame | None, is_map: bool, col: int, loc: Loc,
              anchor: tuple[str, Loc] | None) -> _Frame:
        if parent is not None and not parent.is_map:
            self._check_length(parent, loc)
        if self.track and parent is not None and parent.hot and parent.is_map \
                and parent.merge_next:
            raise Declined  # the builder records a merged container at its parent's path
        if len(self.stack) >= MAX_DEPTH:
            raise Declined
        slot = self._slot(parent)
        frame = _Frame(is_map, col, loc, anchor[0] if anchor else None, slot)
        if self.track:
            self._hot(frame, parent, loc)
        self.stack.append(frame)
        return frame

    def _slot(self, parent: _Frame | None) -> str | int | None:
        if parent is None:
            return None
        if parent.is_map:
            return parent.key  # None for a merge source
        return len(parent.value)

    # Values -----------------------------------------------------------------------

    def _value(self, frame: _Frame, line: str, col: int, text: str,
               anchor: tuple[str, Loc] | None, in_map: bool = False) -> None:
        """A value that starts at `col` of `line` (`text` is the line from there)."""
        first = text[0]
        loc = anchor[1] if anchor else (self.lineno, col + 1)
        if first in "[{":
            if len(self.stack) >= MAX_DEPTH:
                raise Declined
            if not frame.is_map:
                self._check_length(frame, loc)
            value, size, end = self._flow(line, col, frame, loc)
            self._end_of_line(line, end)
            if anchor is not None:
                self.anchors[anchor[0]] = (value, size)
            self._place(frame, value, size, loc, None)
            return
        if first == "*":
            name, rest = self._anchor(text)
            if rest and rest[0] != "#":
                raise Declined  # an alias as a key, or more after it
            if anchor is not None:
                raise Declined
            value, size = self._alias(name)
            self._place(frame, value, size, loc, loc)
            return
        if first in "|>":
            value = self._block_scalar(frame, text)
            if anchor is not None:
                self.anchors[anchor[0]] = (value, 1)
            self._place(frame, value, 1, loc, loc)
            return
        if first == "'" or first == '"':
            value, end = _quoted(line, col)
            self._end_of_line(line, end)
            if anchor is not None:
                self.anchors[anchor[0]] = (value, 1)
            self._place(frame, value, 1, loc, loc)
            return
        if first in _NOT_PLAIN_START and not (first == "-" and len(text) > 1
                                              and text[1] != " "):
            raise Declined
        cut = text.find(" #")
        raw = text if cut < 0 else text[:cut]
        raw = raw.rstrip(" ")
        if ": " in raw or raw.endswith(":"):
            raise Declined  # a mapping inside a value: libyaml refuses it
        if cut < 0:
            raw, self.pos, more = self._folded(raw, frame.col, self.pos)
            self.lineno += more
        value = self._scalar(raw, loc)
        if anchor is not None:
            self.anchors[anchor[0]] = (value, 1)
        self._place(frame, value, 1, loc, loc)

    def _folded(self, first: str, col: int, at: int) -> tuple[str, int, int]:
        """A plain scalar whose first line is `first`, with the lines from `at` on that
        go on with it (indented past `col`, its block's column), folded as libyaml
        folds them: one line break is a space, n + 1 of them are n line breaks. PyYAML's
        dump writes a long text so, at 80 columns. A line below that is not plain text
        (`key: `, a comment after text, a tab) is declined. Returns the text, where the
        line after it starts, and how many lines it took past the first."""
        if self.window >= 0 or at > len(self.text):
            return first, at, 0  # past a list over the cap, _line decides; or the end
        going_on = _going_on(col).match(self.text, at - 1)  # (it matches, if only "")
        block = going_on.group() if going_on is not None else ""
        if not block:
            return first, at, 0
        folded = _fold(first, block)
        if folded is None:
            raise Declined
        return folded, at + len(block), block.count("\n")

    def _scalar(self, raw: str, loc: Loc) -> Any:
        """A plain scalar's value under the core schema; problems as the builder's."""
        try:
            value = self.resolve(raw)
        except ValueError:  # more digits than int() converts
            self.problems.append((LONG_NUMBER, loc, self._path(), raw))
            return None
        if value.__class__ is float and value - value != 0.0:  # NaN, infinities
            self.problems.append((NON_FINITE, loc, self._path(), raw))
        return value

    def _place(self, frame: _Frame, value: Any, size: int, loc: Loc,
               scalar_loc: Loc | None) -> None:
        """Attach a finished value to `frame`. `scalar_loc`: the position of a scalar
        or an alias (containers record theirs when they open)."""
        if not frame.is_map:
            items = frame.value
            if scalar_loc is not None:
                self._check_length(frame, loc)
                if self.track and frame.hot:
                    self._record((*frame.path, len(items)), scalar_loc)
            items.append(value)
            frame.extra += size - 1
            return
        if frame.merge_next:
            frame.merge_next = False
            if frame.merges is None:
                frame.merges = []
            frame.merges.append((value, scalar_loc or (1, 1)))
            frame.extra += size
            return
        if self.track and frame.hot and scalar_loc is not None:
            self._record((*frame.path, frame.key), scalar_loc)  # type: ignore[arg-type]
        frame.value[frame.key] = value
        frame.extra += size - 1

    def _place_empty(self, frame: _Frame) -> None:
        """The pending key or dash of `frame` has an empty value (null)."""
        frame.pend = False
        if frame.pend_anchor is not None:
            name, loc = frame.pend_anchor
            self.anchors[name] = (None, 1)
        else:
            loc = frame.pend_loc
        self._place(frame, None, 1, loc, loc)

    def _check_length(self, frame: _Frame, loc: Loc) -> None:
        if self.max_items is not None and len(frame.value) >= self.max_items:
            self._too_many(loc, self._path())

    def _too_many(self, loc: Loc, path: DocPath) -> None:
        """A list over the cap: the builder's last problem. Reading goes on for a few
        lines (LOOKAHEAD_LINES), to decline what libyaml would have refused there."""
        if self.result.stopped:
            return
        self.problems.append((TOO_MANY, loc, path))
        self.result.stopped = True
        self.kept = len(self.problems)
        self.window = LOOKAHEAD_LINES

    def _alias(self, name: str) -> tuple[Any, int]:
        if name not in self.anchors:
            raise Declined  # the builder words it
        value, size = self.anchors[name]
        self.aliased += size
        if self.aliased > self.max_aliased:
            raise Declined  # an alias bomb: the builder words it
        return value, size

    def _close(self) -> None:
        frame = self.stack[-1]
        if frame.pend:
            self._place_empty(frame)  # (while it is on top: a problem's path runs through it)
        self.stack.pop()
        if frame.is_map and frame.merges:
            self._merge(frame)
        size = len(frame.value) + 1 + frame.extra
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (frame.value, size)
        if not self.stack:
            self.root = frame.value
            return
        self._place(self.stack[-1], frame.value, size, frame.loc, None)

    def _merge(self, frame: _Frame) -> None:
        value = frame.value
        for source, loc in frame.merges or ():
            for item in source if isinstance(source, list) else [source]:
                if not isinstance(item, dict):
                    self.problems.append((BAD_MERGE, loc))
                    continue
                for key, merged in item.items():
                    value.setdefault(key, merged)

    # Pieces of a line ---------------------------------------------------------------

    def _is_key_line(self, body: str) -> bool:
        """Whether `body` (a line from a node's start) is `key: ...`."""
        first = body[0]
        if first == "'" or first == '"':
            try:
                _, end = _quoted(body, 0)
            except Declined:
                return False
            after = body[end:].lstrip(" ")
            return after[:1] == ":" and (len(after) == 1 or after[1] == " ")
        if first in _NOT_PLAIN_START and not (first == "-" and len(body) > 1 and body[1] != " "):
            return False
        colon = _key_colon(body)
        if colon < 0:
            return False
        cut = body.find(" #")
        return cut < 0 or cut > colon

    def _key(self, body: str, col: int) -> tuple[str, bool, str, int]:
        """The key of a `key: value` line: (key, plain, text after the colon and its
        spaces, column of the colon)."""
        first = body[0]
        if first == "'" or first == '"':
            key, end = _quoted(body, 0)
            after = body[end:].lstrip(" ")
            if after[:1] != ":" or (len(after) > 1 and after[1] != " "):
                raise Declined
            colon = len(body) - len(after)
            if colon > MAX_KEY_CHARS:
                raise Declined
            return key, False, after[1:].lstrip(" "), col + colon
        if first in _NOT_PLAIN_START and not (first == "-" and len(body) > 1 and body[1] != " "):
            raise Declined
        colon = _key_colon(body)
        cut = body.find(" #")
        if colon < 0 or (0 <= cut < colon) or colon > MAX_KEY_CHARS:
            raise Declined  # not a key (a scalar where a key must be), or a long one
        key = body[:colon].rstrip(" ")
        return key, True, body[colon + 1:].lstrip(" "), col + colon

    def _anchor(self, text: str) -> tuple[str, str]:
        """`&name` or `*name` at the start of `text` (an anchor or an alias): the name,
        and what follows its spaces."""
        match = _ANCHOR.match(text, 1)
        if match is None:
            raise Declined
        end = match.end()
        if end < len(text) and text[end] != " ":
            raise Declined
        return match.group(), text[end:].lstrip(" ")

    def _end_of_line(self, line: str, end: int) -> None:
        """After a quoted scalar or a flow collection: spaces, then a comment or nothing."""
        rest = line[end:]
        stripped = rest.lstrip(" ")
        if stripped and (stripped[0] != "#" or len(stripped) == len(rest)):
            raise Declined

    # Flow collections (on one line) ---------------------------------------------------

    def _flow(self, line: str, col: int, frame: _Frame, loc: Loc) -> tuple[Any, int, int]:
        """The flow collection starting at `line[col]`: (value, size, index after it)."""
        base: DocPath = ()
        hot = False
        if self.track and frame.hot:
            if frame.is_map and frame.merge_next:
                raise Declined  # the builder records a merged container at its parent's path
            base = (*frame.path, self._slot(frame))  # type: ignore[arg-type]
            hot = base in self.want
            if hot:
                self._record(base, loc)
        return self._flow_node(line, col, len(self.stack) + 1, (), hot, base)

    def _flow_node(self, line: str, i: int, depth: int, rel: DocPath, hot: bool,
                   base: DocPath) -> tuple[Any, int, int]:
        """The flow sequence or mapping at `line[i]`, at `rel` below the value being
        read (`base` + `rel` when locating): (value, size, index after it)."""
        if depth >= MAX_DEPTH:
            raise Declined
        is_map = line[i] == "{"
        closing = "}" if is_map else "]"
        value: Any = {} if is_map else []
        size = 1
        key_lines: dict[str, int] = {}
        merges: list[tuple[Any, Loc]] = []
        i = _skip(line, i + 1)
        while True:
            if i >= len(line):
                raise Declined  # it goes on over the next line
            if line[i] == closing:
                break
            slot: str | int
            merge = False
            if is_map:
                key, plain, i, key_loc = self._flow_key(line, i)
                merge = plain and key == "<<"
                if merge and hot:
                    raise Declined  # see _flow
                if not merge:
                    if key in key_lines:
                        self.problems.append((DUPLICATE_KEY, key_loc, (*self._path(), *rel, key),
                                              key, key_lines[key]))
                    key_lines[key] = key_loc[0]
                    if hot:
                        self._record_key((*base, *rel, key), key_loc)
                slot = key
            else:
                slot = len(value)
            child_rel = rel if merge else (*rel, slot)
            child_hot = hot and not merge and (*base, *child_rel) in self.want
            loc = (self.lineno, i + 1)
            first = line[i]
            if first in "[{":
                if not is_map:
                    self._check_flow_length(value, loc, rel)
                if child_hot:
                    self._record((*base, *child_rel), loc)
                item, item_size, i = self._flow_node(line, i, depth + 1, child_rel, child_hot,
                                                     base)
                item_loc = (1, 1)
            else:
                item, item_size, i = self._flow_scalar(line, i, loc, child_rel)
                item_loc = loc
                if not is_map:
                    self._check_flow_length(value, loc, rel)
                if child_hot:
                    self._record((*base, *child_rel), loc)
            if merge:
                merges.append((item, item_loc))
            elif is_map:
                value[slot] = item
            else:
                value.append(item)
            size += item_size
            i = _skip(line, i)
            if i >= len(line):
                raise Declined
            if line[i] == ",":
                i = _skip(line, i + 1)
                continue
            if line[i] != closing:
                raise Declined  # `[a: b]`, or something libyaml may refuse
        for source, merge_loc in merges:
            for item in source if isinstance(source, list) else [source]:
                if not isinstance(item, dict):
                    self.problems.append((BAD_MERGE, merge_loc))
                    continue
                for merged_key, merged in item.items():
                    value.setdefault(merged_key, merged)
        return value, size, i + 1

    def _check_flow_length(self, items: list[Any], loc: Loc, rel: DocPath) -> None:
        if self.max_items is not None and len(items) >= self.max_items:
            self._too_many(loc, (*self._path(), *rel, len(items)))

    def _flow_key(self, line: str, i: int) -> tuple[str, bool, int, Loc]:
        """A flow mapping's key and its colon: (key, plain, index of the value, loc)."""
        loc = (self.lineno, i + 1)
        start = i
        first = line[i]
        if first == "'" or first == '"':
            key, i = _quoted(line, i)
            plain = False
            i = _skip(line, i)
            if i >= len(line) or line[i] != ":":
                raise Declined
            i += 1
        else:
            key, i = _flow_plain(line, i)
            plain = True
            if i + 1 >= len(line) or line[i] != ":" or line[i + 1] != " ":
                raise Declined  # a key without a value
            i += 1
        if i - start > MAX_KEY_CHARS:
            raise Declined  # libyaml gives up on a key this long
        i = _skip(line, i)
        if i >= len(line) or line[i] in ",}]":
            raise Declined  # an empty value
        return key, plain, i, loc

    def _flow_scalar(self, line: str, i: int, loc: Loc, rel: DocPath) -> tuple[Any, int, int]:
        """A scalar or an alias inside a flow collection: (value, size, index after it)."""
        first = line[i]
        if first == "'" or first == '"':
            value, i = _quoted(line, i)
            return value, 1, i
        if first == "*":
            match = _ANCHOR.match(line, i + 1)
            if match is None:
                raise Declined
            end = match.end()
            if end < len(line) and line[end] not in " ,]}":
                raise Declined
            value, size = self._alias(match.group())
            return value, size, end
        raw, i = _flow_plain(line, i)
        if i < len(line) and line[i] == ":":
            raise Declined  # `[a: b]`
        try:
            value = self.resolve(raw)
        except ValueError:
            self.problems.append((LONG_NUMBER, loc, (*self._path(), *rel), raw))
            return None, 1, i
        if value.__class__ is float and value - value != 0.0:
            self.problems.append((NON_FINITE, loc, (*self._path(), *rel), raw))
        return value, 1, i

    # Block scalars ----------------------------------------------------------------

    def _block_scalar(self, frame: _Frame, text: str) -> str:
        """A literal (`|`) or folded (`>`) scalar whose header is `text`; reads its lines
        as libyaml's scan_block_scalar does (indentation indicators are declined)."""
        literal = text[0] == "|"
        chomp = 0
        if len(text) > 1 and text[1] in "+-":
            chomp = 1 if text[1] == "+" else -1
        rest = text[2:] if chomp else text[1:]
        if rest and (rest[0] != " " or not _only_comment(rest, 0)):
            raise Declined  # an indentation indicator, or more on the line
        src = self.text
        size = len(src)
        pos = self.pos
        lineno = self.lineno
        trailing = 0  # empty lines not yet added
        widest = 0
        spaces = 0
        # The empty lines before the first line of text, which fixes the indentation.
        while pos < size:
            end = src.find("\n", pos)
            if end < 0:
                end = size
            spaces = _count_spaces(src, pos, end)
            widest = max(widest, spaces)
            if pos + spaces < end:
                break
            if end == size:
                pos = size
                break
            trailing += 1
            pos = end + 1
            lineno += 1
        indent = max(widest, frame.col + 1, 1)
        chunks: list[str] = []
        leading_break = ""
        leading_blank = False
        while pos < size and spaces == indent:
            end = src.find("\n", pos)
            if end < 0:
                end = size
            content = src[pos + indent:end]
            trailing_blank = content[:1] == " "
            if not literal and leading_break == "\n" and not leading_blank \
                    and not trailing_blank:
                if not trailing:
                    chunks.append(" ")
                leading_break = ""
            chunks.append(leading_break)
            chunks.append("\n" * trailing)
            trailing = 0
            leading_blank = trailing_blank
            chunks.append(content)
            lineno += 1
            if end == size:
                leading_break = ""
                pos = size
                break
            leading_break = "\n"
            pos = end + 1
            # The empty lines after it, up to the next line with text. Spaces past the
            # indentation are text; a line less indented ends the scalar.
            spaces = 0
            while pos < size:
                end = src.find("\n", pos)
                if end < 0:
                    end = size
                spaces = min(_count_spaces(src, pos, end), indent)
                if pos + spaces < end:
                    break
                if end == size:
                    pos = size
                    break
                trailing += 1
                pos = end + 1
                lineno += 1
        if chomp != -1:
            chunks.append(leading_break)
        if chomp == 1:
            chunks.append("\n" * trailing)
        if src.find("\t", self.pos, pos) >= 0:
            raise Declined  # a tab in its lines (text, not a comment)
        self.pos = pos
        self.lineno = lineno
        return "".join(chunks)

    # Paths and positions ------------------------------------------------------------

    def _frame_path(self) -> DocPath:
        """The path of the innermost open frame (for a message: computed only then). A
        merge source has no place of its own: its entries' paths are its parent's."""
        return tuple(frame.slot for frame in self.stack if frame.slot is not None)

    def _path(self) -> DocPath:
        """The path of the value being read into the innermost frame."""
        parts = list(self._frame_path())
        if self.stack:
            top = self.stack[-1]
            if top.is_map:
                if top.key is not None and not top.merge_next:
                    parts.append(top.key)
            else:
                parts.append(len(top.value))
        return tuple(parts)

    def _hot(self, frame: _Frame, parent: _Frame | None, loc: Loc) -> None:
        if parent is None:
            frame.path = ()
            frame.hot = self.root_hot
        elif parent.hot and frame.slot is not None:
            frame.path = (*parent.path, frame.slot)
            frame.hot = frame.path in self.want
        if frame.hot:
            self._record(frame.path, loc)

    def _record(self, path: DocPath, loc: Loc) -> None:
        if path in self.want:
            self.result.positions[path] = loc
            self.recorded += 1
            if self.recorded == self.targets:
                raise _Stop

    def _record_key(self, path: DocPath, loc: Loc) -> None:
        if path in self.want_keys:
            self.result.key_positions[path] = loc
            self.recorded += 1
            if self.recorded == self.targets:
                raise _Stop


def _only_comment(text: str, start: int) -> bool:
    """Whether `text[start:]` is spaces, then nothing or a comment after a space."""
    rest = text[start:]
    stripped = rest.lstrip(" ")
    return not stripped or (stripped[0] == "#" and len(stripped) < len(rest))


def _count_spaces(text: str, start: int, end: int) -> int:
    """How many spaces `text[start:end]` starts with."""
    i = start
    while i < end and text[i] == " ":
        i += 1
    return i - start


def _skip(line: str, i: int) -> int:
    while i < len(line) and line[i] == " ":
        i += 1
    return i


def _key_colon(body: str) -> int:
    """Index of the `:` that ends a plain key (followed by a space or the end), or -1."""
    colon = body.find(": ")
    if colon < 0:
        return len(body) - 1 if body.endswith(":") else -1
    return colon


def _quoted(line: str, i: int) -> tuple[str, int]:
    """The quoted scalar at `line[i]` (it must end on this line): (value, index after)."""
    quote = line[i]
    if quote == "'":
        parts = []
        j = i + 1
        while True:
            end = line.find("'", j)
            if end < 0:
                raise Declined  # goes on over the next line
            parts.append(line[j:end])
            if end + 1 < len(line) and line[end + 1] == "'":
                parts.append("'")
                j = end + 2
                continue
            return "".join(parts), end + 1
    j = i + 1
    out = []
    while True:
        end = line.find('"', j)
        slash = line.find("\\", j)
        if end < 0:
            raise Declined
        if slash < 0 or slash > end:
            out.append(line[j:end])
            return "".join(out), end + 1
        out.append(line[j:slash])
        if slash + 1 >= len(line):
            raise Declined  # an escaped line break
        code = line[slash + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            j = slash + 2
            continue
        digits = _HEX_DIGITS.get(code)
        if digits is None:
            raise Declined  # libyaml refuses it
        hexa = line[slash + 2:slash + 2 + digits]
        if len(hexa) != digits or not _HEX.match(hexa):
            raise Declined
        point = int(hexa, 16)
        if 0xD800 <= point <= 0xDFFF or point > 0x10FFFF:
            raise Declined
        out.append(chr(point))
        j = slash + 2 + digits


def _flow_plain(line: str, i: int) -> tuple[str, int]:
    """A plain scalar inside a flow collection: (text, index where it ends)."""
    first = line[i]
    if first in _NOT_PLAIN_START and not (first == "-" and i + 1 < len(line)
                                          and line[i + 1] not in " ,[]{}"):
        raise Declined
    j = i
    size = len(line)
    while j < size:
        c = line[j]
        if c in _FLOW_END:
            break
        if c == ":":
            after = line[j + 1] if j + 1 < size else " "
            if after == " ":
                break
            if after in ",?[]{}":
                raise Declined  # libyaml: "found unexpected ':'"
        elif c == "#" and line[j - 1] == " ":
            raise Declined  # a comment inside a flow collection: it goes on below
        j += 1
    return line[i:j].rstrip(" "), j
