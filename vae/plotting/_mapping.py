"""Figures and tables of a mapped query: joint UMAP, predicted-label counts, confusion matrix.

They read what ``vae map`` saved: the mapped query (``{output}.h5ad``: latent means,
batch, predicted labels, the true labels when the query had them) and the reference
cells stored with the mapped model (``{output stem}_model/reference.h5ad``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vae._constants import KEYS
from vae._io import atomic_path, read_embedding
from vae.errors import VAEInputError
from vae.metrics import UNKNOWN, evaluation_cells, neighbor_graph
from vae.plotting._figures import _save, _umap_axes

#: Colour of ``Unknown`` (uncertain) cells and of the reference in the dataset panel.
_GREY = "0.75"


def _mapping_keys(mapped: Any, path: str | Path) -> tuple[str, str]:
    """Return the label key and batch key that ``vae map`` recorded in ``uns["mapping"]``."""
    info = mapped.uns.get("mapping")
    if info is None:
        raise VAEInputError(path, 'no uns["mapping"]: not written by `vae map`')
    return str(info.get("label_key", "") or ""), str(info.get("batch_key", "") or "")


def confusion_matrix(
    true: np.ndarray, predicted: np.ndarray, *, normalize: bool = True
) -> pd.DataFrame:
    """Cells per true label (rows) and predicted label (columns).

    Columns are the true labels in order, then labels only predicted, then ``Unknown``.

    Parameters
    ----------
    true, predicted
        One label per cell.
    normalize
        Divide each row by its number of cells (the share of a true label's cells that
        got each prediction; rows sum to one).
    """
    true, predicted = np.asarray(true).astype(str), np.asarray(predicted).astype(str)
    rows = sorted(set(true))
    extra = sorted(set(predicted) - set(rows) - {UNKNOWN})
    columns = rows + extra + ([UNKNOWN] if UNKNOWN in set(predicted) else [])
    table = pd.crosstab(
        pd.Categorical(true, categories=rows), pd.Categorical(predicted, categories=columns)
    )
    table = table.reindex(index=rows, columns=columns, fill_value=0)
    table.index.name, table.columns.name = "true", "predicted"
    if normalize:
        table = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    return table


def label_accuracy(true: np.ndarray, predicted: np.ndarray) -> float:
    """Share of cells whose predicted label is the true one (``Unknown`` counts as wrong)."""
    true, predicted = np.asarray(true).astype(str), np.asarray(predicted).astype(str)
    return float((true == predicted).mean()) if true.size else float("nan")


def predicted_label_counts(mapped: str | Path) -> pd.DataFrame:
    """Cells per predicted label of a mapped query (``Unknown`` included), largest first.

    Columns: the predicted label, ``n_cells``, ``fraction``; with the query's true
    labels also ``n_correct`` (cells of that prediction whose true label it is). No
    rows when no labels were transferred.
    """
    cells = read_embedding(mapped, KEYS.X_VAE)
    label_key, _ = _mapping_keys(cells, mapped)
    column = f"predicted_{label_key}"
    name = column if label_key else "predicted_label"
    if not label_key or column not in cells.obs:
        return pd.DataFrame(columns=[name, "n_cells", "fraction"])
    predicted = cells.obs[column].astype(str)
    counts = predicted.value_counts()
    table = pd.DataFrame(
        {
            name: counts.index,
            "n_cells": counts.to_numpy(),
            "fraction": counts.to_numpy() / len(predicted),
        }
    )
    table = table.sort_values(["n_cells", name], ascending=[False, True], ignore_index=True)
    if label_key in cells.obs:
        right = predicted[predicted == cells.obs[label_key].astype(str)].value_counts()
        table["n_correct"] = table[name].map(right).fillna(0).astype(int)
    return table


def write_predicted_label_counts(mapped: str | Path, output: str | Path) -> pd.DataFrame:
    """Write :func:`predicted_label_counts` as a TSV; return the table."""
    table = predicted_label_counts(mapped)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4g")
    return table


def plot_confusion(mapped: str | Path, output: str | Path) -> float | None:
    """Confusion matrix of a mapped query's predicted labels against its true labels.

    Rows are true labels, columns predicted labels (``Unknown`` last), each row
    normalised to the share of that label's cells; the title gives the accuracy
    (:func:`label_accuracy`). A query without its true labels gets a figure that says
    so.

    Returns
    -------
    float or None
        The accuracy, ``None`` without true labels.
    """
    cells = read_embedding(mapped, KEYS.X_VAE)
    label_key, _ = _mapping_keys(cells, mapped)
    column = f"predicted_{label_key}"
    if not label_key or column not in cells.obs or label_key not in cells.obs:
        why = (
            "no labels were transferred (no label key)"
            if not label_key or column not in cells.obs
            else f"the query has no true labels (no obs column {label_key!r})"
        )
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No confusion matrix: {why}", ha="center", va="center")
        _save(fig, output)
        return None
    true, predicted = cells.obs[label_key].to_numpy(), cells.obs[column].to_numpy()
    table = confusion_matrix(true, predicted)
    counts = confusion_matrix(true, predicted, normalize=False).sum(axis=1)
    accuracy = label_accuracy(true, predicted)
    n_rows, n_cols = table.shape
    fig, ax = plt.subplots(figsize=(max(5.5, 2.8 + 0.6 * n_cols), 2.0 + 0.45 * n_rows))
    image = ax.imshow(table.to_numpy(), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of the row")
    if n_rows * n_cols <= 400:
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            if value > 0:
                color = "white" if value > 0.6 else "black"
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(n_cols), table.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n_rows), [f"{t} (n={counts[t]})" for t in table.index], fontsize=8)
    ax.set_xlabel(f"predicted {label_key}")
    ax.set_ylabel(f"true {label_key}")
    ax.set_title(
        f"Label transfer: accuracy {accuracy:.3f}\n({len(true):,} query cells; "
        "Unknown counts as wrong)",
        fontsize=10,
    )
    fig.tight_layout()
    _save(fig, output)
    return accuracy


def joint_cells(mapped: str | Path, reference: str | Path) -> Any:
    """Return reference and query cells in one AnnData: ``obsm["X_vae"]``, three ``obs`` keys.

    ``dataset`` (``reference`` or ``query``), ``batch`` and ``label`` (the reference's
    labels, the query's predicted labels; ``n/a`` where there are none).
    """
    import anndata as ad

    query = read_embedding(mapped, KEYS.X_VAE)
    ref = read_embedding(reference, KEYS.X_VAE)
    label_key, batch_key = _mapping_keys(query, mapped)
    if ref.obsm[KEYS.X_VAE].shape[1] != query.obsm[KEYS.X_VAE].shape[1]:
        raise VAEInputError(reference, "latent width differs from the mapped query's")

    def column(obs: pd.DataFrame, key: str) -> np.ndarray:
        return obs[key].astype(str).to_numpy() if key and key in obs else np.full(len(obs), "n/a")

    obs = pd.DataFrame(
        {
            "dataset": np.repeat(["reference", "query"], [ref.n_obs, query.n_obs]),
            "batch": np.concatenate([column(ref.obs, batch_key), column(query.obs, batch_key)]),
            "label": np.concatenate(
                [column(ref.obs, label_key), column(query.obs, f"predicted_{label_key}")]
            ),
        },
        index=[f"reference_{i}" for i in range(ref.n_obs)]
        + [f"query_{i}" for i in range(query.n_obs)],
    )
    joint = ad.AnnData(obs=obs)
    joint.obsm[KEYS.X_VAE] = np.concatenate([ref.obsm[KEYS.X_VAE], query.obsm[KEYS.X_VAE]])
    return joint


def _categorical_panel(ax: plt.Axes, coords: np.ndarray, values: pd.Series, size: float) -> None:
    """Scatter ``coords`` coloured by category (``Unknown``, ``reference`` and ``n/a`` grey)."""
    categories = pd.Categorical(values.astype(str))
    names = list(categories.categories)
    # grey categories first, so coloured points are drawn over them
    names.sort(key=lambda n: n not in (UNKNOWN, "reference", "n/a"))
    coloured = [n for n in names if n not in (UNKNOWN, "reference", "n/a")]
    cmap = plt.get_cmap("tab20", max(len(coloured), 1))
    for name in names:
        mask = np.asarray(categories == name)
        color = _GREY if name not in coloured else cmap(coloured.index(name))
        ax.scatter(*coords[mask].T, s=size, color=color, label=name, linewidths=0)
    ax.legend(fontsize=6, markerscale=max(1.0, 4 / size), frameon=False, loc="best")


def plot_joint_umap(
    mapped: str | Path,
    reference: str | Path,
    output: str | Path,
    *,
    seed: int = 0,
    max_cells: int = 50_000,
) -> int:
    """UMAP of the reference and the mapped query in the joint latent space, three panels.

    Coloured by dataset (reference or query), by batch and by label (the reference's
    labels, the query's predicted labels). scanpy neighbours and UMAP with a fixed seed;
    above ``max_cells`` a seeded random subsample of the joint cells is drawn.

    Parameters
    ----------
    mapped
        The ``.h5ad`` that ``vae map`` wrote.
    reference
        ``reference.h5ad`` of the mapped model folder.
    output
        PNG path.
    seed, max_cells
        Seed of the subsample, neighbour graph and layout; most cells drawn.

    Returns
    -------
    int
        Number of cells drawn.
    """
    import scanpy as sc

    full = joint_cells(mapped, reference)
    cells = evaluation_cells(full.n_obs, max_cells, seed)
    joint = full[cells].copy()
    subset = f" ({cells.size:,} of {full.n_obs:,})" if cells.size < full.n_obs else ""
    neighbor_graph(joint, KEYS.X_VAE, n_neighbors=15, seed=seed)
    sc.tl.umap(joint, random_state=seed)
    coords = joint.obsm["X_umap"]
    size = float(np.clip(20_000 / max(joint.n_obs, 1), 1.0, 12.0))
    panels = {
        "dataset": "reference / query",
        "batch": "batch",
        "label": "label (reference) / predicted label (query)",
    }
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.8))
    for ax, (key, title) in zip(axes, panels.items(), strict=True):
        _categorical_panel(ax, coords, joint.obs[key], size)
        ax.set_title(title + subset, fontsize=10)
        _umap_axes(ax)
    fig.tight_layout()
    _save(fig, output)
    return int(cells.size)
