"""The protein scoreboard: rows from metrics.json and manifests, the table and its figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from vae.errors import VAEInputError
from vae.metrics import PROTEIN_SUMMARY_COLUMNS, protein_summary, protein_summary_rows
from vae.steps import summarise_protein

SCAN = {
    "n_sequences": 500,
    "n_columns": 50,
    "neff": 250.0,
    "dms_n_scored": 900,
    "dms_spearman": 0.55,
    "site_independent_dms_spearman": 0.50,
    "dms_member_spearman": [0.54, 0.55, 0.56],
}
LABELS = {
    "n_sequences": 300,
    "n_columns": 100,
    "neff": 100.0,
    "n_scored": 40,
    "roc_auc": 0.90,
    "site_independent_roc_auc": 0.95,
    "members": [{"seed": 0, "roc_auc": 0.90}],
}
MANIFESTS = [{"steps": 200, "train_seconds": 10.0}, {"steps": 200, "train_seconds": 14.0}]


def test_scan_row_has_the_gain_the_spread_and_the_family_size() -> None:
    (row,) = protein_summary_rows("FAM", SCAN, MANIFESTS + [MANIFESTS[0]])
    assert row["target"] == "dms"
    assert row["measure"] == "spearman"
    assert row["gain"] == pytest.approx(0.05)
    assert row["seed_sd"] == pytest.approx(0.01)
    assert row["member_gain_min"] == pytest.approx(0.04)
    assert row["n_seeds"] == 3
    assert row["n_scored"] == 900
    assert row["neff_per_column"] == pytest.approx(5.0)
    assert row["train_seconds"] == pytest.approx(34 / 3)
    assert row["steps"] == 200


def test_a_dataset_with_a_scan_and_labels_gives_two_rows_and_one_without_either_none() -> None:
    both = SCAN | {k: v for k, v in LABELS.items() if k not in SCAN}
    rows = protein_summary_rows("BOTH", both, MANIFESTS[:1])
    assert [r["target"] for r in rows] == ["dms", "labels"]
    assert math.isnan(rows[1]["seed_sd"])  # one member: no spread
    assert rows[1]["gain"] == pytest.approx(-0.05)
    bare = {k: SCAN[k] for k in ("n_sequences", "n_columns", "neff")}
    assert protein_summary_rows("NONE", bare, MANIFESTS[:1]) == []


def test_table_is_sorted_by_target_then_gain() -> None:
    worse = SCAN | {"dms_spearman": 0.45, "dms_member_spearman": [0.45]}
    table = protein_summary(
        [("A", worse, MANIFESTS[:1]), ("B", SCAN, MANIFESTS[:1]), ("C", LABELS, MANIFESTS[:1])]
    )
    assert list(table.columns) == list(PROTEIN_SUMMARY_COLUMNS)
    assert table["dataset"].tolist() == ["B", "A", "C"]


def _write_dataset(root: Path, name: str, metrics: dict) -> tuple[Path, list[Path]]:
    folder = root / name / "model"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps(MANIFESTS[0]))
    path = root / name / "metrics.json"
    path.write_text(json.dumps(metrics))
    return path, [folder]


def test_step_writes_the_table_and_the_figure(tmp_path: Path) -> None:
    scan_metrics, scan_models = _write_dataset(tmp_path, "FAM", SCAN)
    label_metrics, label_models = _write_dataset(tmp_path, "LAB", LABELS)
    out, figure = tmp_path / "summary" / "protein.tsv", tmp_path / "summary" / "gain.png"
    summarise_protein(
        ["FAM", "LAB"], [scan_metrics, label_metrics], [scan_models, label_models], out, figure
    )
    table = pd.read_csv(out, sep="\t")
    assert table["dataset"].tolist() == ["FAM", "LAB"]
    assert table["gain"].round(4).tolist() == [0.05, -0.05]
    assert figure.read_bytes()[:4] == b"\x89PNG"


def test_unreadable_metrics_name_the_file(tmp_path: Path) -> None:
    metrics, models = _write_dataset(tmp_path, "FAM", SCAN)
    metrics.write_text("{not json")
    with pytest.raises(VAEInputError, match="metrics.json: not a readable JSON file"):
        summarise_protein(["FAM"], [metrics], [models], tmp_path / "t.tsv", tmp_path / "f.png")
