"""Read the workflow's sheets (datasets, embed, map, variant lists) with one-line errors.

Plain Python beside the workflow, like :mod:`schema_check`: the Snakemake driver parses
the workflow without ``vae`` installed, and the tests import this module by path. Every
problem raises :class:`SheetError` whose message names the sheet, and where it can the
row and the column; ``rules/common.smk`` prints it as one ``error:`` line and exits.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import yaml
from schema_check import schema_problem

#: Sources that are not paths under the data folder.
REMOTE_PREFIXES = ("builtin:", "https://", "http://")


class SheetError(ValueError):
    """A sheet that cannot be used, with a one-line message naming where."""


def schema_columns(schema_path: str | Path) -> tuple[list[str], list[str]]:
    """Return the columns a sheet's schema knows and those it requires."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    return list(schema.get("properties", {})), list(schema.get("required", []))


def read_sheet(
    path: str | Path,
    schema_path: str | Path,
    *,
    what: str = "sheet",
    data_dir: str | Path | None = None,
    path_columns: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a tab-separated sheet and check it against its schema, row by row.

    Parameters
    ----------
    path
        The sheet (TSV; ``#`` starts a comment).
    schema_path
        The JSON schema of one row (``required`` and ``properties``).
    what
        What the sheet is, for the messages (``dataset sheet``, ...).
    data_dir
        With ``path_columns``: the folder the sheet's paths are relative to.
    path_columns
        Columns holding a path under ``data_dir`` (empty, ``builtin:`` and URLs are
        skipped); each must exist.

    Returns
    -------
    pandas.DataFrame
        All cells as strings (empty for none), with every column of the schema: the
        optional ones a sheet leaves out are empty, as the schema describes them.

    Raises
    ------
    SheetError
        A missing file, a sheet that is not tab-separated, a required column that is
        missing, a row the schema refuses (an unknown column, a bad value) or a path
        that does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise SheetError(f"{path}: {what} does not exist")
    try:
        sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise SheetError(f"{path}: not a readable tab-separated {what} ({err})") from err
    columns, required = schema_columns(schema_path)
    if len(sheet.columns) == 1 and any(sep in sheet.columns[0] for sep in ",;"):
        raise SheetError(
            f"{path}: the header has no tab: {what}s are tab-separated (TSV), "
            "this one looks comma- or semicolon-separated"
        )
    missing = [column for column in required if column not in sheet.columns]
    if missing:
        raise SheetError(f"{path}: missing required column {missing[0]!r}")
    for number, row in enumerate(sheet.to_dict("records"), start=1):
        problem = schema_problem(row, schema_path)
        if problem:
            raise SheetError(f"{path} row {number} ({_row_name(row)}): {problem}")
        for column in path_columns:
            value = row.get(column, "")
            if data_dir is None or not value or value.startswith(REMOTE_PREFIXES):
                continue
            target = Path(data_dir) / value
            if not target.exists():
                raise SheetError(
                    f"{path} row {number} ({_row_name(row)}), column {column}: "
                    f"{target} does not exist"
                )
    for column in columns:
        if column not in sheet:
            sheet[column] = ""
    return sheet


def _row_name(row: dict) -> str:
    """Name a row in messages by its dataset (or list) name."""
    return repr(row.get("dataset") or row.get("name") or "")
