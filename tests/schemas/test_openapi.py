"""The provider OpenAPI documents, and the model input schemas derived from them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from runner.catalog.models import MODELS
from runner.errors import SchemaError
from runner.schemas.openapi import (
    DIALECT,
    derive_model_schemas,
    render,
    stale_model_schemas,
    write_model_schemas,
)
from runner.schemas.paths import MODEL_SCHEMAS_DIR, OPENAPI_DIR

Json = dict[str, Any]


@pytest.fixture(scope="module")
def derived() -> dict[str, Json]:
    return derive_model_schemas(OPENAPI_DIR)


def validator(derived: dict[str, Json], model: str) -> Draft202012Validator:
    return Draft202012Validator(derived[MODELS[model].schema_name])


def errors(derived: dict[str, Json], model: str, instance: Json) -> list[tuple[str, list[Any]]]:
    """(keyword, path) of every validation error."""
    found = validator(derived, model).iter_errors(instance)
    return [(str(e.validator), list(e.absolute_path)) for e in found]


# --- the checked-in files ---------------------------------------------------


def test_checked_in_schemas_match_a_fresh_derivation() -> None:
    stale = stale_model_schemas(OPENAPI_DIR, MODEL_SCHEMAS_DIR)
    assert not stale, (
        "schemas/models/ differs from the OpenAPI documents; run `runner schemas build`:\n  "
        + "\n  ".join(stale)
    )


def test_every_model_has_a_schema(derived: dict[str, Json]) -> None:
    for model in MODELS.values():
        assert model.schema_name in derived, f"no OpenAPI operation has x-runner-model: {model.id}"
        assert derived[model.schema_name]["title"] == model.id
        assert (MODEL_SCHEMAS_DIR / f"{model.schema_name}.schema.json").is_file()
    assert set(derived) == {m.schema_name for m in MODELS.values()}


def test_every_schema_is_a_closed_draft_2020_12_schema(derived: dict[str, Json]) -> None:
    for stem, schema in derived.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == DIALECT
        assert schema["$id"].endswith(f"/{stem}.schema.json")
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        assert "runner's addition" in schema["description"]


def _nodes(node: Any) -> Iterator[Json]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_enum_values_and_defaults_satisfy_their_own_schema(derived: dict[str, Json]) -> None:
    # Catches YAML 1.1 surprises (bare `on`/`off` read as booleans) and defaults
    # outside their documented range.
    for stem, schema in derived.items():
        root = Draft202012Validator(schema)
        for node in _nodes(schema.get("properties", {})):
            if "type" not in node:
                continue
            for value in [*node.get("enum", []), *([node["default"]] if "default" in node else [])]:
                assert root.evolve(schema=node).is_valid(value), f"{stem}: {value!r} vs {node}"


def test_output_is_deterministic(derived: dict[str, Json]) -> None:
    again = derive_model_schemas(OPENAPI_DIR)
    assert [render(s) for s in again.values()] == [render(s) for s in derived.values()]
    text = render(derived["stable-audio"])
    assert text.endswith("}\n") and '\n  "$id"' in text


# --- the OpenAPI documents ---------------------------------------------------


def _load(path: Path) -> Json:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _refs(node: Any, at: str = "#") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield at, node["$ref"]
        for key, value in node.items():
            if key not in ("example", "examples"):  # examples are data, not schema
                yield from _refs(value, f"{at}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{at}/{i}")


DOCUMENTS = sorted(OPENAPI_DIR.rglob("*.yaml"))


def test_the_expected_documents_exist() -> None:
    names = {p.relative_to(OPENAPI_DIR).as_posix() for p in DOCUMENTS}
    assert names == {
        "market/common.yaml",
        "market/elevenlabs-text-to-speech-turbo-2-5.yaml",
        "market/elevenlabs-sound-effect-v2.yaml",
        "market/elevenlabs-speech-to-text.yaml",
        "aimlapi/stable-audio.yaml",
        "elevenlabs/elevenlabs.yaml",
    }


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(OPENAPI_DIR).as_posix())
def test_document_parses_and_every_ref_resolves(path: Path) -> None:
    doc = _load(path)
    assert str(doc["openapi"]).startswith("3.0.")
    assert doc["info"]["title"] and doc["info"]["version"]
    for at, ref in _refs(doc):
        file, _, pointer = ref.partition("#")
        target: Any = _load(path.parent / file) if file else doc
        for part in pointer.lstrip("/").split("/"):
            assert isinstance(target, dict) and part in target, f"{path.name} {at}: {ref}"
            target = target[part]
    for item in doc["paths"].values():
        for method, operation in item.items():
            if method in ("get", "post", "put", "delete", "patch"):
                assert operation["operationId"] and operation["responses"], f"{method} {item}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(OPENAPI_DIR).as_posix())
def test_document_enums_have_their_declared_type(path: Path) -> None:
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str, "integer": int, "number": (int, float), "boolean": bool,
    }
    for node in _nodes(_load(path)):
        kind = kinds.get(node["type"]) if isinstance(node.get("type"), str) else None
        if kind is None:
            continue
        for value in node.get("enum", []):
            assert value is None or (
                isinstance(value, kind) and isinstance(value, bool) == (node["type"] == "boolean")
            ), f"{path.name}: enum value {value!r} is not a {node['type']}"


# --- the provider docs' own examples -------------------------------------------

TTS_TEXT = (
    "Unlock powerful API with Kie.ai! Affordable, scalable APl integration, free trial "
    "playground, and secure, reliable performance."
)
GOOD_EXAMPLES: list[tuple[str, Json]] = [
    # kie.ai's TTS page (https://kie.ai/elevenlabs-tts): the cURL request and the callback's
    # param.
    ("elevenlabs/text-to-speech-turbo-2-5", {
        "text": TTS_TEXT, "voice": "Rachel", "stability": 0.5, "similarity_boost": 0.75,
        "style": 0, "speed": 1, "timestamps": False,
    }),
    ("elevenlabs/text-to-speech-turbo-2-5", {
        "text": TTS_TEXT, "voice": "Rachel", "stability": 0.5, "similarity_boost": 0.75,
        "style": 0, "speed": 1, "timestamps": False, "previous_text": "", "next_text": "",
        "language_code": "",
    }),
    # apikley's sound-effect-v2 OpenAPI request example, and the callback's param.
    ("elevenlabs/sound-effect-v2", {
        "text": "", "loop": False, "prompt_influence": 0.3, "output_format": "mp3_44100_128",
    }),
    ("elevenlabs/sound-effect-v2", {"text": "Glass shattering", "duration_seconds": 22}),
    # apikley's speech-to-text OpenAPI request example.
    ("elevenlabs/speech-to-text", {
        "audio_url": "https://file.aiquickdraw.com/custom-page/akr/section-images/"
        "1757157053357tn37vxc8.mp3",
        "language_code": "", "tag_audio_events": True, "diarize": True,
    }),
    # aimlapi: the JS example and the cURL body, without `model`.
    ("stable-audio", {"prompt": "lo-fi pop hip-hop ambient music", "steps": 100,
                      "seconds_total": 10}),
    ("stable-audio", {"prompt": "text", "seconds_total": 30, "steps": 100}),
    # ElevenLabs "Create speech" cURL: path, query and body in one input.
    ("text-to-speech", {
        "voice_id": "JBFqnCBsd6RMkjVDRZzb", "output_format": "mp3_44100_128",
        "text": "The first move is what sets everything in motion.",
        "model_id": "eleven_multilingual_v2",
    }),
    ("text-to-speech-with-timestamps", {
        "voice_id": "JBFqnCBsd6RMkjVDRZzb", "text": "Hello.", "output_format": "wav_44100",
        "voice_settings": {"stability": 0.5, "similarity_boost": 0.75, "speed": 1.1},
        "previous_request_ids": ["a", "b", "c"], "seed": 4294967295,
        "apply_text_normalization": "off",
    }),
    # ElevenLabs "Create sound effect" cURL; 30 s is the SDK's wider maximum.
    ("sound-generation", {"text": "Spacious braam suitable for high-impact movie trailer moments"}),
    ("sound-generation", {"text": "Rain", "duration_seconds": 30, "output_format": "pcm_48000"}),
    ("sound-generation", {"text": "Rain", "duration_seconds": None, "loop": True}),
    # SDK speech_to_text example (model_id="scribe_v2", file=...), with export formats.
    ("speech-to-text", {
        "model_id": "scribe_v2", "file": "interview.mp3", "diarize": True, "num_speakers": 2,
        "additional_formats": [{"format": "srt", "max_characters_per_line": 42},
                               {"format": "docx", "include_speakers": True}],
        "entity_detection": ["pii", "phi"], "language_code": None,
    }),
]


@pytest.mark.parametrize(("model", "instance"), GOOD_EXAMPLES, ids=lambda v: str(v)[:40])
def test_documented_examples_validate(derived: dict[str, Json], model: str, instance: Json) -> None:
    assert errors(derived, model, instance) == []


BAD_INPUTS: list[tuple[str, Json, str, list[Any]]] = [
    ("elevenlabs/sound-effect-v2", {"text": "x", "duration_seconds": 0.4}, "minimum",
     ["duration_seconds"]),
    ("elevenlabs/sound-effect-v2", {"text": "x", "duration_seconds": 22.1}, "maximum",
     ["duration_seconds"]),
    # kie.ai's markdown example sends 42 although the same page says 0.5-22.
    ("elevenlabs/sound-effect-v2", {"text": "x", "duration_seconds": 42}, "maximum",
     ["duration_seconds"]),
    # kie.ai's web page example sends no text although text is required.
    ("elevenlabs/sound-effect-v2", {"loop": False, "prompt_influence": 0.3}, "required", []),
    ("elevenlabs/sound-effect-v2", {"text": "x" * 5001}, "maxLength", ["text"]),
    ("elevenlabs/sound-effect-v2", {"text": "x", "durationSeconds": 3}, "additionalProperties", []),
    ("elevenlabs/sound-effect-v2", {"text": "x", "output_format": "wav_44100"}, "enum",
     ["output_format"]),
    ("elevenlabs/sound-effect-v2", {"text": "x", "duration_seconds": None}, "type",
     ["duration_seconds"]),
    ("elevenlabs/text-to-speech-turbo-2-5", {"text": "x", "speed": 1.3}, "maximum", ["speed"]),
    ("elevenlabs/text-to-speech-turbo-2-5", {"text": "x" * 5001}, "maxLength", ["text"]),
    ("elevenlabs/text-to-speech-turbo-2-5", {"text": "x", "voice": "Rachl"}, "enum", ["voice"]),
    ("elevenlabs/text-to-speech-turbo-2-5", {"text": "x", "voice": "rachel"}, "enum", ["voice"]),
    ("elevenlabs/text-to-speech-turbo-2-5", {"text": "x", "stability": 1.01}, "maximum",
     ["stability"]),
    ("elevenlabs/speech-to-text", {"language_code": ""}, "required", []),
    ("stable-audio", {"prompt": "x", "steps": 0}, "minimum", ["steps"]),
    ("stable-audio", {"prompt": "x", "seconds_total": 48}, "maximum", ["seconds_total"]),
    ("stable-audio", {"prompt": "x", "seconds_total": 10.5}, "type", ["seconds_total"]),
    ("stable-audio", {"prompt": "x", "model": "stable-audio"}, "additionalProperties", []),
    ("text-to-speech", {"text": "x"}, "required", []),
    ("text-to-speech", {"text": "x", "voice_id": "v", "voice_settings": {"stabilty": 0.5}},
     "additionalProperties", ["voice_settings"]),
    ("text-to-speech", {"text": "x", "voice_id": "v", "output_format": "mp3"}, "enum",
     ["output_format"]),
    ("text-to-speech", {"text": "x", "voice_id": "v", "previous_request_ids": ["a"] * 4},
     "maxItems", ["previous_request_ids"]),
    ("text-to-speech", {"text": "x", "voice_id": "v", "seed": -1}, "minimum", ["seed"]),
    ("text-to-speech", {"text": "x", "voice_id": "v", "apply_text_normalization": True}, "type",
     ["apply_text_normalization"]),
    ("sound-generation", {"text": "x", "duration_seconds": 30.1}, "maximum", ["duration_seconds"]),
    ("sound-generation", {"text": "x", "model_id": "eleven_text_to_sound_v1"}, "enum",
     ["model_id"]),
    ("speech-to-text", {"model_id": "scribe_v2", "token": "secret"}, "additionalProperties", []),
    ("speech-to-text", {"model_id": "scribe-v2"}, "enum", ["model_id"]),
    ("speech-to-text", {"model_id": "scribe_v2", "num_speakers": 33}, "maximum", ["num_speakers"]),
    # docx has no max_characters_per_line: no oneOf branch accepts it.
    ("speech-to-text", {"model_id": "scribe_v2",
                        "additional_formats": [{"format": "docx", "max_characters_per_line": 3}]},
     "oneOf", ["additional_formats", 0]),
]


@pytest.mark.parametrize(("model", "instance", "keyword", "path"), BAD_INPUTS,
                         ids=lambda v: str(v)[:40])
def test_known_bad_inputs_are_rejected_by_the_right_keyword(
    derived: dict[str, Json], model: str, instance: Json, keyword: str, path: list[Any]
) -> None:
    assert (keyword, path) in errors(derived, model, instance)


def test_documented_defaults(derived: dict[str, Json]) -> None:
    def defaults(model: str) -> Json:
        props = derived[MODELS[model].schema_name]["properties"]
        return {k: v["default"] for k, v in props.items() if "default" in v}

    assert defaults("elevenlabs/text-to-speech-turbo-2-5") == {
        "voice": "Rachel", "stability": 0.5, "similarity_boost": 0.75, "style": 0, "speed": 1,
        "timestamps": False,
    }
    assert defaults("elevenlabs/sound-effect-v2") == {
        "text": "", "loop": False, "prompt_influence": 0.3, "output_format": "mp3_44100_128",
    }
    assert defaults("elevenlabs/speech-to-text") == {
        "language_code": "", "tag_audio_events": True, "diarize": True,
    }
    assert defaults("stable-audio") == {"seconds_total": 30, "steps": 100}
    assert defaults("sound-generation")["prompt_influence"] == 0.3
    formats = derived["text-to-speech"]["$defs"]["OutputFormat"]
    assert formats["default"] == "mp3_44100_128" and len(formats["enum"]) == 28
    assert len(derived["elevenlabs--text-to-speech-turbo-2-5"]["properties"]["voice"]["enum"]) == 21


# --- conversion, on small inline documents ----------------------------------------


def document(
    body: Json, components: Json | None = None, *, how: Json | None = None,
    parameters: list[Json] | None = None, media: str = "application/json",
) -> Json:
    operation: Json = {
        "operationId": "op",
        "x-runner-model": "stable-audio",
        "x-runner-input": how or {"from": "body"},
        "requestBody": {"content": {media: {"schema": body}}},
        "responses": {"200": {"description": "ok"}},
    }
    if parameters is not None:
        operation["parameters"] = parameters
    return {
        "openapi": "3.0.3",
        "info": {"title": "t", "version": "1"},
        "paths": {"/x/{id}": {"post": operation}},
        "components": {"schemas": components or {}},
    }


def derive(tmp_path: Path, doc: Json | str) -> Json:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc)
    (tmp_path / "doc.yaml").write_text(text, encoding="utf-8")
    schema = derive_model_schemas(tmp_path)["stable-audio"]
    Draft202012Validator.check_schema(schema)
    return schema


def obj(**properties: Json) -> Json:
    return {"type": "object", "properties": properties}


def test_nullable_becomes_a_type_union_and_enum_admits_null(tmp_path: Path) -> None:
    schema = derive(tmp_path, document(obj(
        a={"type": "string", "nullable": True},
        b={"type": "string", "enum": ["x", "y"], "nullable": True},
        c={"allOf": [{"$ref": "#/components/schemas/C"}], "nullable": True, "description": "d"},
    ), {"C": obj(n={"type": "integer"})}))
    props = schema["properties"]
    assert props["a"] == {"type": ["string", "null"]}
    assert props["b"] == {"type": ["string", "null"], "enum": ["x", "y", None]}
    assert props["c"]["description"] == "d" and props["c"]["anyOf"][1] == {"type": "null"}
    check = Draft202012Validator(schema)
    assert check.is_valid({"a": None, "b": None, "c": None})
    assert check.is_valid({"c": {"n": 1}})
    assert not check.is_valid({"b": "z"})
    assert not check.is_valid({"c": {"n": 1, "m": 2}})


def test_example_becomes_examples_and_openapi_only_keys_are_dropped(tmp_path: Path) -> None:
    schema = derive(tmp_path, document(obj(a={
        "type": "string", "example": "hi", "xml": {"name": "A"}, "x-step": 0.1,
        "externalDocs": {"url": "https://example.com"}, "readOnly": True, "deprecated": True,
    })))
    assert schema["properties"]["a"] == {
        "type": "string", "examples": ["hi"], "readOnly": True, "deprecated": True,
    }


def test_exclusive_bounds_and_binary_formats(tmp_path: Path) -> None:
    schema = derive(tmp_path, document(obj(
        n={"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1,
           "exclusiveMaximum": False},
        f={"type": "string", "format": "binary"},
        b={"type": "string", "format": "byte"},
        u={"type": "string", "format": "uri"},
    )))
    props = schema["properties"]
    assert props["n"] == {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
    assert props["f"] == {"type": "string", "contentMediaType": "application/octet-stream"}
    assert props["b"] == {"type": "string", "contentEncoding": "base64"}
    assert props["u"] == {"type": "string", "format": "uri"}


def test_refs_are_copied_into_defs_nested_and_closed_where_used(tmp_path: Path) -> None:
    schema = derive(tmp_path, document(obj(a={"$ref": "#/components/schemas/A"}), {
        "A": obj(b={"$ref": "#/components/schemas/B"}),
        "B": obj(c={"type": "integer"}),
        "Unused": obj(),
    }))
    assert set(schema["$defs"]) == {"A", "B"}
    assert schema["properties"]["a"] == {"$ref": "#/$defs/A", "unevaluatedProperties": False}
    assert "#/components" not in json.dumps(schema)
    check = Draft202012Validator(schema)
    assert check.is_valid({"a": {"b": {"c": 1}}})
    assert not check.is_valid({"a": {"b": {"c": "one"}}})
    assert not check.is_valid({"a": {"b": {"c": 1, "typo": 1}}})


def test_recursive_refs_stay_finite_and_validate_at_depth(tmp_path: Path) -> None:
    schema = derive(tmp_path, document(obj(tree={"$ref": "#/components/schemas/Node"}), {
        "Node": obj(name={"type": "string"},
                    children={"type": "array", "items": {"$ref": "#/components/schemas/Node"}}),
    }))
    assert set(schema["$defs"]) == {"Node"}
    check = Draft202012Validator(schema)
    leaf = {"name": "leaf", "children": []}
    assert check.is_valid({"tree": {"name": "a", "children": [{"name": "b", "children": [leaf]}]}})
    bad = {"tree": {"name": "a", "children": [{"name": "b", "children": [{"nmae": "typo"}]}]}}
    assert not check.is_valid(bad)


def test_allof_combines_parts_and_closes_the_whole(tmp_path: Path) -> None:
    schema = derive(tmp_path, document(obj(
        both={"allOf": [{"$ref": "#/components/schemas/A"}, obj(b={"type": "string"})]},
    ), {"A": {**obj(a={"type": "integer"}), "required": ["a"]}}))
    both = schema["properties"]["both"]
    assert both["unevaluatedProperties"] is False
    assert "additionalProperties" not in both["allOf"][1]
    check = Draft202012Validator(schema)
    assert check.is_valid({"both": {"a": 1, "b": "x"}})
    assert not check.is_valid({"both": {"b": "x"}})
    assert not check.is_valid({"both": {"a": 1, "c": 0}})


def test_discriminated_oneof_keeps_branches_exact(tmp_path: Path) -> None:
    cat = {**obj(kind={"type": "string", "enum": ["cat"]}, meow={"type": "boolean"}),
           "required": ["kind"]}
    dog = {**obj(kind={"type": "string", "enum": ["dog"]}, bark={"type": "boolean"}),
           "required": ["kind"]}
    schema = derive(tmp_path, document(obj(pet={
        "oneOf": [{"$ref": "#/components/schemas/Cat"}, {"$ref": "#/components/schemas/Dog"}],
        "discriminator": {"propertyName": "kind"},
    }), {"Cat": cat, "Dog": dog}))
    assert "discriminator" not in json.dumps(schema)
    check = Draft202012Validator(schema)
    assert check.is_valid({"pet": {"kind": "cat", "meow": True}})
    assert not check.is_valid({"pet": {"kind": "cat", "bark": True}})


def test_body_and_parameters_merge_path_and_query_not_headers(tmp_path: Path) -> None:
    params: list[Json] = [
        {"name": "id", "in": "path", "required": True, "description": "The id.",
         "schema": {"type": "string"}, "example": "abc"},
        {"name": "fmt", "in": "query", "schema": {"type": "string", "default": "mp3"}},
        {"name": "secret", "in": "query", "schema": {"type": "string"}},
        {"name": "xi-api-key", "in": "header", "schema": {"type": "string"}},
    ]
    schema = derive(tmp_path, document(
        {**obj(text={"type": "string"}), "required": ["text"]},
        how={"from": "body-and-parameters", "omit": ["secret"]}, parameters=params,
        media="multipart/form-data",
    ))
    assert set(schema["properties"]) == {"text", "id", "fmt"}
    assert schema["required"] == ["text", "id"]
    assert schema["properties"]["id"] == {
        "type": "string", "description": "The id.", "examples": ["abc"],
    }


def test_path_item_parameters_apply_and_operations_override_them(tmp_path: Path) -> None:
    doc = document(obj(text={"type": "string"}), how={"from": "body-and-parameters"},
                   parameters=[{"name": "q", "in": "query", "schema": {"type": "integer"}}])
    doc["paths"]["/x/{id}"]["parameters"] = [
        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "q", "in": "query", "schema": {"type": "string"}},
    ]
    schema = derive(tmp_path, doc)
    assert schema["properties"]["id"] == {"type": "string"}
    assert schema["properties"]["q"] == {"type": "integer"}
    assert schema["required"] == ["id"]


def test_body_property_mode_takes_that_property(tmp_path: Path) -> None:
    body = {**obj(model={"type": "string"}, input={"$ref": "#/components/schemas/In"}),
            "required": ["model"]}
    schema = derive(tmp_path, document(
        body, {"In": {**obj(url={"type": "string"}), "required": ["url"]}},
        how={"from": "body-property", "property": "input"},
    ))
    assert schema["properties"] == {"url": {"type": "string"}}
    assert schema["required"] == ["url"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(openapi="3.1.0"), "not an OpenAPI 3.0.x document"),
    (lambda d: _op(d).update({"x-runner-model": "stable-audoi"}), "did you mean 'stable-audio'"),
    (lambda d: _op(d).pop("x-runner-input"), "needs an x-runner-input"),
    (lambda d: _op(d).update({"x-runner-input": {"from": "query"}}), "must be one of"),
    (lambda d: _op(d).update({"x-runner-input": {"from": "body", "omit": ["nope"]}}),
     "no input field nope"),
    (lambda d: _body(d)["properties"].update(a={"type": "string", "maxLenght": 3}),
     "not OpenAPI 3.0 schema keywords: maxLenght"),
    (lambda d: _body(d)["properties"].update(a={"$ref": "#/components/schemas/Missing"}),
     "'#/components/schemas/Missing' is not an existing"),
    (lambda d: _body(d)["properties"].update(a={"type": ["string", "null"]}), "type must be"),
    (lambda d: _body(d)["properties"].update(a={"type": "number", "exclusiveMinimum": 0}),
     "must be a boolean"),
    (lambda d: _body(d).pop("properties"), "object schema with its own `properties`"),
])
def test_malformed_documents_raise_schema_error_naming_file_and_operation(
    tmp_path: Path, change: Any, message: str
) -> None:
    doc = document(obj(a={"type": "string"}))
    change(doc)
    with pytest.raises(SchemaError, match="doc.yaml") as caught:
        derive(tmp_path, doc)
    assert message in str(caught.value)
    if "3.0.x" not in message:
        assert "POST /x/{id}" in str(caught.value)


def _op(doc: Json) -> Json:
    operation: Json = doc["paths"]["/x/{id}"]["post"]
    return operation


def _body(doc: Json) -> Json:
    body: Json = _op(doc)["requestBody"]["content"]["application/json"]["schema"]
    return body


def test_yaml_syntax_error_is_a_schema_error(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="doc.yaml: cannot read"):
        derive(tmp_path, "openapi: 3.0.3\npaths: [unclosed\n")


def test_a_model_derived_twice_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(document(obj())), encoding="utf-8")
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(document(obj())), encoding="utf-8")
    with pytest.raises(SchemaError, match="derived twice"):
        derive_model_schemas(tmp_path)


def test_write_is_idempotent_removes_stale_files_and_reports_differences(tmp_path: Path) -> None:
    openapi, models = tmp_path / "openapi", tmp_path / "models"
    openapi.mkdir()
    (openapi / "doc.yaml").write_text(yaml.safe_dump(document(obj())), encoding="utf-8")
    assert stale_model_schemas(openapi, models) == ["stable-audio.schema.json: missing"]
    target = models / "stable-audio.schema.json"
    assert write_model_schemas(openapi, models) == [target]
    assert write_model_schemas(openapi, models) == []
    assert stale_model_schemas(openapi, models) == []
    (models / "old.schema.json").write_text("{}", encoding="utf-8")
    target.write_text("{}", encoding="utf-8")
    assert stale_model_schemas(openapi, models) == [
        "old.schema.json: not derived from any OpenAPI document",
        "stable-audio.schema.json: out of date",
    ]
    assert write_model_schemas(openapi, models) == [models / "old.schema.json", target]
    assert sorted(p.name for p in models.iterdir()) == ["stable-audio.schema.json"]
    assert json.loads(target.read_text(encoding="utf-8"))["title"] == "stable-audio"
