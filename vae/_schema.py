"""One-line JSON-schema validation messages for the workflow's config and sheets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def schema_problem(instance: Any, schema_path: str | Path) -> str | None:
    """Return ``"<key path>: <problem>"`` for the first schema violation, or ``None``.

    Parameters
    ----------
    instance
        The parsed config (or one sheet row).
    schema_path
        YAML JSON-schema file.
    """
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return None
    error = errors[0]
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    return f"{where}: {error.message}"
