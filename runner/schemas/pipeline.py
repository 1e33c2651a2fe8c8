"""The JSON Schema of the manifest language, built here and written to
`schemas/pipeline.schema.json` by `runner schemas build`.

`structure_schema()` describes the manifest's shape; job `input`s are only
required to be mappings there, because they are checked per expanded job
(after defaults and matrix values are applied) against the model schemas.
`editor_schema()` adds, for editors, one `if model == X then input: <X's schema>`
rule per model, so completion and checking work inside `input:` too.
"""

from __future__ import annotations

from typing import Any

from runner.catalog.models import MODELS, Kind

SCHEMA_ID = "https://runner.invalid/schemas/pipeline.schema.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
# Job ids may carry matrix placeholders before expansion: `footsteps_{surface}`.
JOB_ID_PATTERN = r"^[A-Za-z0-9{][A-Za-z0-9_.{}-]*$"
ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
URL_PATTERN = r"^https?://"
MATRIX_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PROVIDER_TYPES = ["kie", "apikley", "aimlapi", "elevenlabs"]
# Ids and names become file names: with what the runner adds ({id}_v12.mp3,
# {id}.segments/), they stay under the 255 bytes a file name may have.
MAX_NAME_CHARS = 200
# What each pattern means, for messages (runner.schemas.validate): people read words, not regexes.
PATTERN_MEANING = {
    NAME_PATTERN: "a name of letters, digits, '_', '.' and '-', starting with a letter or digit",
    JOB_ID_PATTERN: "an id of letters, digits, '_', '.', '-' and {matrix} variables, starting "
                    "with a letter, a digit or '{'",
    ENV_PATTERN: "an environment variable name (letters, digits and '_')",
    URL_PATTERN: "an http(s) URL",
}


def _limits() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Limits of one provider account, shared by all its jobs.",
        "additionalProperties": False,
        "properties": {
            "requests_per_window": {
                "type": "integer", "minimum": 0,
                "description": "Generation requests (createTask) allowed in any window; "
                               "0: unknown, discover it from the provider's 429s.",
            },
            "window_s": {"type": "number", "exclusiveMinimum": 0,
                         "description": "Length of the rate window in seconds."},
            "max_in_flight": {"type": "integer", "minimum": 1,
                              "description": "Tasks submitted and not yet finished."},
            "polls_per_s": {"type": "number", "minimum": 0,
                            "description": "Status polls per second (a separate budget); "
                                           "0: unlimited."},
            "max_downloads": {"type": "integer", "minimum": 1,
                              "description": "Results downloaded and stored at once "
                                             "(default 8)."},
        },
    }


def _poll() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "How to wait for asynchronous tasks.",
        "properties": {
            "initial_interval_s": {"type": "number", "exclusiveMinimum": 0},
            "max_interval_s": {"type": "number", "exclusiveMinimum": 0},
            "deadline_s": {"type": "number", "exclusiveMinimum": 0,
                           "description": "Give up on a task after this long."},
            "visibility_grace_s": {
                "type": "number", "minimum": 0,
                "description": "A task this run created that the provider does not know yet "
                               "(market: 'recordInfo is null', 404) is polled this long "
                               "before it is reported (default 120)."},
        },
    }


def _provider() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "A provider account. Built-in names (kie, apikley, aimlapi, elevenlabs) "
                       "need no `type`; other names are extra accounts of a built-in type.",
        "properties": {
            "type": {"enum": PROVIDER_TYPES},
            "base_url": {"type": "string", "pattern": URL_PATTERN},
            "upload_base_url": {"type": "string", "pattern": URL_PATTERN},
            "api_key_env": {"type": "string", "pattern": ENV_PATTERN,
                            "description": "Name of the environment variable holding the key."},
            "limits": _limits(),
            "poll": _poll(),
        },
    }


def _audio_source() -> dict[str, Any]:
    one = {"type": "string", "minLength": 1}
    return {
        "description": "Audio to transcribe: a URL, a local file (relative to the manifest), "
                       "or the output of another job.",
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "object", "additionalProperties": False, "required": ["url"],
             "properties": {"url": {"type": "string", "pattern": URL_PATTERN}}},
            {"type": "object", "additionalProperties": False, "required": ["file"],
             "properties": {"file": one}},
            {"type": "object", "additionalProperties": False, "required": ["from"],
             "properties": {"from": one}},
        ],
    }


