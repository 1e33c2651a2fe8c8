"""JSON Schemas: derived from the providers' OpenAPI documents, and validated against.

    openapi.py   each model's input schema, derived from `schemas/openapi/**.yaml`
    pipeline.py  the manifest language's schema
    validate.py  validation, and jsonschema's errors turned into sentences
    fast.py      a compiled fast path for the simple schemas of model inputs
    build.py     `runner schemas build|export`; paths.py where the schema files are
"""
