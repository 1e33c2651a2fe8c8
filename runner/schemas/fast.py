"""A fast yes/no check for the simple JSON Schemas of model inputs.

`jsonschema` takes ~50 µs per job input, which is most of the time of
`runner validate` on a 10,000-job manifest. Model input schemas use a small set
of keywords, so they compile into plain Python predicates here. The predicate
only answers "certainly valid"; anything it cannot decide, and every invalid
input, goes to jsonschema, which stays the single source of error messages.
Schemas with keywords outside the supported set are not compiled at all.
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
_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "integer": lambda v: (isinstance(v, int) and not isinstance(v, bool))
    or (isinstance(v, float) and v.is_integer()),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}


class _Unsupported(Exception):
    pass


def compile_schema(schema: dict[str, Any]) -> Predicate | None:
    """A predicate that is True only for instances `schema` accepts, or None if the
    schema uses anything this module does not understand."""
    try:
        return _Compiler(schema).compile(schema)
    except _Unsupported:
        return None


class _Compiler:
    """Compiles one schema document; local `$ref`s resolve against its root."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, Predicate] = {}

    def compile(self, schema: Any) -> Predicate:
        return _compile(schema, self)

    def ref(self, ref: str) -> Predicate:
        if not ref.startswith("#/"):
            raise _Unsupported
        if ref not in self.refs:
            # Late binding: a recursive $ref compiles to a call through this table.
            self.refs[ref] = lambda v: True
            node: Any = self.root
            for part in ref[2:].split("/"):
                if not isinstance(node, dict) or part not in node:
                    raise _Unsupported
                node = node[part]
            compiled = self.compile(node)
            self.refs[ref] = compiled
        table = self.refs
        return lambda v: table[ref](v)


def _compile(schema: Any, compiler: _Compiler) -> Predicate:
    if schema is True:
        return lambda v: True
    if schema is False:
        return lambda v: False
    if not isinstance(schema, dict) or set(schema) - _SUPPORTED:
        raise _Unsupported
    checks: list[Predicate] = []
    if "$ref" in schema:
        checks.append(compiler.ref(schema["$ref"]))
    for keyword in ("oneOf", "anyOf", "allOf"):
        if keyword in schema:
            checks.append(_combine(keyword, [compiler.compile(sub) for sub in schema[keyword]]))
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if any(n not in _TYPES for n in names):
            raise _Unsupported
        tests = [_TYPES[n] for n in names]
        checks.append(lambda v: any(t(v) for t in tests))
    if "enum" in schema:
        options = schema["enum"]
        if any(isinstance(o, (bool, float, dict, list)) for o in options):
            raise _Unsupported  # 1 == True == 1.0 subtleties: leave them to jsonschema
        checks.append(lambda v: not isinstance(v, (bool, float)) and v in options)
    if "const" in schema:
        const = schema["const"]
        if isinstance(const, (bool, float, dict, list)):
            raise _Unsupported
        checks.append(lambda v: not isinstance(v, (bool, float)) and v == const)
    _numeric(schema, checks)
    _string(schema, checks)
    _object(schema, checks, compiler)
    _array(schema, checks, compiler)
    if len(checks) == 1:
        return checks[0]
    return lambda v: all(check(v) for check in checks)


def _combine(keyword: str, parts: list[Predicate]) -> Predicate:
    if keyword == "oneOf":
        return lambda v: sum(1 for p in parts if p(v)) == 1
    if keyword == "anyOf":
        return lambda v: any(p(v) for p in parts)
    return lambda v: all(p(v) for p in parts)


def _bounded(ok: Callable[[Any, Any], bool], bound: Any) -> Predicate:
    return lambda v: not _is_number(v) or ok(v, bound)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric(schema: dict[str, Any], checks: list[Predicate]) -> None:
    bounds: list[tuple[str, Callable[[Any, Any], bool]]] = [
        ("minimum", lambda v, b: v >= b), ("maximum", lambda v, b: v <= b),
        ("exclusiveMinimum", lambda v, b: v > b), ("exclusiveMaximum", lambda v, b: v < b),
    ]
    for keyword, ok in bounds:
        if keyword in schema:
            checks.append(_bounded(ok, schema[keyword]))


def _string(schema: dict[str, Any], checks: list[Predicate]) -> None:
    if "minLength" in schema:
        low = schema["minLength"]
        checks.append(lambda v: not isinstance(v, str) or len(v) >= low)
    if "maxLength" in schema:
        high = schema["maxLength"]
        # JSON Schema counts code points, as Python's len() does.
        checks.append(lambda v: not isinstance(v, str) or len(v) <= high)
    if "pattern" in schema:
        regex = re.compile(schema["pattern"])
        checks.append(lambda v: not isinstance(v, str) or regex.search(v) is not None)


def _object(schema: dict[str, Any], checks: list[Predicate], compiler: _Compiler) -> None:
    props = {name: compiler.compile(sub) for name, sub in schema.get("properties", {}).items()}
    required = list(schema.get("required", []))
    extra_schema = schema.get("additionalProperties", True)
    extra = None if extra_schema is True else compiler.compile(extra_schema)
    names = compiler.compile(schema["propertyNames"]) if "propertyNames" in schema else None
    low = schema.get("minProperties", 0)
    high = schema.get("maxProperties")

    def check_object(v: Any) -> bool:
        if not isinstance(v, dict):
            return True
        if len(v) < low or (high is not None and len(v) > high):
            return False
        for name in required:
            if name not in v:
                return False
        for key, value in v.items():
            if names is not None and not names(key):
                return False
            test = props.get(key, extra)
            if test is not None and not test(value):
                return False
        return True

    if props or required or extra is not None or names is not None or low or high is not None:
        checks.append(check_object)


def _array(schema: dict[str, Any], checks: list[Predicate], compiler: _Compiler) -> None:
    if "items" in schema:
        item = compiler.compile(schema["items"])
        checks.append(lambda v: not isinstance(v, list) or all(item(x) for x in v))
    if "minItems" in schema:
        low = schema["minItems"]
        checks.append(lambda v: not isinstance(v, list) or len(v) >= low)
    if "maxItems" in schema:
        high = schema["maxItems"]
        checks.append(lambda v: not isinstance(v, list) or len(v) <= high)
