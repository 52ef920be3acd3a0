"""One-line JSON-schema messages for the workflow's config, sheets and overrides.

A plain module beside the workflow, not part of the ``vae`` package: the Snakemake
driver parses the workflow without ``vae`` installed (``--sdm conda``). The workflow
(``rules/common.smk``) and the tests import it by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


def schema_problem(instance: Any, schema_path: str | Path) -> str | None:
    """Return ``"<key path>: <problem>"`` for the first schema violation, or ``None``.

    ``snakemake.utils.validate`` reports every violation with the whole schema; this
    names the first one (sorted by key path) in one line.

    Parameters
    ----------
    instance
        The parsed config, one sheet row, or the overrides file.
    schema_path
        YAML JSON-schema file (draft 2020-12; ``$ref`` within the file only).

    Returns
    -------
    str or None
        The dotted key path (``top level`` for the root) and the validator's message.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    if not errors:
        return None
    error = errors[0]
    where = ".".join(str(p) for p in error.absolute_path) or "top level"
    return f"{where}: {error.message}"
