"""A fast yes/no check for the simple JSON Schemas of model inputs and manifests.

`jsonschema` takes ~50 µs per job input, which was most of the time of
`runner validate` on a 10,000-job manifest. Model input schemas and the
manifest's structure use a small set of keywords, so they compile here into
plain Python: one generated function per subschema, with the checks written out
(`isinstance`, comparisons, a dict of property checks), which runs several
times faster than a tree of closures. The predicate only answers "certainly
valid"; anything it cannot decide, and every invalid input, goes to jsonschema,
which stays the single source of error messages. Schemas with keywords outside
the supported set are not compiled at all.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]

_ANNOTATIONS = {
    "$schema", "$id", "$comment", "title", "description", "default", "examples",
    "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding", "format",
}
_SUPPORTED = _ANNOTATIONS | {
    "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minLength", "maxLength", "pattern", "properties", "required", "additionalProperties",
    "items", "minItems", "maxItems", "minProperties", "maxProperties", "propertyNames",
    "oneOf", "anyOf", "allOf", "$ref", "$defs",
}
# Each JSON type as a Python expression on `v` (an integer may be written 2.0).
_TYPES = {
    "string": "isinstance(v, str)",
    "boolean": "isinstance(v, bool)",
    "null": "v is None",
    "object": "isinstance(v, dict)",
    "array": "isinstance(v, list)",
    "integer": "((isinstance(v, int) and not isinstance(v, bool))"
               " or (isinstance(v, float) and v.is_integer()))",
    "number": "(isinstance(v, (int, float)) and not isinstance(v, bool))",
}
_NUMBER = "isinstance(v, (int, float)) and not isinstance(v, bool)"
_BOUNDS = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


class _Unsupported(Exception):
    pass


def compile_schema(schema: dict[str, Any]) -> Predicate | None:
    """A predicate that is True only for instances `schema` accepts, or None if the
    schema uses anything this module does not understand."""
    try:
        return _Generator(schema).build()
    except _Unsupported:
        return None


class _Generator:
    """Writes one schema document as Python source; local `$ref`s resolve against its
    root (a recursive one is a call to a function defined in the same source)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.source: list[str] = []
        self.names: dict[int, str] = {}  # id(subschema) -> its function's name
        self.constants: dict[str, Any] = {}
        self.keep: list[Any] = []  # the subschemas named above stay alive (ids stay unique)
        self.tables: list[str] = []  # written after the functions they name
        self.bodies: dict[tuple[str, ...], str] = {}  # one function per distinct body

    def build(self) -> Predicate:
        entry = self.function(self.root)
        namespace: dict[str, Any] = dict(self.constants)
        source = "\n".join([*self.source, *self.tables])
        exec(compile(source, "<runner.schemas.fast>", "exec"), namespace)  # noqa: S102
        predicate: Predicate = namespace[entry]
        return predicate

    def constant(self, value: Any) -> str:
        name = f"c{len(self.constants)}"
        self.constants[name] = value
        return name

    def function(self, schema: Any) -> str:
        """The name of the function that checks `schema` (written once)."""
        key = id(schema)
        if key in self.names:
            return self.names[key]
        name = f"v{len(self.names)}"
        self.names[key] = name
        self.keep.append(schema)
        body = tuple(self.body(schema))
        same = self.bodies.setdefault(body, name)
        if same != name:  # the same checks as a function already written
            self.source.append(f"{name} = {same}")
        else:
            self.source += [f"def {name}(v):", *("    " + line for line in body), ""]
        return name

    def ref(self, ref: Any) -> str:
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise _Unsupported
        node: Any = self.root
        for part in ref[2:].split("/"):
            if not isinstance(node, dict) or part not in node:
                raise _Unsupported
            node = node[part]
        return self.function(node)

    def body(self, schema: Any) -> list[str]:
        """The function's lines: what must hold of `v` as one expression, then the
        statements that walk a mapping's or a list's items."""
        if schema is True:
            return ["return True"]
        if schema is False:
            return ["return False"]
        if not isinstance(schema, dict) or set(schema) - _SUPPORTED:
            raise _Unsupported
        conditions: list[str] = []
        if "$ref" in schema:
            conditions.append(f"{self.ref(schema['$ref'])}(v)")
        for keyword in ("oneOf", "anyOf", "allOf"):
            if keyword in schema:
                conditions.append(self.combined(keyword, schema[keyword]))
        known = None  # the one type the value has once the conditions so far hold
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if any(n not in _TYPES for n in names):
                raise _Unsupported
            conditions.append(f"({' or '.join(_TYPES[n] for n in names)})")
            known = names[0] if len(names) == 1 else None
        if "enum" in schema:
            conditions.append(self.options(schema["enum"], known))
        if "const" in schema:
            conditions.append(self.options([schema["const"]], known))
        for keyword, operator in _BOUNDS.items():
            if keyword in schema:
                bound = self.constant(schema[keyword])
                conditions.append(f"v {operator} {bound}" if known in ("number", "integer")
                                  else f"(not ({_NUMBER}) or v {operator} {bound})")
        conditions += self.string(schema, known == "string")
        block = self.object(schema, known == "object") + self.array(schema)
        test = " and ".join(conditions) or "True"
        if not block:
            return [f"return {test}"]
        head = [f"if not ({test}): return False"] if conditions else []
        return [*head, *block, "return True"]

    def combined(self, keyword: str, branches: Any) -> str:
        if not isinstance(branches, list) or not branches:
            raise _Unsupported
        calls = [f"{self.function(branch)}(v)" for branch in branches]
        if keyword == "oneOf":  # every branch is asked, as jsonschema does
            return f"({' + '.join(calls)}) == 1"
        return f"({' or '.join(calls) if keyword == 'anyOf' else ' and '.join(calls)})"

    def options(self, options: Any, known: str | None) -> str:
        """`enum` (or `const`): the value is one of `options`. Booleans, floats and
        containers are left to jsonschema (1 == True == 1.0 subtleties)."""
        if not isinstance(options, list) \
                or any(isinstance(o, (bool, float, dict, list)) for o in options):
            raise _Unsupported
        allowed = self.constant(frozenset(options))
        if known in ("string", "null"):  # neither a bool, a float nor a container
            return f"v in {allowed}"
        return f"(not isinstance(v, (bool, float, dict, list)) and v in {allowed})"

    def string(self, schema: dict[str, Any], known: bool) -> list[str]:
        checks = []
        if "minLength" in schema:
            checks.append(f"len(v) >= {int(schema['minLength'])}")
        if "maxLength" in schema:  # JSON Schema counts code points, as len() does
            checks.append(f"len(v) <= {int(schema['maxLength'])}")
        if "pattern" in schema:
            regex = self.constant(re.compile(schema["pattern"]))
            checks.append(f"{regex}.search(v) is not None")
        if not checks or known:
            return checks
        return [f"(not isinstance(v, str) or ({' and '.join(checks)}))"]

    def object(self, schema: dict[str, Any], known: bool) -> list[str]:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        names = schema.get("propertyNames")
        low = schema.get("minProperties", 0)
        high = schema.get("maxProperties")
        if not isinstance(props, dict) or not isinstance(required, list):
            raise _Unsupported
        if not (props or required or extra is not True or names is not None or low
                or high is not None):
            return []
        lines = ["if isinstance(v, dict):"]  # dropped below when `v` is known to be one
        if low:
            lines.append(f"    if len(v) < {int(low)}: return False")
        if high is not None:
            lines.append(f"    if len(v) > {int(high)}: return False")
        for name in required:
            lines.append(f"    if {self.constant(name)} not in v: return False")
        # What checks a key's value: its property's function, else the one for other
        # keys (None: anything goes; False: no other key may be there).
        other = None if extra is True else "False" if extra is False else self.function(extra)
        check_names = self.function(names) if names is not None else None
        if not props and other is None and check_names is None:
            return _unwrapped(lines) if known else lines
        lines.append("    for key, item in v.items():")
        if check_names is not None:
            lines.append(f"        if not {check_names}(key): return False")
        if props:
            table = self.table({key: self.function(sub) for key, sub in props.items()})
            lines.append(f"        check = {table}.get(key)")
            if other is not None:
                lines.append("        if check is None:")
                lines.append("            return False" if other == "False"
                             else f"            check = {other}")
                lines.append("        if not check(item): return False")
            else:
                lines.append("        if check is not None and not check(item): return False")
        elif other == "False":
            lines.append("        return False")
        elif other is not None:
            lines.append(f"        if not {other}(item): return False")
        return _unwrapped(lines) if known else lines

    def table(self, functions: dict[str, str]) -> str:
        """A dict of property name -> function, filled once every function is defined."""
        name = f"t{len(self.tables)}"
        pairs = ", ".join(f"{key!r}: {function}" for key, function in functions.items())
        self.tables.append(f"{name} = {{{pairs}}}")
        return name

    def array(self, schema: dict[str, Any]) -> list[str]:
        lines = []
        checks = []
        if "minItems" in schema:
            checks.append(f"len(v) < {int(schema['minItems'])}")
        if "maxItems" in schema:
            checks.append(f"len(v) > {int(schema['maxItems'])}")
        if checks:
            lines.append(f"if isinstance(v, list) and ({' or '.join(checks)}): return False")
        if "items" in schema:
            item = self.function(schema["items"])
            lines += ["if isinstance(v, list):",
                      "    for item in v:",
                      f"        if not {item}(item): return False"]
        return lines


def _unwrapped(lines: list[str]) -> list[str]:
    """The lines under an `if isinstance(v, dict):` that always holds, dedented."""
    return [line[4:] for line in lines[1:]]