def _programme_settings() -> dict[str, Any]:
    """How segments are generated and stitched: shared by narrations and dialogues."""
    ms = {"type": "integer", "minimum": 0, "maximum": 60_000}
    return {
        "gap_ms": {**ms, "default": 250,
                   "description": "Silence between segments of one paragraph (or line)."},
        "paragraph_gap_ms": {**ms, "default": 750,
                             "description": "Silence between paragraphs (dialogue: lines)."},
        "crossfade_ms": {**ms, "default": 0, "description": "Overlap at seams with no gap."},
        "fade_ms": {**ms, "default": 10, "description": "Fade in/out at every seam."},
        "trim_silence": {"type": "boolean", "default": True},
        "loudness_lufs": {"type": "number", "minimum": -40, "maximum": -5, "default": -16,
                          "description": "Integrated loudness of the whole programme."},
        "true_peak_dbtp": {"type": "number", "minimum": -9, "maximum": 0, "default": -1,
                           "description": "Ceiling for the programme's true peak; a limiter "
                                          "holds the peaks under it."},
        "output_format": {"type": "string",
                          "description": "Format of the stitched file (default: the segments')."},
        "subtitles": {"type": "boolean", "default": True},
        "context": {"enum": ["auto", "text", "request_ids"], "default": "auto",
                    "description": "How a segment hears its neighbours: previous_text/next_text, "
                                   "or ElevenLabs request ids (segments then run in order); "
                                   "auto: request ids on the ElevenLabs API, text elsewhere."},
        "verify": {"enum": ["transcript"],
                   "description": "Transcribe every segment and report its word error rate."},
        "max_wer": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.15,
                    "description": "Segments above this word error rate are reported."},
    }


def _narration() -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "A long text split into TTS segments and stitched into one programme.",
        "oneOf": [{"required": ["text"]}, {"required": ["text_file"]}],
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "text_file": {"type": "string", "minLength": 1,
                          "description": "A UTF-8 text file, relative to the manifest."},
            "max_chars": {"type": "integer", "minimum": 50, "maximum": 5000, "default": 1500},
            **_programme_settings(),
        },
    }


def _dialogue() -> dict[str, Any]:
    line = {
        "type": "object",
        "additionalProperties": False,
        "required": ["text"],
        "properties": {
            "text": {"type": "string", "minLength": 1},
            "voice": {"type": "string", "minLength": 1,
                      "description": "The line's voice (the model's voice field)."},
            "input": {"type": "object", "description": "Settings for this line only."},
        },
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["lines"],
        "description": "Ordered lines, each with its own voice and settings, stitched in order.",
        "properties": {
            "lines": {"type": "array", "minItems": 1, "items": line},
            **_programme_settings(),
        },
    }


def _postprocess() -> dict[str, Any]:
    """Steps applied to a job's audio after the provider's answer (runner/manifest/postprocess.py)."""
    ms = {"type": "integer", "minimum": 0, "maximum": 60_000}
    return {
        "type": "object",
        "additionalProperties": False,
        "description": "Steps applied to the provider's result, in this order: trim, loop "
                       "crossfade, fades, normalize, convert. Part of the cache key; changing "
                       "a step reprocesses the cached result and never buys it again.",
        "properties": {
            "trim_silence": {
                "description": "Cut silence at both ends (true, or the threshold and margin).",
                "oneOf": [
                    {"type": "boolean"},
                    {"type": "object", "additionalProperties": False, "properties": {
                        "threshold_dbfs": {"type": "number", "minimum": -100, "maximum": -10,
                                           "default": -50},
                        "keep_ms": {**ms, "default": 40}}},
                ],
            },
            "loop_crossfade_ms": {**ms, "description": "Make a seamless loop: crossfade this "
                                                       "much of the end into the start."},
            "fade_in_ms": {**ms, "description": "Linear fade-in at the start."},
            "fade_out_ms": {**ms, "description": "Linear fade-out at the end."},
            "normalize": {
                "type": "object", "additionalProperties": False, "required": ["lufs"],
                "description": "Integrated loudness (EBU R128), true peak held under a ceiling.",
                "properties": {
                    "lufs": {"type": "number", "minimum": -40, "maximum": -5},
                    "true_peak": {"type": "number", "minimum": -9, "maximum": 0, "default": -1,
                                  "description": "Ceiling for the true peak, dBTP."},
                },
            },
            "convert": {
                "type": "object", "additionalProperties": False, "minProperties": 1,
                "description": "Output format (default: the provider's), sample rate, channels.",
                "properties": {
                    "format": {"enum": ["ogg", "wav", "mp3"],
                               "description": "ogg: Ogg Vorbis; wav: 16-bit PCM; mp3: 192 kbps."},
                    "sample_rate": {"enum": [8000, 11025, 16000, 22050, 24000, 32000, 44100,
                                             48000]},
                    "channels": {"enum": [1, 2]},
                },
            },
        },
    }


