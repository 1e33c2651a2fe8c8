"""The compiled fast path never accepts what jsonschema rejects."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from runner.catalog.models import MODELS
from runner.schemas.fast import compile_schema
from runner.schemas.pipeline import structure_schema
from runner.schemas.validate import model_schema

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=False, width=32),
    st.sampled_from([0.4, 0.5, 22, 22.1, 1.2, 1.3, 47, 48, 1000, 1001, 1.0, 0, -1]),
    st.text(max_size=8), st.sampled_from(["Rachel", "Rachl", "mp3_44100_128", "x" * 5001]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


@functools.cache
def compiled(model_id: str) -> tuple[Any, Draft202012Validator]:
    schema = model_schema(MODELS[model_id])
    return compile_schema(schema), Draft202012Validator(schema)


def mutations(schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects built from the schema's own property names, with values of any shape."""
    names = sorted(schema.get("properties", {})) + ["unknown_key"]
    return st.dictionaries(st.sampled_from(names), VALUES | SCALARS, max_size=6)


@pytest.mark.parametrize("model_id", sorted(MODELS))
@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_fast_path_is_sound_for_model_schemas(model_id: str, data: st.DataObject) -> None:
    fast, validator = compiled(model_id)
    if fast is None:
        pytest.skip(f"{model_id}: schema uses keywords the fast path leaves to jsonschema")
    instance = data.draw(mutations(model_schema(MODELS[model_id])))
    if fast(instance):
        assert validator.is_valid(instance), instance


STRUCTURE = (compile_schema(structure_schema()), Draft202012Validator(structure_schema()))


@settings(max_examples=150, deadline=None)
@given(job=st.dictionaries(st.sampled_from(
    ["id", "model", "input", "output", "variants", "matrix", "audio", "narration", "freeze",
     "bogus"]), VALUES | SCALARS, max_size=6))
def test_fast_path_is_sound_for_the_pipeline_schema(job: dict[str, Any]) -> None:
    fast, validator = STRUCTURE
    assert fast is not None, "the manifest schema should compile"
    doc = {"version": 1, "name": "t", "jobs": [job]}
    if fast(doc):
        assert validator.is_valid(doc), doc


def test_fast_path_accepts_typical_valid_input() -> None:
    schema = model_schema(MODELS["elevenlabs/sound-effect-v2"])
    fast = compile_schema(schema)
    assert fast is not None
    assert fast({"text": "door", "duration_seconds": 2.5, "loop": True})
    assert not fast({"text": "door", "duration_seconds": 22.1})
    assert not fast({"text": "door", "loop": "yes"})
    assert not fast({"text": "door", "durration_seconds": 2})


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"not": {"type": "string"}}}},
    {"if": {"type": "string"}, "then": {"minLength": 2}},
    {"enum": [1.5, True]},
])
def test_unsupported_keywords_are_left_to_jsonschema(schema: dict[str, Any]) -> None:
    assert compile_schema(schema) is None
