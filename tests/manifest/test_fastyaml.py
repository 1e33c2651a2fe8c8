"""runner.manifest.fastyaml against libyaml: the same values, problems and positions, or a refusal.

The fast reader must never accept a text that libyaml refuses, never build another
value, and report what the builder reports where libyaml's marks say. So each
document here is read both ways (`yaml_source._Builder` over libyaml's events is
the reference) and compared: the data (types included), the problems (messages
and positions), and the position of every value and key that `locate` is asked
for. Documents come from the acceptance corpus, from explicit cases, and from a
generator of manifest-like YAML with small mutations (fixed seeds: the same
documents every run).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.errors import ManifestInvalid, Problem
from runner.manifest import fastyaml
from runner.manifest import yaml_source as ys

CASES = Path(__file__).resolve().parent.parent / "acceptance" / "cases"
PIPELINES = Path(__file__).resolve().parent.parent.parent / "pipelines"


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1 is not 1.0 is not True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def by_libyaml(text: str, max_items: int | None) -> tuple[str, Any]:
    builder = ys._Builder("m.yaml", track=False, max_items=max_items)
    try:
        data = builder.build(yaml.parse(text, Loader=ys._loader()))
    except ys._Stop:
        return "problems", builder.problems
    except yaml.MarkedYAMLError as exc:
        return "syntax", [ys._syntax_problem(exc, text, "m.yaml")]
    except yaml.reader.ReaderError as exc:
        return "syntax", [ys._character_problem(exc, text, "m.yaml")]
    if builder.problems:
        return "problems", builder.problems
    return "ok", data


def by_fast_reader(text: str, max_items: int | None) -> tuple[str, Any]:
    try:
        found = fastyaml.read(text, max_items, ys.MAX_ALIASED_VALUES)
    except fastyaml.Declined:
        return "declined", None
    if found.problems:
        return "problems", [ys._worded("m.yaml", p, max_items) for p in found.problems]
    return "ok", found.data


def positions_by_libyaml(text: str, values: set[ys.DocPath], keys: set[ys.DocPath]
                         ) -> tuple[dict[ys.DocPath, ys.Loc], dict[ys.DocPath, ys.Loc]]:
    builder = ys._Builder("m.yaml", track=True, only=values, only_keys=keys,
                          targets=len(values) + len(keys))
    with contextlib.suppress(ys._Found):
        builder.build(yaml.parse(text, Loader=ys._loader()))
    return builder.positions, builder.key_positions


def every_path(text: str) -> tuple[set[ys.DocPath], set[ys.DocPath]]:
    builder = ys._Builder("m.yaml", track=True)
    builder.build(yaml.parse(text, Loader=ys._loader()))
    return set(builder.positions), set(builder.key_positions)


def compare(text: str, max_items: int | None = None, rng: random.Random | None = None) -> str:
    """Read `text` both ways; fails the test on any difference. Returns what happened."""
    fast = by_fast_reader(text, max_items)
    if fast[0] == "declined":
        return "declined"
    slow = by_libyaml(text, max_items)
    assert fast[0] == slow[0], (text, fast, slow)
    if fast[0] == "problems":
        assert fast[1] == slow[1], text
        return "problems"
    assert same(fast[1], slow[1]), (text, fast[1], slow[1])
    values, keys = every_path(text)
    if rng is not None and values:  # a part of them: the reading stops once all are found
        values = set(rng.sample(sorted(values, key=repr), rng.randint(1, len(values))))
        keys = set(rng.sample(sorted(keys, key=repr), rng.randint(0, len(keys))))
    values = {path[:end] for path in values | keys for end in range(len(path) + 1)}
    expected = positions_by_libyaml(text, values, keys)
    try:
        found = fastyaml.locate(text, values, keys)
    except fastyaml.Declined:
        return "ok"
    assert (found.positions, found.key_positions) == expected, text
    return "ok"


# The acceptance corpus and the example pipelines ----------------------------------

CORPUS = sorted(CASES.glob("*.yaml")) + sorted(PIPELINES.rglob("*.yaml"))


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_the_corpus_reads_as_libyaml_reads_it(path: Path) -> None:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        pytest.skip("not UTF-8: refused before any YAML is read")
    compare(text, 50)


def test_manifests_that_are_plain_block_yaml_are_read_without_libyaml() -> None:
    """The reader is only worth its code if ordinary manifests take it: every example
    pipeline and every good acceptance case does."""
    ordinary = [p for p in CORPUS if p.parent == PIPELINES or p.name.startswith("good_")]
    assert len(ordinary) >= 8
    for path in ordinary:
        text = path.read_text(encoding="utf-8")
        fastyaml.read(text)  # raises Declined otherwise


# Explicit cases ------------------------------------------------------------------

READ = [
    # plain scalars that go on over the lines below (PyYAML's dump folds at 80 columns)
    "a: b\n  c\n", "a: b\n\n  c\n\n\n   d\ne: 1\n", "- a\n  b\n- c\n", "a:\n- b\n c\n",
    "a: b\n  - c\n  ? d\n  [e] {f} 'g' &h *i !j |k >l\n", "a: 1\n  2\n", "a: .nan\n  x\n",
    "a:\n  b: c\n   d\n  e: f\n", "- a: b\n   c\n  d: e\n", "a: &x b\n  c\nd: *x\n",
    "a: b\n  c # d\n", "a: b\n  c: d\n", "a: b\n  c:\n", "a: b\n  #c\n", "a: b\n #c\n  d\n",
    "a: b\n  c\t\n", "a: 'b'\n  c\n", "a: b # c\n  d\n", "a: b\n  ---\n", "a: b\n...\n",
    # tabs in comment lines (the only place the reader takes one)
    "# a\tcomment\na: 1\n", "a:\n  #\tx\n  b: 1\n", "- a: 1\n#\t\n- b: 2\n",
    "jobs:\n  - id: a\n    # take\tone\n    model: m\n  - id: b\n    model: m\n",
    # empty values: null at the end of the ':' or the '-'
    "a:\nb: 1\n", "- \n-\n- a: 1\n  b:\n", "a:\n  -\n  - x\n",
    # indentless lists, compact mappings, nesting
    "a:\n- 1\n- b: 2\n  c: 3\nd: 4\n", "- - 1\n", "-   a: 1\n    b: 2\n",
    "jobs:\n  - id: a\n    input:\n      text: hi\n  - id: b\n",
    # scalars of the core schema
    ("a: [yes, no, on, off, y, n, ~, null, Null, true, False, 0x1F, 0o17, 017, +1, -1, .5, 1.,"
     " 1e3, 1_000, .inf, -.Inf, .nan]\n"),
    "a: .nan\nb: [1e999]\nc: {d: -.inf}\n", "a: " + "9" * 5000 + "\n",
    # quoted scalars
    "a: 'it''s'\nb: \"tab\\there \\u00e9 \\x41 \\0\"\nc: ''\nd: \"\"\ne: ' # not a comment'\n",
    "'quoted key': 1\n\"dq\": 2\n", "a: \"\\q\"\n", "a: \"\\ud800\"\n", "a: 'open\n  more'\n",
    # plain scalars that look like other things
    "a: http://host:80/x\nb: a#b\nc: x # comment\nd: -x\ne: a, b [c] {d}\nf: it's\n",
    "a: b: c\n", "a: b:\n", "a:b: c\n", "a : b\n", "k: v\n  more\n", "- a\n -\n",
    # flow collections
    "a: [1, [2, 3], {b: 4}]\nb: {}\nc: []\nd: [x, y,]\ne: {\"j\":1}\n",
    "a: [a: b]\n", "a: {b}\n", "a: {b: }\n", "a: [1,\n  2]\n", "a: {url: http://x:1/y}\n",
    "a: {b: x:,}\n", "a: [x] y\n", "a: [x]#c\n", "a: [x] # c\n",
    # block scalars
    "a: |\n  one\n  two\n\nb: 1\n", "a: |-\n  x\n\n", "a: |+\n  x\n\n\nb: 2\n",
    "a: >\n  one\n  two\n\n  three\n", "a: >-\n  x\n   more\n  y\n", "a: |\nb: 1\n",
    "- |\n  x\n- >\n a\n b\n", "a: |\n  x\n  \n   \n  y\n", "a: |2\n   x\n", "a: | x\n",
    "a: |\n\n    \n  x\n", "a: |\n  x", "a: >\n  x\n\n",
    # anchors, aliases and merges
    "a: &a {x: 1}\nb: *a\nc:\n  <<: *a\n  y: 2\n", "a: &a [1, 2]\nb: [*a, *a]\n",
    "base: &b\n  x: 1\n  y: 2\nj:\n  <<: [*b, {z: 3}]\n  x: 0\n", "a: &a\nb: *a\n",
    "a: *nope\n", "a: &a 1\n<<: *a\n", "- &x\n  k: v\n- *x\n", "'<<': 1\n",
    # duplicate keys, documents, markers, odd characters
    "a: 1\na: 2\na: 3\n", "x: {a: 1, a: 2}\n", "---\na: 1\n", "--- # c\na: 1\n",
    "a: 1\n---\nb: 2\n", "a: 1\n...\n", "%YAML 1.2\n---\na: 1\n", "a: !!str 1\n",
    "a: !t x\n", "a:\tb\n", "a: b\r\nc: d\r\n", "a: b\rc: d\n", "a: \x85\n",
    "a: \ufeffx\n", "# only a comment\n", "", "a: 1\n  # indented comment\nb: 2\n",
    # indentation libyaml refuses or reads otherwise
    "a:\n  b: 1\n c: 2\n", "a: 1\n b: 2\n", "- a\nb: 1\n", "a:\n - 1\n  - 2\n",
    # keys libyaml gives up on (a simple key may not span 1,024 characters)
    "k" * 1000 + ": 1\n", "k" * 1030 + ": 1\n", "a: {" + "k" * 1030 + ": 1}\n",
]

# Where a hand-written reader could quietly differ from libyaml: each is read alike
# or declined (the test cannot tell which of the two it expects: both are right).
EDGES = [
    # ': ' and ' #' inside plain scalars, in block and flow context
    "a: x #c\n", "a: x#c\n", "a: x  # c: d\n", "a: 'x: y'\n", "a: \"x # y\"\n", "- a: b #: c\n",
    "a: {b: x #c}\n", "a: [x #c]\n", "a: http://x/#frag\n", "a: x :y\n", "a: x ::\n", "a: :x\n",
    "- x: \n", "a: {b: x:y}\n", "a: {b: x :y}\n",
    # keys that look like numbers, booleans and nulls are strings; '1' and 1 are one key
    "1: a\ntrue: b\nnull: c\n~: d\n1.5: e\n0x1F: f\n.nan: g\n", "1: a\n'1': b\n",
    "true: 1\n\"true\": 2\n", "- 1: a\n  2: b\n", "a: {1: x, true: y, null: z}\n", "'': 1\n",
    # merges: twice, in flow, quoted (no merge), of a list, of a block mapping, at the top
    "a: &a {x: 1}\nb:\n  <<: *a\n  <<: {y: 2}\n", "a: &a {x: 1}\nb: {<<: *a, x: 2}\n",
    "b:\n  '<<': 1\n", "b:\n  \"<<\": 1\n", "a: &a [1]\nb:\n  <<: *a\n",
    "b:\n  <<: [{x: 1}, {x: 2}]\n", "b:\n  <<:\n    x: 1\n  y: 2\n", "b:\n  <<: &m\n    x: 1\nc: *m\n",
    "<<: {a: 1}\n", "- <<: {a: 1}\n  b: 2\n", "b:\n  << : {x: 1}\n",
    # an anchor defined again: an alias means the latest, whatever it anchors
    "a: &x 1\nb: &x\n  c: 2\nd: *x\n", "a: &x 1\nb: &x {c: 2}\nd: *x\n", "- &x a\n- &x b\n- *x\n",
    "a: &x 1\nb:\n  - &x 2\nc: *x\n", "- a: &x 1\n  b: &x\n    c: 2\n  d: *x\n",
    "a: &x\n  b: 1\nc: &x\nd: *x\n", "a: &x 1\nb: &x\n- 2\nc: *x\n",
    # quoted keys
    "'a b': 1\n\"c\\td\": 2\n'it''s': 3\n", "- 'a': 1\n  \"b\": 2\n", "'a':1\n", "'a'  :  1\n",
    "'a:b': 1\n", "\"a\" # c\n: 1\n",
    # trailing spaces after every kind of value, and lines of spaces
    "a: b   \nc: 'x'   \nd:   \ne: [1]   \nf: {g: 1}   \n", "- a   \n-   \n- 'q'  \n",
    "a:   \n  - 1   \n", "a: |   \n  x   \n  y\n", "a: >-  \n  x  \n\n  y  \n", "a   : 1\n",
    "a: b  \n  \n", "   \na: 1\n", "- id: a   \n  model: m  \n", "- id: 7   \n  n: .5  \n",
    # line ends: CRLF (read), a lone CR (declined), at the end of the text too
    "a: b\r\nc: d\r\n", "a: |\r\n  x\r\n  y\r\nb: 1\r\n", "- a: 1\r\n  b: [1, 2]\r\n",
    "a: 'x'\r\n", "a: b\r", "a: b\rc", "a: b\r\n\r\n", "a: >\r\n  x\r\n\r\n  y\r\n",
    "- id: a\r\n  input: {text: 'x', n: 1}\r\n- id: b\r\n",
    # a byte-order mark, Unicode line and paragraph separators, NEL, NUL, other controls
    "\ufeffa: 1\n", "a: 1\n\ufeffb: 2\n", "a: x\u2028y\n", "a: x\u2029y\n", "a: x\x85y\n",
    "a: 1\u2028b: 2\n", "a: '\u2028'\n", "a: \x00\n", "a: 'x\x00'\n", "a\x00: 1\n", "a: \x0c\n",
    "a: \x7f\n", "a: \x1b\n", "a: \ufffe\n", "a: \uffff\n", "a: \"\\u2028\"\n", "a: \"\\N\\_\\L\\P\"\n",
    # text beyond ASCII, and spaces that are not spaces to YAML
    "a: é\nb: 日本\nc: 🎵\n", "é: 1\n", "a: {é: 1}\n", "a: x\xa0\n", "a: \xa0x\n", "a:\xa0x\n",
    "a: x\u3000\n", "a: \"\\U0001F3B5\"\n",
    # very long lines, keys at libyaml's limit of 1,024 characters for a simple key
    "a: " + "x" * 100_000 + "\n", "a: '" + "x" * 100_000 + "'\n", "k" * 1023 + ": 1\n",
    "k" * 1024 + ": 1\n", "k" * 1025 + ": 1\n", "'" + "k" * 1022 + "': 1\n",
    "a: {b: '" + "x" * 50_000 + "'}\n", "a: [" + ", ".join(["1"] * 5000) + "]\n",
    "- " + "k" * 1020 + ": 1\n", "- " + "k" * 1030 + ": 1\n",
    # numbers of the core schema and scalars that only look like them
    "a: 1e3\nb: -0\nc: +.5\nd: 0.\ne: 1__0\nf: 0b1\ng: 0o\nh: 0x\ni: .\nj: -.\nk: +\nl: 1e\n",
    "a: 00\nb: 09\nc: 0o8\nd: -0x1\ne: +0o7\nf: 1E+3\ng: .5e-3\nh: -.5\ni: 1.2.3\n", "a: ١٢\n",
    "a: ²\n", "a: {b: -1, c: .5, d: 1e3, e: 0x1F}\n", "a: {b: .inf}\n", "- 1\n- .5\n- -.inf\n",
    # indicators where a plain scalar starts or ends
    "a: -\n", "a: - b\n", "a: --x\n", "a: ?x\n", "a: ? x\n", "a: x?\n", "a: !x\n", "a: x!\n",
    "a: %x\n", "a: @x\n", "a: `x\n", "a: x@\n", "a: |x\n", "a: >x\n", "a: x|\n", "a: &x\n",
    "a: *\n", "a: & x\n",
    # document markers where they are and are not markers
    "--- \na: 1\n", "---\n---\n", "...\n", "a: 1\n... # c\n", "--- a\n", "---a: 1\n", "----: 1\n",
    "a: ---\n", "- ---\n", "a:\n  ---: 1\n",
    # flow collections: empty, trailing commas, quotes inside, nesting
    "a: { }\nb: [ ]\n", "a: {b: c,}\n", "a: {,}\n", "a: [,]\n", "a: [a,,b]\n", "a: {b: 'x''y'}\n",
    "a: {b: \"x\\\"y\"}\n", "a: {b:c}\n", "a: {b: c d}\n", "a: {b: 'x' , c: y }\n", "a: {b: x}y\n",
    "a: {b: {c: {d: {e: 1}}}}\n", "a: {'b': 1}\n", "a: {\"b\" : 1}\n", "a: {? b}\n", "a: [? b]\n",
    "a: {b: 'x'_c: 1}\n", "a: {b: 'x' c: 1}\n", "a: {b: 'x''y', c: 1}\n", "a: {b: 'x'}}\n",
    "a: {b: x, c: 'y'}z\n", "a: {b: 'x',c: y,}\n", "a: {b: x}}\n", "a: {b: x]\n", "a: {b: 'x]\n",
    # indentation
    "a:\n    b: 1\n    c: 2\n", "a:\n b:\n  c:\n   d: 1\n", "- a\n  - b\n", "-  a: 1\n   b: 2\n",
    "- a: 1\n - b\n", "a:\n- b\n-  c\n", "a:\n  - b\n  -\n    c: 1\n", "-\n  - 1\n  - 2\n", "- -\n",
    "- a:\n    b: 1\n- c: 2\n", "- a:\n- b: 1\n", "- a: 1\n  b:\n    - c\n- d: 2\n",
]


@pytest.mark.parametrize("text", EDGES)
def test_edge_cases_read_as_libyaml_reads_them(text: str) -> None:
    compare(text)
    compare(text, 1)
    # After a `key: value` line, the same text is read by the common path (`_lines`,
    # `_flat_map`) rather than by `_line`: both must agree with libyaml.
    compare("_p: 0\n" + text)
    compare("- _p: 0\n  " + text.replace("\n", "\n  ", text.count("\n") - 1))


def test_characters_libyaml_refuses_are_declined_and_then_located() -> None:
    """A NUL, an escape character or U+FFFF in the file: the fast reader declines, and
    libyaml's refusal becomes a located problem, not a traceback."""
    for text, line, column in [("a: 1\nb: x\x00\n", 2, 5), ("a: é\x1b\n", 1, 5),
                               ("- a\n- 'b\uffff'\n", 2, 5)]:
        with pytest.raises(fastyaml.Declined):
            fastyaml.read(text)
        with pytest.raises(ManifestInvalid) as raised:
            ys.parse_yaml(text, "m.yaml")
        [problem] = raised.value.problems
        assert (problem.line, problem.column) == (line, column), problem
        assert "YAML does not allow" in problem.message


