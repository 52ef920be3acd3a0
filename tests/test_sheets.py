"""Sheets fail as the docs promise: one line naming the sheet, the row and the column."""

from __future__ import annotations

from pathlib import Path

import pytest
from sheets import SheetError, read_sheet

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "datasets.schema.yaml"
PATHS = ("source", "labels", "dms", "database")


def _sheet(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "fam.a2m").write_text(">focus\nACDE\n")
    path = tmp_path / "datasets.tsv"
    path.write_text(text)
    return path


def _read(path: Path):
    return read_sheet(
        path, SCHEMA, what="dataset sheet", data_dir=path.parent / "data", path_columns=PATHS
    )


def test_optional_columns_may_be_left_out(tmp_path: Path) -> None:
    sheet = _read(_sheet(tmp_path, "dataset\tdomain\tsource\nfam\tprotein\tfam.a2m\n"))
    assert sheet.loc[0, "source"] == "fam.a2m"
    for column in ("labels", "dms", "focus_id", "label_key", "batch_key", "database"):
        assert sheet.loc[0, column] == ""


def test_comma_separated_sheet(tmp_path: Path) -> None:
    path = _sheet(tmp_path, "dataset,domain,source\nfam,protein,fam.a2m\n")
    with pytest.raises(SheetError) as err:
        _read(path)
    assert str(err.value) == (
        f"{path}: the header has no tab: dataset sheets are tab-separated (TSV), "
        "this one looks comma- or semicolon-separated"
    )


def test_missing_required_column(tmp_path: Path) -> None:
    path = _sheet(tmp_path, "dataset\tsource\nfam\tfam.a2m\n")
    with pytest.raises(SheetError, match=r"datasets.tsv: missing required column 'domain'$"):
        _read(path)


def test_unknown_column_names_row_and_column(tmp_path: Path) -> None:
    path = _sheet(tmp_path, "dataset\tdomain\tsource\tscan\nfam\tprotein\tfam.a2m\tx.csv\n")
    with pytest.raises(SheetError) as err:
        _read(path)
    assert str(err.value).startswith(f"{path} row 1 ('fam'): ")
    assert "'scan' was unexpected" in str(err.value)


def test_source_that_does_not_exist(tmp_path: Path) -> None:
    path = _sheet(
        tmp_path,
        "dataset\tdomain\tsource\tdms\nfam\tprotein\tfam.a2m\t\nfam2\tprotein\tfam2.a2m\t\n",
    )
    with pytest.raises(SheetError) as err:
        _read(path)
    missing = path.parent / "data" / "fam2.a2m"
    assert str(err.value) == f"{path} row 2 ('fam2'), column source: {missing} does not exist"


def test_missing_scan_and_remote_sources(tmp_path: Path) -> None:
    path = _sheet(
        tmp_path,
        "dataset\tdomain\tsource\tdms\nfam\tprotein\tfam.a2m\tnope.csv\n"
        "pbmc\texpression\tbuiltin:pbmc68k\t\n",
    )
    with pytest.raises(SheetError, match=r"row 1 \('fam'\), column dms: .*nope.csv does not"):
        _read(path)
    path.write_text("dataset\tdomain\tsource\npbmc\texpression\tbuiltin:pbmc68k\n")
    assert _read(path).loc[0, "source"] == "builtin:pbmc68k"


def test_missing_sheet(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match=r"nope.tsv: dataset sheet does not exist$"):
        _read(tmp_path / "nope.tsv")
