"""The seed summary of ``benchmarks/expression_vs_scvi.py`` (paired differences)."""

from __future__ import annotations

import numpy as np
import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("expression_vs_scvi")


def _result(seed: int, ours_ari: float, scvi_ari: float, ours_s: float, scvi_s: float) -> dict:
    metrics = {name: 0.5 for name in ("leiden_ari", "leiden_nmi", "knn_accuracy")}
    metrics["silhouette_label"] = 0.1
    side = {"heldout_elbo_per_cell_sampled_z": -700.0}
    return {
        "seed": seed,
        "ours": side | {"metrics": metrics | {"kmeans_ari": ours_ari}, "train_seconds": ours_s},
        "scvi": side | {"metrics": metrics | {"kmeans_ari": scvi_ari}, "train_seconds": scvi_s},
        "pca": {"metrics": metrics | {"kmeans_ari": 0.7, "knn_accuracy": 0.9}},
    }


def test_summary_pairs_seeds(bench):
    results = [
        _result(0, 0.50, 0.55, 40.0, 100.0),
        _result(1, 0.60, 0.55, 45.0, 90.0),
        _result(2, 0.58, 0.56, 50.0, 100.0),
    ]
    summary = bench.summarize(results)

    diff = np.array([-0.05, 0.05, 0.02])
    kmeans = summary["paired"]["scvi"]["kmeans_ari"]
    assert kmeans["mean_difference"] == pytest.approx(diff.mean())
    assert kmeans["se"] == pytest.approx(diff.std(ddof=1) / np.sqrt(3))
    assert kmeans["ours_at_least_as_good"] == 2
    assert summary["sides"]["ours"]["kmeans_ari"]["mean"] == pytest.approx(0.56)
    ratio = summary["paired"]["scvi"]["time_ratio"]
    assert ratio["per_seed"] == pytest.approx([0.4, 0.5, 0.5])
    assert ratio["max"] == pytest.approx(0.5)
    knn_vs_pca = summary["paired"]["pca"]["knn_accuracy"]
    assert knn_vs_pca["mean_difference"] == pytest.approx(-0.4)
    assert knn_vs_pca["ours_at_least_as_good"] == 0
    assert "heldout_elbo" not in summary["paired"]["pca"]

    table = bench.summary_table(summary)
    assert "| kmeans_ari | 0.560 (0.053) | 0.553 (0.006) |" in table
    assert "+0.007 +/- 0.030 [2/3]" in table