@pytest.mark.parametrize("text", READ)
def test_explicit_cases_read_as_libyaml_reads_them(text: str) -> None:
    compare(text)
    compare(text, 1)
    compare("_p: 0\n" + text)  # by the common path (see test_edge_cases_read_as_libyaml_reads_them)


def test_the_common_lines_of_a_large_manifest_are_read_without_libyaml() -> None:
    head = "version: 1\nname: big\njobs:\n"
    job = ("  - id: line_N\n    model: elevenlabs/text-to-speech-turbo-2-5\n"
           "    input: {voice: Brian, text: 'Line N, said twice. Line N.', speed: 1.05}\n"
           "    output: vo/N.mp3\n")
    text = head + "".join(job.replace("N", str(i)) for i in range(300))
    assert compare(text) == "ok"
    assert compare(text, 100) == "problems"  # the list over the cap, as the builder says


@pytest.mark.parametrize("text", [
    "a: x\n\tb: y\n", "a: x\t\n", "a: 'x\ty'\n", "a: {b: x\ty}\n", "\t# c\na: 1\n",
    "a: |\n  x\n  # not\ta comment\n", "a: x # c\td\n", "a: !!python/object:os.system x\n", "a: [1,\n 2]\n", "a: 'x\n y'\n",
"a: 1\n---\na: 2\n", "a: *undefined\n", "{a: 1}\n", "plain\n",
    "a: \"\\'\"\n", "a: |1\n x\n", "? a\n: b\n", "[a]: b\n", "&x a: b\n",
])
def test_what_the_reader_leaves_to_libyaml(text: str) -> None:
    with pytest.raises(fastyaml.Declined):
        fastyaml.read(text)