def _job() -> dict[str, Any]:
    scalar = {"type": ["string", "number", "boolean"]}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["id", "model"],
        "properties": {
            "id": {"type": "string", "pattern": JOB_ID_PATTERN, "maxLength": MAX_NAME_CHARS,
                   "description": "Unique id; may use matrix variables: footsteps_{surface}."},
            "model": {"type": "string", "enum": sorted(MODELS)},
            "provider": {"type": "string", "pattern": JOB_ID_PATTERN,
                         "maxLength": MAX_NAME_CHARS,
                         "description": "An account name; may use matrix variables."},
            "input": {"type": "object", "description": "The model's input (see its schema)."},
            "output": {"type": "string", "minLength": 1,
                       "description": "Path inside output_dir; placeholders {id} {variant} {ext} "
                                      "and matrix variables."},
            "variants": {"type": "integer", "minimum": 1, "maximum": 100, "default": 1,
                         "description": "Independent takes of the same request."},
            "matrix": {
                "description": "Lists of values whose every combination makes one job.",
                "oneOf": [
                    {"type": "object", "minProperties": 1,
                     "propertyNames": {"pattern": MATRIX_NAME_PATTERN, "maxLength": 64},
                     "additionalProperties": {"type": "array", "minItems": 1, "items": scalar}},
                    {"type": "array", "minItems": 1,
                     "items": {"type": "object", "minProperties": 1,
                               "additionalProperties": scalar}},
                ],
            },
            "freeze": {"type": "boolean", "default": False,
                       "description": "Keep the locked asset even if the input changes."},
            "audio": _audio_source(),
            "postprocess": _postprocess(),
            "approved": {"type": "string", "minLength": 1,
                         "description": "Where `runner export` writes the approved (or picked) "
                                        "take, inside output_dir: {id}, {ext} and matrix "
                                        "variables."},
            "narration": _narration(),
            "dialogue": _dialogue(),
            "notes": {"type": "string"},
        },
    }


def structure_schema() -> dict[str, Any]:
    """The manifest's shape, as the runner validates it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "runner pipeline",
        "description": "A batch of AI audio generation and transcription jobs.",
        "type": "object",
        "additionalProperties": False,
        "required": ["version", "name", "jobs"],
        "properties": {
            "version": {"const": 1},
            "name": {"type": "string", "pattern": NAME_PATTERN, "maxLength": MAX_NAME_CHARS},
            "description": {"type": "string"},
            "output_dir": {"type": "string", "minLength": 1,
                           "description": "Relative to the manifest; default build/<name>."},
            "providers": {"type": "object",
                          "propertyNames": {"pattern": NAME_PATTERN, "maxLength": 64},
                          "additionalProperties": {"$ref": "#/$defs/provider"}},
            "remote_cache": {  # runner.team.config
                "type": "string", "pattern": r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$",
                "description": "The team's shared result cache, s3://BUCKET/PREFIX on any "
                               "S3-compatible store (RUNNER_REMOTE_CACHE wins over it).",
            },
            "defaults": {
                "type": "object",
                "description": "`provider`, `variants`, `postprocess`, and input defaults keyed "
                               "by model id.",
                "properties": {
                    "provider": {"type": "string", "pattern": NAME_PATTERN, "maxLength": 64},
                    "variants": {"type": "integer", "minimum": 1, "maximum": 100},
                    "postprocess": _postprocess(),
                    **{model: {"type": "object"} for model in sorted(MODELS)},
                },
                "additionalProperties": False,
            },
            "prices": {
                "type": "object",
                "description": "Override the credit price of a model (see README).",
                "propertyNames": {"enum": sorted(MODELS)},
                "additionalProperties": {"$ref": "#/$defs/price"},
            },
            "jobs": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/job"}},
        },
        "$defs": {
            "provider": _provider(),
            "job": _job(),
            "price": {
                "type": "object", "additionalProperties": False, "minProperties": 1,
                "properties": {
                    "per_request": {"type": "number", "minimum": 0},
                    "per_1k_chars": {"type": "number", "minimum": 0},
                    "per_second": {"type": "number", "minimum": 0},
                    "per_step": {"type": "number", "minimum": 0},
                    "minimum": {"type": "number", "minimum": 0},
                },
            },
        },
    }


def editor_schema(model_schemas: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """`structure_schema()` plus per-model input rules, for editors (self-contained)."""
    schema = structure_schema()
    defs = schema["$defs"]
    rules = []
    for model_id, info in sorted(MODELS.items()):
        model_schema = dict(model_schemas[info.schema_name])
        for key in ("$schema", "$id"):
            model_schema.pop(key, None)
        # Fields the runner fills itself (the audio to transcribe, a narration's
        # segment text) must not be flagged as missing by the editor.
        filled = {info.audio_url_field, info.audio_file_field}
        if info.kind is Kind.SPEECH:
            filled.add("text")
        if "required" in model_schema:
            model_schema["required"] = [r for r in model_schema["required"] if r not in filled]
        # Nested $defs of a model schema are hoisted so that its refs still resolve.
        inner = model_schema.pop("$defs", {})
        prefix = f"#/$defs/{info.schema_name}--"
        model_schema = _rewrite_refs(model_schema, "#/$defs/", prefix)
        for name, sub in inner.items():
            defs[f"{info.schema_name}--{name}"] = _rewrite_refs(sub, "#/$defs/", prefix)
        defs[info.schema_name] = model_schema
        rules.append({
            "if": {"properties": {"model": {"const": model_id}}, "required": ["model"]},
            "then": {"properties": {"input": {"$ref": f"#/$defs/{info.schema_name}"}}},
        })
    defs["job"]["allOf"] = rules
    return schema


def _rewrite_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (new + v[len(old):] if k == "$ref" and isinstance(v, str) and v.startswith(old)
                else _rewrite_refs(v, old, new))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, old, new) for v in node]
    return node
