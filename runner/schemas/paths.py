"""Where the project's data files live."""

from __future__ import annotations

from pathlib import Path

# The schemas ship inside the package as `runner/_schemas` when installed from
# a wheel; in a source checkout they are the top-level `schemas/` folder.
_PACKAGE_DIR = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = (
    _PACKAGE_DIR / "_schemas"
    if (_PACKAGE_DIR / "_schemas").is_dir()
    else _PACKAGE_DIR.parent / "schemas"
)
OPENAPI_DIR = SCHEMAS_DIR / "openapi"
MODEL_SCHEMAS_DIR = SCHEMAS_DIR / "models"
PIPELINE_SCHEMA_PATH = SCHEMAS_DIR / "pipeline.schema.json"