def test_a_tab_in_a_comment_line_is_read_without_libyaml() -> None:
    """An editor's tab in a comment of a large manifest must not send all of it to
    libyaml, which reads it twice as slowly."""
    head = "version: 1\nname: big\n# made by\tthe exporter\njobs:\n"
    job = "  - id: line_N\n    model: m\n    input: {voice: Brian, text: 'Line N.'}\n"
    text = head + "".join(job.replace("N", str(i)) for i in range(50)) + "#\tend\n"
    assert compare(text) == "ok"
    assert len(fastyaml.read(text).data["jobs"]) == 50


def test_an_alias_bomb_is_left_to_the_builder_which_words_it() -> None:
    levels = ["a: &a [" + ",".join(["lol"] * 10) + "]"]
    for i, name in enumerate("bcdefghij"):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{'abcdefghij'[i]}"] * 10) + "]")
    text = "\n".join(levels) + "\n"
    with pytest.raises(fastyaml.Declined):
        fastyaml.read(text)
    with pytest.raises(ManifestInvalid, match="an alias bomb"):
        ys.parse_yaml(text, "m.yaml")


def test_past_a_list_over_the_cap_what_libyaml_had_read_is_checked() -> None:
    """libyaml reads a little past the item where the builder stops (a possible key
    waits for the next token): an error there is libyaml's answer, not the cap."""
    text = 'a:\n  b:\n    - 1\n    - "x"\n  c:*>\n  d: 1\n'  # "x" is over a cap of 1
    assert by_libyaml(text, 1)[0] == "syntax"
    assert compare(text, 1) == "declined"
    text = "- .nan\n -\n    - on\n"  # one item: a plain scalar over three lines
    assert compare(text, 2) == "ok"
    # An empty item over the cap, at the end of the text: its index is in the path.
    assert compare("- a\n-\n", 1) == "problems"
    assert compare("jobs:\n-   id: a\n-   id: b\n-   id: c\n-", 3) == "problems"


