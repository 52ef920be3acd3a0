"""Figures from tiny synthetic artifacts: PNG out, byte-identical on a second run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from vae._alphabet import AMINO_ACIDS, PROTEIN_ALPHABET
from vae.errors import VAEInputError
from vae.plotting import (
    column_frequencies,
    metrics_table,
    plot_metrics_table,
    plot_mutation_heatmap,
    plot_sample_frequencies,
    plot_variant_roc,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _scores(path: Path, positions: list[int], seed: int = 0) -> Path:
    """``variant_scores.csv`` with every substitution at ``positions``."""
    rng = np.random.default_rng(seed)
    wild_type = rng.choice(list(AMINO_ACIDS), size=len(positions))
    rows = [
        (f"{wt}{pos}{mt}", pos, wt, mt, float(rng.normal(3, 4)))
        for pos, wt in zip(positions, wild_type, strict=True)
        for mt in AMINO_ACIDS
        if mt != wt
    ]
    table = pd.DataFrame(rows, columns=["mutant", "position", "wt", "mt", "evol_index"])
    table.to_csv(path, index=False, float_format="%.6g")
    return path


def _labels(path: Path, scores: Path, n: int = 12) -> Path:
    table = pd.read_csv(scores).iloc[:: max(1, 19 * 3)].head(n)
    pd.DataFrame(
        {
            "protein_name": "fam",
            "mutations": table["mutant"],
            "ClinVar_labels": [i % 2 for i in range(len(table))],
        }
    ).to_csv(path, index=False)
    return path


def _draw_twice(tmp_path: Path, draw: Callable[[Path], None]) -> bytes:
    """Draw into two files; both are PNGs with the same bytes."""
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    draw(first)
    draw(second)
    data = first.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert data == second.read_bytes()
    return data


def _png_size(data: bytes) -> tuple[int, int]:
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture
def scores(tmp_path: Path) -> Path:
    return _scores(tmp_path / "variant_scores.csv", [*range(10, 20), *range(22, 30)])


def test_roc_with_labels(tmp_path: Path, scores: Path) -> None:
    labels = _labels(tmp_path / "labels.csv", scores)
    _draw_twice(tmp_path, lambda out: plot_variant_roc(scores, out, labels=labels, protein="fam"))


def test_roc_without_labels_still_draws(tmp_path: Path, scores: Path) -> None:
    data = _draw_twice(tmp_path, lambda out: plot_variant_roc(scores, out, labels=None))
    labelled = tmp_path / "labelled.png"
    plot_variant_roc(scores, labelled, labels=_labels(tmp_path / "labels.csv", scores))
    assert data != labelled.read_bytes()


def test_roc_with_one_label_class(tmp_path: Path, scores: Path) -> None:
    labels = tmp_path / "benign.csv"
    mutant = pd.read_csv(scores)["mutant"].iloc[0]
    pd.DataFrame({"mutations": [mutant], "ClinVar_labels": [0]}).to_csv(labels, index=False)
    _draw_twice(tmp_path, lambda out: plot_variant_roc(scores, out, labels=labels))


def test_heatmap(tmp_path: Path, scores: Path) -> None:
    _draw_twice(tmp_path, lambda out: plot_mutation_heatmap(scores, out))


def test_heatmap_wraps_long_proteins(tmp_path: Path) -> None:
    """250 residues wrap into three rows of 100, each as wide as a 100-residue protein."""
    one = tmp_path / "one.png"
    plot_mutation_heatmap(_scores(tmp_path / "short.csv", list(range(1, 101))), one)
    long_scores = _scores(tmp_path / "long.csv", [p for p in range(3, 253) if p % 37])
    data = _draw_twice(tmp_path, lambda out: plot_mutation_heatmap(long_scores, out))
    (w1, h1), (w3, h3) = _png_size(one.read_bytes()), _png_size(data)
    assert abs(w3 - w1) < 0.1 * w1  # same width: 100 positions per row
    assert h3 > 2.5 * h1  # three rows


def test_heatmap_rejects_bad_table(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"mutant": ["A1C"], "evol_index": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(VAEInputError, match="lacks columns"):
        plot_mutation_heatmap(bad, tmp_path / "out.png")


def _alignment(tmp_path: Path, n_seq: int = 30, length: int = 12) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    codes = rng.integers(0, len(PROTEIN_ALPHABET), size=(n_seq, length)).astype(np.int8)
    adata = ad.AnnData(X=codes)
    adata.obs["weight"] = rng.uniform(0.2, 1.0, n_seq)
    path = tmp_path / "preprocessed.h5ad"
    adata.write_h5ad(path)
    return path, codes


def test_column_frequencies_weighted() -> None:
    codes = np.array([[0, 20], [0, 1], [2, 1]])
    freq = column_frequencies(codes, np.array([1.0, 1.0, 2.0]))
    assert freq.shape == (2, len(PROTEIN_ALPHABET))
    np.testing.assert_allclose(freq.sum(1), 1.0)
    assert freq[0, 0] == pytest.approx(0.5)
    assert freq[0, 2] == pytest.approx(0.5)
    assert freq[1, 20] == pytest.approx(0.25)


def test_sample_frequencies(tmp_path: Path) -> None:
    data, codes = _alignment(tmp_path)
    letters = np.array(list(PROTEIN_ALPHABET))
    samples = tmp_path / "samples.fasta"
    samples.write_text("".join(f">s{i}\n{''.join(letters[row])}\n" for i, row in enumerate(codes)))
    _draw_twice(tmp_path, lambda out: plot_sample_frequencies(samples, data, out))


def test_sample_frequencies_rejects_wrong_length(tmp_path: Path) -> None:
    data, _ = _alignment(tmp_path)
    samples = tmp_path / "samples.fasta"
    samples.write_text(">s0\nACDE\n")
    with pytest.raises(VAEInputError, match="model columns"):
        plot_sample_frequencies(samples, data, tmp_path / "out.png")


METRICS = {
    "n_cells": 150,
    "heldout_elbo_per_cell": -100.0,
    "vae": {"leiden_ari": 0.41, "knn_accuracy": 0.87, "n_leiden_clusters": 6, "other": 1.0},
    "pca_baseline": {"leiden_ari": 0.69, "knn_accuracy": 0.98, "n_leiden_clusters": 5},
}


def test_metrics_table_and_tsv(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(METRICS))
    tsv = tmp_path / "metrics_table.tsv"
    _draw_twice(tmp_path, lambda out: plot_metrics_table(metrics, out, table=tsv))
    table = pd.read_csv(tsv, sep="\t", index_col="metric")
    assert list(table.columns) == ["VAE", "PCA baseline"]
    assert list(table.index) == ["leiden_ari", "knn_accuracy", "n_leiden_clusters", "other"]
    assert table.loc["leiden_ari", "PCA baseline"] == pytest.approx(0.69)
    assert np.isnan(table.loc["other", "PCA baseline"])
    pd.testing.assert_frame_equal(metrics_table(metrics), metrics_table(METRICS))


def test_metrics_table_without_label_metrics(tmp_path: Path) -> None:
    metrics = {"n_cells": 10, "vae": {}, "pca_baseline": {}}
    assert metrics_table(metrics).empty
    _draw_twice(tmp_path, lambda out: plot_metrics_table(metrics, out))


def test_every_embedding_metric_has_a_description() -> None:
    from vae.metrics import embedding_metrics
    from vae.plotting._expression import METRIC_DESCRIPTIONS

    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 20)
    embedding = rng.normal(size=(60, 4)) + (labels == "a")[:, None] * 3
    batches = np.tile(["x", "y"], 30)
    names = set(embedding_metrics(embedding, labels, batches, seed=0))
    assert names == set(METRIC_DESCRIPTIONS)
