"""`runner schemas build` and `export`: the checked-in schemas, derived and compared."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runner.schemas.openapi import derive_model_schemas, stale_model_schemas, write_model_schemas
from runner.schemas.paths import MODEL_SCHEMAS_DIR, OPENAPI_DIR, PIPELINE_SCHEMA_PATH
from runner.schemas.pipeline import editor_schema
from runner.store import atomic


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def _pipeline_text() -> str:
    return _dump(editor_schema(derive_model_schemas(OPENAPI_DIR)))


def build_all() -> list[Path]:
    """Derive every model schema and the manifest schema into `schemas/`."""
    written = write_model_schemas(OPENAPI_DIR, MODEL_SCHEMAS_DIR)
    atomic.write_text(PIPELINE_SCHEMA_PATH, _pipeline_text())
    return [*written, PIPELINE_SCHEMA_PATH]


def stale_files() -> list[str]:
    """Checked-in schema files that differ from a fresh derivation."""
    stale = list(stale_model_schemas(OPENAPI_DIR, MODEL_SCHEMAS_DIR))
    try:
        current = PIPELINE_SCHEMA_PATH.read_text(encoding="utf-8")
    except FileNotFoundError:
        current = ""
    if current != _pipeline_text():
        stale.append(PIPELINE_SCHEMA_PATH.name)
    return stale


def export_pipeline_schema(directory: Path) -> Path:
    target = directory / "pipeline.schema.json"
    atomic.write_text(target, _pipeline_text())
    return target