def test_problems_are_worded_as_the_builder_words_them() -> None:
    text = "a: 1\nb: [.nan, " + "9" * 5000 + "]\na: 2\nc:\n  <<: 3\n"
    with pytest.raises(ManifestInvalid) as raised:
        ys.parse_yaml(text, "m.yaml")
    assert raised.value.problems == [
        Problem("m.yaml", 2, 5, "$.b[0]", ".nan is not a finite number: NaN and infinities "
                "are not values any model accepts"),
        Problem("m.yaml", 2, 11, "$.b[1]", "a number of 5,000 digits is too long to be a value"),
        Problem("m.yaml", 3, 1, "$.a", "duplicate key 'a' (first defined at line 1)"),
        Problem("m.yaml", 5, 7, "$", "a merge key '<<' takes a mapping or a list of mappings"),
    ]
    assert compare(text) == "problems"


# Generated documents -----------------------------------------------------------------

PLAIN = ["a", "hello world", "1", "-2", "3.5", ".nan", "-.inf", "1e999", "0x1f", "0o7", "yes",
         "no", "on", "true", "False", "null", "~", "x:y", "http://h:1/p", "a#b", "a, b", "[x",
         "x]", "it's", "é", "a - b", "-x", "0", "00", "+1", "1_0", "Infinity", "sfx/1.mp3",
         "017", ".5", "+.inf", "-0", "1e3", "日本", "🎵", "x\xa0", "a  b", "/x", "./y", "_z", "x?"]
