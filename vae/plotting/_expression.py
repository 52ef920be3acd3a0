"""Expression figures: embedding metrics of the VAE next to the PCA baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vae._io import atomic_path
from vae.errors import VAEInputError
from vae.plotting._figures import _save

#: Metrics in table order, with what they measure (all but the cluster count: higher is better).
METRIC_DESCRIPTIONS = {
    "leiden_ari": "Leiden clusters vs labels, adjusted Rand index",
    "leiden_nmi": "Leiden clusters vs labels, normalised mutual info.",
    "kmeans_ari": "KMeans (k = no. of labels) vs labels, ARI, 5 seeds",
    "knn_accuracy": "kNN(15) label accuracy, 5-fold cross-validated",
    "silhouette_label": "silhouette of labels",
    "batch_mixing_silhouette": "batch mixing, 1 - |batch silhouette|",
    "n_leiden_clusters": "number of Leiden clusters",
}
_NOT_RANKED = {"n_leiden_clusters"}
COLUMNS = {"vae": "VAE", "pca_baseline": "PCA baseline"}


def _read_metrics(metrics: str | Path) -> dict[str, Any]:
    try:
        return json.loads(Path(metrics).read_text())
    except FileNotFoundError as err:
        raise VAEInputError(metrics, "file does not exist") from err
    except json.JSONDecodeError as err:
        raise VAEInputError(metrics, f"not valid JSON ({err.msg})") from err


def metrics_table(metrics: str | Path | dict[str, Any]) -> pd.DataFrame:
    """Embedding metrics as a table: one row per metric, columns ``VAE`` and ``PCA baseline``.

    Parameters
    ----------
    metrics
        ``metrics.json`` of an expression dataset (or its parsed content).
    """
    content = _read_metrics(metrics) if isinstance(metrics, str | Path) else metrics
    parts = {name: content.get(key) or {} for key, name in COLUMNS.items()}
    names = set().union(*parts.values())
    order = [m for m in METRIC_DESCRIPTIONS if m in names] + sorted(
        names - set(METRIC_DESCRIPTIONS)
    )
    table = pd.DataFrame(
        {name: [part.get(m, np.nan) for m in order] for name, part in parts.items()},
        index=pd.Index(order, name="metric"),
        dtype=float,
    )
    return table


def plot_metrics_table(
    metrics: str | Path | dict[str, Any],
    output: str | Path,
    *,
    table: str | Path | None = None,
) -> None:
    """Draw the VAE vs PCA baseline metrics table as a figure (and write it as TSV).

    Parameters
    ----------
    metrics
        ``metrics.json`` of an expression dataset (or its parsed content).
    output
        PNG path.
    table
        Also write the table here as TSV (``metric``, ``VAE``, ``PCA baseline``).
    """
    frame = metrics_table(metrics)
    if table is not None:
        with atomic_path(table) as tmp:
            frame.to_csv(tmp, sep="\t", float_format="%.4g", na_rep="NA")

    cells = [
        [m, METRIC_DESCRIPTIONS.get(m, "")]
        + ["n/a" if np.isnan(v) else (f"{v:.0f}" if m in _NOT_RANKED else f"{v:.3f}") for v in row]
        for m, row in zip(frame.index, frame.to_numpy(), strict=True)
    ]
    fig, ax = plt.subplots(figsize=(9.5, 0.7 + 0.3 * (max(len(cells), 1) + 1)))
    ax.axis("off")
    if not cells:
        ax.text(
            0.5,
            0.5,
            "no embedding metrics: the dataset has no label_key or batch_key",
            ha="center",
            va="center",
        )
    else:
        widths = [0.27, 0.45, 0.13, 0.15]
        drawn = ax.table(
            cellText=cells,
            colLabels=["metric", "what it measures", *frame.columns],
            colWidths=widths,
            cellLoc="left",
            bbox=(0, 0, 1, 1),
        )
        drawn.auto_set_font_size(False)
        drawn.set_fontsize(9)
        for (row, col), cell in drawn.get_celld().items():
            cell.set_edgecolor("0.8")
            cell.PAD = 0.012 / widths[col]  # the same padding in every column
            if col >= 2:
                cell.set_text_props(ha="right")
            if row == 0:
                cell.set_text_props(weight="bold")
                cell.set_facecolor("0.92")
        for i, (metric, row) in enumerate(zip(frame.index, frame.to_numpy(), strict=True)):
            if metric in _NOT_RANKED or np.isnan(row).any() or row[0] == row[1]:
                continue
            best = int(np.argmax(row))
            drawn[i + 1, 2 + best].set_text_props(weight="bold")
    ax.set_title(
        "Embedding metrics: VAE latent space vs PCA of log-normalised counts\n"
        "(higher is better except the cluster count; the better of the two in bold)",
        fontsize=10,
    )
    _save(fig, output)
