"""JSON Schemas at run time: loading them, validating against them, and
turning jsonschema's errors into sentences a person can act on.

This is the one boundary where `jsonschema` errors are translated.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.catalog.models import ModelInfo
from runner.errors import SchemaError, shown
from runner.schemas.fast import compile_schema
from runner.schemas.paths import MODEL_SCHEMAS_DIR

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

DocPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One validation failure: where (relative to the validated value) and what."""

    path: DocPath
    message: str
    at_key: bool = False  # the problem is the key itself (an unknown key)


@functools.cache
def model_schema(model: ModelInfo) -> dict[str, Any]:
    path = MODEL_SCHEMAS_DIR / f"{model.schema_name}.schema.json"
    try:
        with path.open(encoding="utf-8") as fh:
            schema: dict[str, Any] = json.load(fh)
    except FileNotFoundError:
        raise SchemaError(f"no input schema for model {model.id} at {path}: "
                          "run `runner schemas build`") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path} is not valid JSON: {exc}") from exc
    return schema


class Checker:
    """A schema's validator, with a compiled fast path for the common valid case.

    jsonschema is imported (a tenth of `runner validate`'s start-up) and its validator
    built only when the fast path cannot say yes: a valid manifest never needs it."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.fast = compile_schema(schema)
        self._validator: Draft202012Validator | None = None

    @property
    def validator(self) -> Draft202012Validator:
        if self._validator is None:
            from jsonschema import Draft202012Validator

            self._validator = Draft202012Validator(self.schema)
        return self._validator

    def is_valid(self, instance: Any) -> bool:
        if self.fast is not None and self.fast(instance):
            return True
        return bool(self.validator.is_valid(instance))

    def iter_errors(self, instance: Any) -> Iterator[ValidationError]:
        return self.validator.iter_errors(instance)  # type: ignore[no-any-return]


@functools.cache
def model_validator(model: ModelInfo) -> Checker:
    return Checker(model_schema(model))


@functools.cache
def partial_validator(model: ModelInfo) -> Checker:
    """Validates `defaults:` entries: like the model schema, nothing required."""
    schema = copy.deepcopy(model_schema(model))
    schema.pop("required", None)
    return Checker(schema)


def check(validator: Checker | Draft202012Validator, instance: Any) -> list[SchemaIssue]:
    """Every problem with `instance`; the common valid case costs one fast pass."""
    if validator.is_valid(instance):
        return []
    issues: list[SchemaIssue] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        issues.extend(_explain(error))
    return issues


def fill_defaults(model: ModelInfo, value: dict[str, Any]) -> dict[str, Any]:
    """`value` with the schema's documented defaults filled in (top level and nested objects).

    Cache keys are computed from this, so writing a default out explicitly does not
    make a job look changed.
    """
    filled: dict[str, Any] = _fill(model_schema(model), value, model_schema(model))
    return filled


def _fill(schema: dict[str, Any], value: Any, root: dict[str, Any]) -> Any:
    schema = _deref(schema, root)
    if not isinstance(value, dict):
        return value
    props = schema.get("properties", {})
    out = dict(value)
    for name, sub in props.items():
        sub = _deref(sub, root)
        if name in out:
            out[name] = _fill(sub, out[name], root)
        elif "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
    return out


def _deref(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _deref(node, root)
    return schema


def suggest(word: str, options: list[str] | tuple[str, ...] | set[str]) -> str:
    """' (did you mean 'x'?)' when a close match exists, else ''."""
    if not isinstance(word, str):
        return ""
    lowered = {str(o).lower(): str(o) for o in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f" (did you mean '{lowered[word.lower()]}'?)"
    match = difflib.get_close_matches(word, [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


_TYPE_NAMES = {
    "string": "a string", "number": "a number", "integer": "an integer",
    "boolean": "true or false", "object": "a mapping", "array": "a list", "null": "null",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{shown(value, 40)}'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _options(values: list[Any], limit: int = 25) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return f"[{shown}{more}]"


def _explain(error: ValidationError) -> Iterator[SchemaIssue]:
    path: DocPath = tuple(error.absolute_path)
    keyword = error.validator
    value = error.instance
    expected = error.validator_value
    if keyword == "additionalProperties" and isinstance(value, dict):
        known = list(error.schema.get("properties", {}))
        extra = [k for k in value if k not in known and not _pattern_match(error.schema, k)]
        for key in extra:
            hint = suggest(key, known) if len(key) < 100 else ""
            listing = f"; expected one of {_options(sorted(known))}" if known and not hint else ""
            yield SchemaIssue((*path, key), f"unknown key '{shown(key)}'{hint}{listing}",
                              at_key=True)
        return
    if keyword == "unevaluatedProperties" and isinstance(value, dict):
        known = sorted(_declared_properties(error.schema))
        for key in re.findall(r"'([^']+)'", error.message):
            if key in value and key not in known:
                yield SchemaIssue((*path, key), f"unknown key '{key}'{suggest(key, known)}",
                                  at_key=True)
        return
    if keyword == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        for key in missing:
            yield SchemaIssue(path, f"missing required key '{shown(key)}'")
        return
    if keyword in ("enum", "const"):
        options = list(expected) if keyword == "enum" else [expected]
        hint = suggest(value, [o for o in options if isinstance(o, str)]) \
            if not isinstance(value, str) or len(value) < 100 else ""
        yield SchemaIssue(path, f"{_describe(value)} is not one of {_options(options)}{hint}")
        return
    if keyword == "type":
        names = expected if isinstance(expected, list) else [expected]
        wanted = " or ".join(_TYPE_NAMES.get(str(n), str(n)) for n in names)
        yield SchemaIssue(path, f"expected {wanted}, got {_describe(value)}")
        return
    bounds = {
        "minimum": "at least {}", "maximum": "at most {}",
        "exclusiveMinimum": "more than {}", "exclusiveMaximum": "less than {}",
    }
    if keyword in bounds:
        allowed = _range_text(error.schema)
        yield SchemaIssue(path, f"{_describe(value)} is out of range: must be "
                                f"{bounds[keyword].format(expected)}{allowed}")
        return
    if keyword == "maxLength":
        yield SchemaIssue(path, f"too long: {len(value):,} characters, at most {expected:,} allowed")
        return
    if keyword == "minLength":
        yield SchemaIssue(path, f"too short: at least {expected} character(s) required")
        return
    if keyword == "pattern":
        from runner.schemas.pipeline import PATTERN_MEANING

        meaning = PATTERN_MEANING.get(str(expected))
        if meaning is not None:
            yield SchemaIssue(path, f"expected {meaning}, got {_describe(value)}")
        else:
            yield SchemaIssue(path, f"{_describe(value)} does not match the pattern "
                                    f"{shown(str(expected), 80)}")
        return
    if keyword in ("minItems", "maxItems", "minProperties", "maxProperties"):
        what = "item" if keyword.endswith("Items") else "key"
        bound = "at least" if keyword.startswith("min") else "at most"
        count = len(value) if isinstance(value, (list, dict)) else 0
        yield SchemaIssue(path, f"needs {bound} {expected} {what}{'s' if expected != 1 else ''}"
                                f", has {count}")
        return
    if keyword == "oneOf":
        yield from _explain_one_of(error, path)
        return
    if keyword == "propertyNames" and isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or not _key_refused(error.validator_value, key):
                continue
            options = error.validator_value.get("enum")
            if options:
                yield SchemaIssue((*path, key), f"'{shown(key)}' is not one of "
                                  f"{_options(options)}{suggest(key, options)}", at_key=True)
            else:
                yield SchemaIssue((*path, key), f"key '{shown(key)}' is not allowed here: "
                                  f"{_key_rule(error.validator_value)}", at_key=True)
        return
    # Anything else: jsonschema's own words, which quote the value: keep them short.
    yield SchemaIssue(path, shown(error.message, 200))


def _key_rule(schema: dict[str, Any]) -> str:
    from runner.schemas.pipeline import PATTERN_MEANING

    rules = []
    if "pattern" in schema:
        rules.append(PATTERN_MEANING.get(schema["pattern"], f"matching {schema['pattern']}"))
    if "maxLength" in schema:
        rules.append(f"at most {schema['maxLength']} characters")
    return "expected " + ", ".join(rules) if rules else "refused by the schema"


def _key_refused(schema: Any, key: str) -> bool:
    from jsonschema import Draft202012Validator

    return not Draft202012Validator(schema).is_valid(key) if isinstance(schema, dict) else False


def _explain_one_of(error: ValidationError, path: DocPath) -> Iterator[SchemaIssue]:
    """`oneOf` in words: which keys conflict, which are missing, or what the
    alternative of the value's own type says. Never the schema itself."""
    value = error.instance
    branches: list[Any] = list(error.validator_value)
    keys = [b["required"][0] for b in branches
            if isinstance(b, dict) and len(b.get("required", [])) == 1]
    if isinstance(value, dict) and keys:
        present = [k for k in keys if k in value]
        listed = ", ".join(f"'{k}'" for k in keys)
        if len(present) > 1:
            yield SchemaIssue((*path, present[1]), f"give one of {listed}, not both "
                              f"'{present[0]}' and '{present[1]}'", at_key=True)
            return
        if not present:
            yield SchemaIssue(path, f"needs one of {listed}")
            return
    # The alternative meant for the value's type explains the problem best.
    fitting = [i for i, b in enumerate(branches)
               if isinstance(b, dict) and _fits_type(b.get("type"), value)]
    if fitting:
        inner = [e for e in error.context or () if e.relative_schema_path
                 and e.relative_schema_path[0] in fitting]
        if len(fitting) > 1 and isinstance(value, dict):
            inner = [e for e in inner if e.validator != "required"] or inner
        if inner:
            best = max(inner, key=lambda e: len(e.absolute_path))
            yield from _explain(best)
            return
    kinds = [b.get("type") for b in branches if isinstance(b, dict) and b.get("type")]
    wanted = " or ".join(dict.fromkeys(_TYPE_NAMES.get(str(k), str(k)) for k in kinds))
    yield SchemaIssue(path, f"expected {wanted or 'another form'}, got {_describe(value)}")


def _fits_type(kind: Any, value: Any) -> bool:
    checks = {"object": isinstance(value, dict), "array": isinstance(value, list),
              "string": isinstance(value, str)}
    return bool(checks.get(str(kind), False))


def _range_text(schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f" (allowed {low}–{high})"
    return ""


def _declared_properties(schema: dict[str, Any]) -> set[str]:
    """Property names a schema declares directly or through allOf/anyOf/oneOf branches."""
    names = set(schema.get("properties", {}))
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword, []):
            if isinstance(branch, dict):
                names |= _declared_properties(branch)
    return names


def _pattern_match(schema: dict[str, Any], key: str) -> bool:
    return any(re.search(p, key) for p in schema.get("patternProperties", {}))