KEYS = ["a", "b", "c", "id", "text", "key with spaces", "-k", "k:v", "1", "true", "~", "é",
        "k" * 100, "k" * 1001, "'" + "q" * 1020 + "'", "null", "1.5", "0x1F", "'1'", '"true"',
        "_k", "K9"]
# Characters a mutation may bring in: line ends and separators, controls, a byte-order
# mark, a non-character, a tab, a no-break space (each one libyaml reads its own way).
ODD = ["\x00", "\u2028", "\u2029", "\x85", "\ufeff", "\t", "\r", "\x1b", "\ufffe", "\xa0"]
QUOTED = ["''", "'x'", "'it''s'", "'a: b'", "' # '", '""', '"x"', '"a\\nb"', '"\\t\\"\\\\"',
          '"\\x41\\u00e9"', '"#"', "'  sp  '", '"\\0"', '"\\e\\N\\_"']
BLOCK = ["text", "more words", "", "", "  deeper", " ", "#x", "a: b"]


class Generator:
    """Manifest-like YAML: block mappings and lists (compact and indentless), scalars
    of every style, flow collections, block scalars, anchors, aliases and merges."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.anchors: list[str] = []
        self.count = 0

    def scalar(self, flow: bool = False) -> str:
        roll = self.rng.random()
        if roll < 0.55:
            text = self.rng.choice(PLAIN)
            return "z" if flow and any(c in text for c in ",[]{}#") else text
        if roll < 0.85:
            return self.rng.choice(QUOTED)
        if roll < 0.95 and self.anchors:
            return "*" + self.rng.choice(self.anchors)
        return self.rng.choice(PLAIN)

    def flow(self, depth: int) -> str:
        rng = self.rng
        if depth > 2 or rng.random() < 0.5:
            return self.scalar(True)
        if rng.random() < 0.5:
            items = [self.flow(depth + 1) for _ in range(rng.randint(0, 3))]
            tail = "," if items and rng.random() < 0.1 else ""
            return "[" + rng.choice([", ", ",", " , "]).join(items) + tail + "]"
        keys = rng.sample(KEYS[:12], rng.randint(0, 3))
        if keys and rng.random() < 0.1:
            keys.append(keys[0])
        pairs = []
        for key in keys:
            value = self.flow(depth + 1)
            if self.anchors and rng.random() < 0.1:
                key, value = "<<", "*" + rng.choice(self.anchors)
            pairs.append(f"{key}: {value}")
        return "{" + ", ".join(pairs) + "}"

    def node(self, indent: int, depth: int, lines: list[str], prefix: str) -> None:
        rng = self.rng
        anchor = ""
        if rng.random() < 0.1:
            self.count += 1
            anchor = f" &a{self.count}"
            if self.anchors and rng.random() < 0.2:  # defined again: aliases mean the latest
                anchor = " &" + rng.choice(self.anchors)
        roll = rng.random() if depth <= 3 else 0.1
        if roll < 0.35:
            value = self.scalar()
            if value.startswith("*"):
                anchor = ""
            lines.append(f"{prefix}{anchor} {value}".rstrip())
            if rng.random() < 0.1:
                lines[-1] += rng.choice([" # c", "  #c"])
        elif roll < 0.5:
            lines.append(f"{prefix}{anchor} {self.flow(0)}")
        elif roll < 0.6:
            lines.append(f"{prefix}{anchor} {rng.choice(['|', '|-', '|+', '>', '>-', '>+'])}")
            inner = indent + rng.choice([1, 2, 2, 4])
            for _ in range(rng.randint(0, 5)):
                text = rng.choice(BLOCK)
                lines.append(" " * inner + text if text or rng.random() < 0.3 else text)
        elif roll < 0.8:
            lines.append(f"{prefix}{anchor}")
            inner = indent if prefix.endswith(":") and rng.random() < 0.3 \
                else indent + rng.choice([2, 2, 4])
            for _ in range(rng.randint(1, 3)):
                self.node(inner, depth + 1, lines, " " * inner + "-")
        else:
            lines.append(f"{prefix}{anchor}")
            inner = indent + rng.choice([1, 2, 4])
            keys = rng.sample(KEYS, rng.randint(1, 3))
            if rng.random() < 0.05:
                keys.append(keys[0])
            if self.anchors and rng.random() < 0.15:
                lines.append(" " * inner + "<<: *" + rng.choice(self.anchors))
            for key in keys:
                self.node(inner, depth + 1, lines, " " * inner + key + ":")
        if anchor:
            self.anchors.append(anchor.strip()[1:])

    def document(self) -> str:
        rng = self.rng
        lines: list[str] = ["---"] if rng.random() < 0.1 else []
        if rng.random() < 0.8:
            for key in rng.sample(KEYS, rng.randint(1, 4)):
                self.node(0, 0, lines, key + ":")
        else:
            for _ in range(rng.randint(1, 4)):
                self.node(0, 0, lines, "-")
        if rng.random() < 0.7:
            lines = compact(lines)
        for _ in range(rng.randint(0, 2)):
            lines.insert(rng.randint(0, len(lines)),
                         rng.choice(["", "# comment", "   # indented comment", "  "]))
        if rng.random() < 0.3:  # a small mutation: most make YAML libyaml refuses
            i = rng.randrange(len(lines))
            line = lines[i]
            roll = rng.random()
            if roll < 0.3:
                lines[i] = " " + line
            elif roll < 0.5 and line.startswith(" "):
                lines[i] = line[1:]
            elif line:
                j = rng.randrange(len(line))
                lines[i] = line[:j] + rng.choice(list(":#'\"-[},&* ") + [""]) + line[j + 1:]
        return finish(rng, lines)


def finish(rng: random.Random, lines: list[str]) -> str:
    """The lines as a text, now and then with trailing spaces, CRLF line ends, a
    byte-order mark or an odd character somewhere."""
    if rng.random() < 0.15 and lines:
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            lines[i] += " " * rng.randint(1, 3)
    text = "\n".join(lines) + ("\n" if rng.random() < 0.9 else "")
    if rng.random() < 0.1:
        text = text.replace("\n", "\r\n")
    if rng.random() < 0.03:
        text = "\ufeff" + text
    if rng.random() < 0.05 and text:
        j = rng.randrange(len(text))
        text = text[:j] + rng.choice(ODD) + text[j:]
    return text


def compact(lines: list[str]) -> list[str]:
    """`-` followed by a key line two columns in: joined into `- key: ...`."""
    out = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "-" and i + 1 < len(lines):
            indent = len(line) - len(line.lstrip())
            following = lines[i + 1]
            if len(following) - len(following.lstrip()) == indent + 2 and following.strip() \
                    and not following.strip().startswith("-"):
                out.append(" " * indent + "- " + following.strip())
                i += 2
                continue
        out.append(line)
        i += 1
    return out


@pytest.mark.parametrize("seed", range(8))
def test_generated_documents_read_as_libyaml_reads_them(seed: int) -> None:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _ in range(400):
        text = Generator(rng).document()
        outcome = compare(text, rng.choice([None, None, None, 2]), rng)
        seen[outcome] = seen.get(outcome, 0) + 1
    # The generator makes all three kinds: read, refused with problems, left to libyaml.
    assert set(seen) == {"ok", "problems", "declined"}, seen


# Lists of jobs as large manifests write them: the lines the fast reader's common path
# reads (`- key: value`, `key: value`, flat flow mappings), with nested blocks, and at
# most one mutation each (an odd value or character, trailing spaces, CRLF, a comment,
# a duplicate key, a line that goes on). Seeded documents in plenty, then hypothesis
# over the same grammar, derandomized (the same documents every run: the suite cannot
# fail at random) and shrinking any failure to a small document.

JOB_KEYS = ["id", "model", "input", "output", "notes", "provider", "text", "voice", "speed",
            "duration_seconds", "loop", "x"]
JOB_VALUES = ["a", "line_1", "elevenlabs/sound-effect-v2", "vo/1.mp3", "Brian", "1", "2.5",
              "-1", ".5", "1e3", "0x1F", "true", "false", "null", "~", "yes", "Steps on", "x#c",
              "it's", "'q'", "'it''s'", "'a: b'", '"d"', '"\\t"', "''", "é", "[1, 2]", "{}", "[]",
              "x # c", "'q' # c", "1 # c", "-x", "a - b", "/p", "_u", "K", "0", "-0", "+1"]
FLOW_VALUES = [v for v in JOB_VALUES if " #" not in v]  # a comment ends a line
# Values that libyaml refuses, reads as problems, or that the fast reader leaves to it.
JOB_ODD_VALUES = ["x: y", ".nan", "*nope", "&a x", "!t x", "|", ">", "- x", "x:", "@x", "{a: b",
                  "'a", "[a: b]", "{a}", "{a: 1, a: 2}", "9" * 5000, "x #c}", "{k: x #c}",
                  "{k: 'x' #c}", "{k: x, }", "{k: -x}", "{k: 'x', l: 'y'}z"]
MUTATIONS = ["value", "char", "trailing", "crlf", "comment", "duplicate", "goes_on", "blank"]
Entry = tuple[str, str, Any]  # (kind, key, what): a scalar, a flow mapping or a block


def render_jobs(step: int, dash: str, indented: bool, jobs: list[list[Entry]],
                mutation: tuple[str, int, str] | None) -> str:
    base = step if indented else 0
    col = base + len(dash)
    lines = ["version: 1", "jobs:"]
    values: list[tuple[int, int]] = []  # (line, start) of each value, for a mutation
    for job in jobs:
        for n, (kind, key, what) in enumerate(job):
            lead = " " * base + dash if n == 0 else " " * col
            if kind == "scalar":
                values.append((len(lines), len(lead) + len(key) + 2))
                lines.append(f"{lead}{key}: {what}")
            elif kind == "flow":
                pairs, sep, tail = what
                tail = tail if pairs or tail != "," else ""  # `{,}` is no mapping
                lines.append(f"{lead}{key}: {{{sep.join(f'{k}: {v}' for k, v in pairs)}{tail}}}")
            else:
                lines.append(f"{lead}{key}:")
                for inner, value in what:
                    prefix = " " * (col + step) + f"{inner}: "
                    values.append((len(lines), len(prefix)))
                    lines.append(prefix + value)
    if mutation is not None:
        kind, at, odd = mutation
        i = 2 + at % (len(lines) - 2)
        if kind == "value" and values:
            line, start = values[at % len(values)]
            lines[line] = lines[line][:start] + odd
        elif kind == "char":
            j = at % (len(lines[i]) + 1)
            lines[i] = lines[i][:j] + ODD[at % len(ODD)] + lines[i][j:]
        elif kind == "trailing":
            lines[i] += " " * (1 + at % 3)
        elif kind == "comment":
            lines.insert(i, " " * (at % (col + 3)) + "# c")
        elif kind == "duplicate":
            lines.insert(i + 1, " " * col + lines[i].strip(" -").split(":")[0] + ": d")
        elif kind == "goes_on":
            lines.insert(i + 1, " " * (col + 1) + "more")
        elif kind == "blank":
            lines.insert(i, " " * (at % 7))
    text = "\n".join(lines) + "\n"
    return text.replace("\n", "\r\n") if mutation is not None and mutation[0] == "crlf" else text


def _entry(draw: st.DrawFn) -> Entry:
    key = draw(st.sampled_from(JOB_KEYS))
    kind = draw(st.sampled_from(["scalar", "scalar", "flow", "block"]))
    if kind == "scalar":
        return kind, key, draw(st.sampled_from(JOB_VALUES))
    values = JOB_VALUES if kind == "block" else FLOW_VALUES
    pairs = draw(st.lists(st.tuples(st.sampled_from(JOB_KEYS), st.sampled_from(values)),
                          min_size=kind == "block", max_size=3, unique_by=lambda kv: kv[0]))
    if kind == "block":
        return kind, key, pairs
    return kind, key, (pairs, draw(st.sampled_from([", ", ",", " , "])),
                       draw(st.sampled_from(["", ",", " "])))


@st.composite
def job_documents(draw: st.DrawFn) -> str:
    jobs = draw(st.lists(st.lists(st.composite(_entry)(), min_size=1, max_size=4,
                                  unique_by=lambda e: e[1]), min_size=1, max_size=6))
    mutation = draw(st.none() | st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 10_000),
                                          st.sampled_from(JOB_ODD_VALUES)))
    return render_jobs(draw(st.sampled_from([2, 4])), draw(st.sampled_from(["- ", "-   "])),
                       draw(st.booleans()), jobs, mutation)


def read_both_ways(make: Callable[[random.Random], str], seed: int, documents: int,
                   caps: list[int | None]) -> tuple[dict[str, int], int]:
    """`documents` documents made by `make`, each read both ways (see compare) under a
    cap drawn from `caps`: how many ended each way, and how many items the fast reader
    read whole by a shape (fastyaml._Shape)."""
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    shaped = 0
    for _ in range(documents):
        text = make(rng)
        outcome = compare(text, rng.choice(caps), rng)
        seen[outcome] = seen.get(outcome, 0) + 1
        with contextlib.suppress(fastyaml.Declined):
            reader = fastyaml._Reader(text, None, ys.MAX_ALIASED_VALUES)
            reader.run()
            shaped += reader.shaped
    return seen, shaped


def rendered(rng: random.Random, jobs: list[list[Entry]]) -> str:
    """`jobs` in a layout drawn with `rng`, half the time with one mutation."""
    mutation = (rng.choice(MUTATIONS), rng.randrange(10_000), rng.choice(JOB_ODD_VALUES)) \
        if rng.random() < 0.5 else None
    return render_jobs(rng.choice([2, 4]), rng.choice(["- ", "-   "]), rng.random() < 0.5, jobs,
                       mutation)


def job_document(rng: random.Random) -> str:
    """A job list drawn with `rng` from the grammar of `job_documents`."""
    jobs = []
    for _ in range(rng.randint(1, 6)):
        keys = rng.sample(JOB_KEYS, rng.randint(1, 4))
        job: list[Entry] = []
        for key in keys:
            kind = rng.choice(["scalar", "scalar", "flow", "block"])
            pairs = [(k, rng.choice(JOB_VALUES if kind == "block" else FLOW_VALUES))
                     for k in rng.sample(JOB_KEYS, rng.randint(kind == "block", 3))]
            if kind == "scalar":
                job.append((kind, key, rng.choice(JOB_VALUES)))
            elif kind == "block":
                job.append((kind, key, pairs))
            else:
                job.append((kind, key, (pairs, rng.choice([", ", ",", " , "]),
                                        rng.choice(["", ",", " "]))))
        jobs.append(job)
    return rendered(rng, jobs)


@pytest.mark.parametrize("seed", range(8))
def test_lists_of_jobs_read_as_libyaml_reads_them(seed: int) -> None:
    seen, _ = read_both_ways(job_document, seed, 300, [None, None, 2, 4])
    assert set(seen) == {"ok", "problems", "declined"}, seen
    assert seen["ok"] > seen["declined"], seen  # the common path is what is tested


def alike_jobs(rng: random.Random) -> str:
    """Jobs of one shape (the same keys, kinds of value and keys inside), each with
    values of its own, sometimes one of another shape among them: what the reader takes
    a whole item at a time once it knows the shape (fastyaml._Shape)."""
    keys = rng.sample(JOB_KEYS, rng.randint(1, 4))
    kinds = [rng.choice(["scalar", "scalar", "flow", "block"]) for _ in keys]
    inner = [rng.sample(JOB_KEYS, rng.randint(kind == "block", 3)) for kind in kinds]
    sep, tail = rng.choice([", ", ",", " , "]), rng.choice(["", ",", " "])
    jobs = []
    for _ in range(rng.randint(3, 9)):
        job: list[Entry] = []
        for key, kind, names in zip(keys, kinds, inner, strict=True):
            if kind == "scalar":
                job.append((kind, key, rng.choice(JOB_VALUES)))
            elif kind == "block":
                job.append((kind, key, [(k, rng.choice(JOB_VALUES)) for k in names]))
            else:
                job.append((kind, key, ([(k, rng.choice(FLOW_VALUES)) for k in names], sep, tail)))
        if rng.random() < 0.1:
            job = job[:-1] if len(job) > 1 else [*job, ("scalar", "extra_key", "x")]
        jobs.append(job)
    return rendered(rng, jobs)


@pytest.mark.parametrize("seed", range(6))
def test_lists_of_alike_jobs_read_as_libyaml_reads_them(seed: int) -> None:
    seen, shaped = read_both_ways(alike_jobs, seed, 300, [None, None, 2, 5])
    assert set(seen) == {"ok", "problems", "declined"}, seen
    assert shaped > 100, shaped  # items were read whole, by their shape


# Values of one kind each (single-quoted, double-quoted, plain) for flat flow mappings
# alike but for their values, some with what could end a value early or change its
# type (fastyaml._FlowShape cuts the mapping at the text around the values).
FLOW_KIND_VALUES = {
    "single": ["a", "it''s", "a, b", "x: y", "', b: '", "", "é", "a # b", "{", '"q"', "}"],
    "double": ["a", "it's", "a\\tb", "a, b", '", b: "', "", "x: y", "]"],
    "plain": ["Brian", "1", "2.5", "true", "null", ".nan", "1e999", "-x", "a b", "a - b",
              "x#c", "é", "a'b", "0x1F", "9" * 30, "a ,b", "/p", "~", "a}", "1 "],
}


def alike_flow_mappings(rng: random.Random) -> str:
    keys = rng.sample(JOB_KEYS, rng.randint(1, 3))
    kinds = [rng.choice(list(FLOW_KIND_VALUES)) for _ in keys]
    sep, tail = rng.choice([", ", ",", " , ", ",  "]), rng.choice(["", ",", " ", ", "])
    quote = {"single": "'", "double": '"', "plain": ""}
    lines = ["jobs:"]
    for i in range(rng.randint(3, 8)):
        pairs = [f"{key}: {quote[kind]}{rng.choice(FLOW_KIND_VALUES[kind])}{quote[kind]}"
                 for key, kind in zip(keys, kinds, strict=True)]
        lines += [f"  - id: j{i}", f"    input: {{{sep.join(pairs)}{tail}}}" + " " * rng.randint(0, 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(4))
def test_alike_flat_flow_mappings_read_as_libyaml_reads_them(seed: int) -> None:
    rng = random.Random(seed)
    seen: dict[str, int] = {}
    for _ in range(150):
        outcome = compare(alike_flow_mappings(rng), None, rng)
        seen[outcome] = seen.get(outcome, 0) + 1
    assert seen.get("ok", 0) > 50, seen


# Words for texts that PyYAML's dump folds over lines (and quotes where it must).
DUMPED_WORDS = ["keeper", "stair", "lamp", "-", "?", "#x", "a:b", "&x", "*y", "!t", "|", ">", "[",
                "{", "'", '"', "%", "@", "1", "2.5", "true", "null", "~", "x,", "é", "---", ":"]


def dumped_jobs(rng: random.Random) -> str:
    """Jobs of one shape as PyYAML's safe_dump writes them: long texts folded at its
    width (plain where it can, quoted where it must), indentless lists."""
    plainness = rng.choice([1.0, 0.98, 0.9])
    jobs = []
    for i in range(rng.randint(3, 8)):
        words = [rng.choice(DUMPED_WORDS) if rng.random() > plainness else "word"
                 for _ in range(rng.randint(1, 40))]
        jobs.append({"id": f"line_{i}", "model": "m", "input": {
            "voice": "Brian", "text": " ".join(words)}, "notes": " ".join(words[:5])})
    return yaml.safe_dump({"version": 1, "jobs": jobs}, width=rng.randint(20, 100),
                          indent=rng.choice([2, 4]), sort_keys=False, allow_unicode=True)


@pytest.mark.parametrize("seed", range(4))
def test_manifests_dumped_by_pyyaml_read_as_libyaml_reads_them(seed: int) -> None:
    _, shaped = read_both_ways(dumped_jobs, seed, 150, [None, None, 3])
    assert shaped > 100, shaped  # texts over several lines were read by shapes too


def test_a_large_list_of_alike_jobs_is_read_an_item_at_a_time() -> None:
    head = "version: 1\nname: big\njobs:\n"
    flow = "  - id: line_N\n    model: m\n    input: {voice: Brian, text: 'Line N.'}\n"
    block = "  - id: line_N\n    model: m\n    input:\n      voice: Brian\n      text: Line N.\n\n"
    for job in (flow, block):
        text = head + "".join(job.replace("N", str(i)) for i in range(200))
        assert compare(text) == "ok"
        reader = fastyaml._Reader(text, None, ys.MAX_ALIASED_VALUES)
        reader.run()
        assert reader.shaped == 198  # the first two are read by lines, and teach the shape
        assert compare(text, 100) == "problems"  # the list over the cap, as the builder says


@settings(max_examples=500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(job_documents(), st.sampled_from([None, None, 2, 4]), st.randoms(use_true_random=False))
def test_any_list_of_jobs_reads_as_libyaml_reads_it(text: str, max_items: int | None,
                                                    rng: random.Random) -> None:
    compare(text, max_items, rng)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.randoms(use_true_random=True), st.sampled_from([None, None, 1, 2, 3]))
def test_any_generated_document_reads_as_libyaml_reads_it(rng: random.Random,
                                                          max_items: int | None) -> None:
    compare(Generator(rng).document(), max_items, rng)
