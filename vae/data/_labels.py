"""Variant label tables (ClinVar-style CSV)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vae.errors import VAEInputError


def read_variant_labels(path: str | Path, protein: str | None = None) -> pd.DataFrame:
    """Read a ClinVar-style label table into ``mutant``/``label`` columns.

    Parameters
    ----------
    path
        CSV with ``mutations`` (e.g. ``P8L``) and ``ClinVar_labels`` (0 benign,
        1 pathogenic), optionally ``protein_name``.
    protein
        Keep only rows of this ``protein_name``.
    """
    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "file does not exist")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise VAEInputError(path, f"not a readable CSV ({type(err).__name__})") from err
    needed = {"mutations", "ClinVar_labels"}
    if not needed <= set(table.columns):
        raise VAEInputError(path, f"label table needs columns {sorted(needed)}")
    if protein is not None and "protein_name" in table:
        table = table[table["protein_name"] == protein]
    return pd.DataFrame(
        {"mutant": table["mutations"], "label": table["ClinVar_labels"].astype(int)}
    )
