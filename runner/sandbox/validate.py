"""Request validation as the real services do it, independent of the runner's schemas.

Each API renders problems its own way (market body code 422, AI/ML API 400
"Body validation error!", ElevenLabs FastAPI 422), but the checks are the same
small rule set, written once here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str  # string | number | integer | boolean | array | object
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    min_length: int | None = None
    enum: tuple[Any, ...] | None = None
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Issue:
    loc: tuple[str | int, ...]
    msg: str
    type: str
    expected: str = ""
    received: str = ""


_PY = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,),
       "array": (list,), "object": (dict,)}


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object", type(None): "null"}.get(type(value), type(value).__name__)


def check(body: Mapping[str, Any], rules: Mapping[str, Rule], loc: tuple[str | int, ...] = ()
          ) -> list[Issue]:
    """Every problem of `body` against `rules`; unknown fields are ignored, as upstream does."""
    issues: list[Issue] = []
    for name, rule in rules.items():
        where = (*loc, name)
        if name not in body:
            if rule.required:
                issues.append(Issue(where, "field required", "value_error.missing", rule.kind,
                                    "undefined"))
            continue
        value = body[name]
        if value is None and (rule.nullable or not rule.required):
            continue
        wrong_type = not isinstance(value, _PY[rule.kind]) or (
            isinstance(value, bool) and rule.kind in ("number", "integer"))
        if rule.kind == "integer" and isinstance(value, float) and value.is_integer():
            wrong_type = False
        if wrong_type:
            issues.append(Issue(where, f"value is not a valid {rule.kind}",
                                f"type_error.{rule.kind}", rule.kind, _type_name(value)))
            continue
        if rule.enum is not None and value not in rule.enum:
            allowed = ", ".join(repr(v) for v in rule.enum)
            issues.append(Issue(where, f"value is not a valid enumeration member; permitted: "
                                f"{allowed}", "type_error.enum", f"one of {allowed}", repr(value)))
        if rule.minimum is not None and value < rule.minimum:
            issues.append(Issue(where, f"ensure this value is greater than or equal to "
                                f"{rule.minimum:g}", "value_error.number.not_ge",
                                f">= {rule.minimum:g}", repr(value)))
        if rule.maximum is not None and value > rule.maximum:
            issues.append(Issue(where, f"ensure this value is less than or equal to "
                                f"{rule.maximum:g}", "value_error.number.not_le",
                                f"<= {rule.maximum:g}", repr(value)))
        if rule.max_length is not None and len(value) > rule.max_length:
            issues.append(Issue(where, f"ensure this value has at most {rule.max_length} "
                                f"characters", "value_error.any_str.max_length",
                                f"at most {rule.max_length}", f"{len(value)}"))
        if rule.min_length is not None and len(value) < rule.min_length:
            issues.append(Issue(where, f"ensure this value has at least {rule.min_length} "
                                f"characters", "value_error.any_str.min_length",
                                f"at least {rule.min_length}", f"{len(value)}"))
    return issues


def describe(issue: Issue) -> str:
    return f"{'.'.join(str(p) for p in issue.loc)}: {issue.msg}"
