"""Figures and tables of a mapped query: confusion-matrix numbers, counts, files drawn."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from vae.metrics import UNKNOWN
from vae.plotting import (
    confusion_matrix,
    label_accuracy,
    plot_confusion,
    plot_joint_umap,
    predicted_label_counts,
    write_predicted_label_counts,
)

TRUE = ["a", "a", "a", "a", "b", "b", "c", "c", "c", "c"]
PREDICTED = ["a", "a", "b", UNKNOWN, "b", "b", "c", "a", "d", "c"]


def test_confusion_matrix_counts_and_row_shares() -> None:
    counts = confusion_matrix(TRUE, PREDICTED, normalize=False)
    # true labels, then labels only predicted, then Unknown
    assert list(counts.index) == ["a", "b", "c"]
    assert list(counts.columns) == ["a", "b", "c", "d", UNKNOWN]
    np.testing.assert_array_equal(
        counts.to_numpy(), [[2, 1, 0, 0, 1], [0, 2, 0, 0, 0], [1, 0, 2, 1, 0]]
    )
    shares = confusion_matrix(TRUE, PREDICTED)
    np.testing.assert_allclose(
        shares.to_numpy(),
        [[0.5, 0.25, 0, 0, 0.25], [0, 1, 0, 0, 0], [0.25, 0, 0.5, 0.25, 0]],
    )
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    assert label_accuracy(TRUE, PREDICTED) == pytest.approx(6 / 10)


def _mapped_files(root: Path, *, truth: bool = True) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    n_ref, n_query = 60, len(TRUE) * 4
    reference = ad.AnnData(
        obs=pd.DataFrame(
            {"cell_type": np.repeat(["a", "b", "c"], 20), "batch": "b0"},
            index=[f"r{i}" for i in range(n_ref)],
        )
    )
    reference.obsm["X_vae"] = rng.normal(size=(n_ref, 3)).astype(np.float32)
    obs = pd.DataFrame(
        {"batch": np.repeat(["q0", "q1"], n_query // 2), "predicted_cell_type": PREDICTED * 4},
        index=[f"q{i}" for i in range(n_query)],
    )
    if truth:
        obs["cell_type"] = TRUE * 4
    query = ad.AnnData(obs=obs)
    query.obsm["X_vae"] = rng.normal(size=(n_query, 3)).astype(np.float32)
    query.uns["mapping"] = {"label_key": "cell_type", "batch_key": "batch", "mode": "surgery"}
    reference.write_h5ad(root / "reference.h5ad")
    query.write_h5ad(root / "mapped.h5ad")
    return root / "mapped.h5ad", root / "reference.h5ad"


def test_predicted_label_counts_table(tmp_path) -> None:
    mapped, _ = _mapped_files(tmp_path)
    table = write_predicted_label_counts(mapped, tmp_path / "counts.tsv")
    assert list(table.columns) == ["predicted_cell_type", "n_cells", "fraction", "n_correct"]
    assert table["n_cells"].tolist() == [12, 12, 8, 4, 4]  # a, b, c, Unknown, d: largest first
    assert table.set_index("predicted_cell_type")["n_correct"].to_dict() == {
        "a": 8,
        "b": 8,
        "c": 8,
        UNKNOWN: 0,
        "d": 0,
    }
    assert table["fraction"].sum() == pytest.approx(1.0)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "counts.tsv", sep="\t"), table)


def test_mapping_figures_are_drawn(tmp_path) -> None:
    mapped, reference = _mapped_files(tmp_path)
    assert plot_joint_umap(mapped, reference, tmp_path / "umap.png", max_cells=50) == 50
    assert plot_confusion(mapped, tmp_path / "confusion.png") == pytest.approx(0.6)
    for name in ("umap.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_confusion_without_true_labels_says_so(tmp_path) -> None:
    mapped, _ = _mapped_files(tmp_path, truth=False)
    assert plot_confusion(mapped, tmp_path / "confusion.png") is None
    assert (tmp_path / "confusion.png").stat().st_size > 0
    assert "n_correct" not in predicted_label_counts(mapped)
