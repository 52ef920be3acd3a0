"""Deep mutational scan tables: one variant per row and a measured fitness."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vae.errors import VAEInputError

#: Column names accepted for the variant, in order of preference.
MUTANT_COLUMNS = ("mutant", "variant")


def read_scan(
    path: str | Path, *, score_column: str = "score", higher_is_fitter: bool = True
) -> tuple[pd.DataFrame, int]:
    """Read a scan as ``mutant`` and ``fitness`` (higher = fitter) columns.

    Parameters
    ----------
    path
        CSV (``,``-separated, or ``;`` when the header has no comma) with a ``mutant``
        (or ``variant``) column in the focus numbering (``K3E``, ``K3E:A110D``) and
        ``score_column``.
    score_column
        The measured fitness.
    higher_is_fitter
        ``False`` when a higher score means a worse variant; the fitness is then negated.

    Returns
    -------
    table, n_missing
        The variants with a numeric score, and how many rows had none (NaN).
    """
    table, mutant = _read_variant_table(path)
    path = Path(path)
    if score_column not in table.columns:
        raise VAEInputError(
            path, f"scan has no score column {score_column!r}; it has {list(table.columns)}"
        )
    score = pd.to_numeric(table[score_column], errors="coerce")
    bad = score.isna() & table[score_column].notna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        value, name = table[score_column].iloc[row], table[mutant].iloc[row]
        raise VAEInputError(path, f"score {value!r} of {name} is not a number")
    if table[mutant].duplicated().any():
        first = table.loc[table[mutant].duplicated(), mutant].iloc[0]
        raise VAEInputError(path, f"mutant {first} appears more than once")
    keep = score.notna()
    out = pd.DataFrame(
        {
            "mutant": table.loc[keep, mutant].str.strip().to_numpy(),
            "fitness": (score[keep] if higher_is_fitter else -score[keep]).to_numpy(float),
        }
    )
    if out.empty:
        raise VAEInputError(path, "scan has no variant with a score")
    return out, int((~keep).sum())


def read_variant_names(path: str | Path) -> list[str]:
    """Return the variant names of a table with a ``mutant`` (or ``variant``) column."""
    table, mutant = _read_variant_table(path)
    return table[mutant].str.strip().tolist()


def _read_variant_table(path: str | Path) -> tuple[pd.DataFrame, str]:
    """Read a variant table; return it and the name of its variant column."""
    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise VAEInputError(path, "file is empty")
    with open(path, "rb") as handle:
        header = handle.readline()
    sep = ";" if b";" in header and b"," not in header else ","
    try:
        table = pd.read_csv(path, sep=sep, dtype={c: str for c in MUTANT_COLUMNS})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise VAEInputError(path, f"not a readable CSV ({type(err).__name__})") from err
    mutant = next((c for c in MUTANT_COLUMNS if c in table.columns), None)
    if mutant is None:
        raise VAEInputError(
            path, f"variant table needs a 'mutant' column; it has {list(table.columns)}"
        )
    if table[mutant].isna().any():
        raise VAEInputError(path, "a row has no mutant name")
    return table, mutant
