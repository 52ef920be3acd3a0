"""Deterministic figures: fixed seeds, no timestamps in file metadata."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from vae._constants import KEYS  # noqa: E402
from vae._io import atomic_path, read_embedding  # noqa: E402
from vae.metrics import evaluation_cells, neighbor_graph  # noqa: E402

_METADATA = {"Software": None}


def _save(fig: plt.Figure, output: str | Path) -> None:
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=_METADATA, bbox_inches="tight")
    plt.close(fig)


def _umap_axes(ax: plt.Axes) -> None:
    """Label a UMAP panel's axes and drop their ticks (UMAP coordinates carry no units)."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP 1")
    ax.set_ylabel("UMAP 2")


def plot_training_curves(history: str | Path, output: str | Path) -> None:
    """Plot ELBO, reconstruction and KL per evaluation, train and validation.

    When the history holds learning-curve columns (``monitor_dms_spearman``,
    ``monitor_roc_auc``, see :func:`vae.metrics.learning_curve_monitor`), a fourth panel
    shows them against the same steps.

    Parameters
    ----------
    history
        ``history.tsv`` written by training.
    output
        PNG path.
    """
    table = pd.read_csv(history, sep="\t")
    monitored = {
        "monitor_dms_spearman": "scan Spearman ρ",
        "monitor_roc_auc": "ClinVar ROC AUC",
    }
    monitored = {k: v for k, v in monitored.items() if k in table}
    n_panels = 4 if monitored else 3
    fig, axes = plt.subplots(1, n_panels, figsize=(4 * n_panels, 3.4))
    if monitored:
        for column, label in monitored.items():
            axes[3].plot(table["step"], table[column], "o-", label=label)
        axes[3].set_xlabel("training step")
        axes[3].set_title("variant effects (few draws)")
        axes[3].legend(frameon=False)
    for ax, term in zip(axes[:3], ("elbo", "reconstruction", "kl"), strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            column = f"{split}_{term}"
            if column in table:
                ax.plot(table["step"], table[column], style, label=split)
        ax.set_xlabel("training step")
        ax.set_title({"elbo": "ELBO", "reconstruction": "-log p(x|z)", "kl": "KL(q||p)"}[term])
        ax.legend(frameon=False)
    fig.tight_layout()
    _save(fig, output)


def plot_latent(
    embedding: str | Path,
    output: str | Path,
    *,
    color_keys: list[str] | None = None,
    seed: int = 0,
    max_cells: int = 50_000,
) -> int:
    """UMAP of ``obsm['X_vae']`` coloured by ``obs`` columns (scanpy, fixed seed).

    Parameters
    ----------
    embedding
        ``embedding.h5ad``.
    output
        PNG path.
    color_keys
        ``obs`` columns to colour by (missing ones are skipped; none gives one panel);
        ``None`` uses the label and batch columns recorded in ``uns["obs_keys"]``.
    seed
        Seed of the neighbour graph, UMAP layout and subsample.
    max_cells
        Above this many cells, plot a seeded random subsample of this many
        (:func:`vae.metrics.evaluation_cells`); panel titles give the count.

    Returns
    -------
    int
        Number of cells plotted.
    """
    import scanpy as sc

    full = read_embedding(embedding, KEYS.X_VAE)
    cells = evaluation_cells(full.n_obs, max_cells, seed)
    adata = full[cells].copy()
    subset = f" ({cells.size:,} of {full.n_obs:,})" if cells.size < full.n_obs else ""
    neighbor_graph(adata, KEYS.X_VAE, n_neighbors=15, seed=seed)
    sc.tl.umap(adata, random_state=seed)
    if color_keys is None:
        color_keys = list(adata.uns.get("obs_keys", {}).values())
    keys = [k for k in color_keys if k in adata.obs] or [None]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.5), squeeze=False)
    coords = adata.obsm["X_umap"]
    for ax, key in zip(axes[0], keys, strict=True):
        if key is None:
            ax.scatter(coords[:, 0], coords[:, 1], s=4, c="tab:blue", linewidths=0)
        else:
            values = adata.obs[key]
            if pd.api.types.is_numeric_dtype(values):
                points = ax.scatter(coords[:, 0], coords[:, 1], s=4, c=values, linewidths=0)
                fig.colorbar(points, ax=ax, shrink=0.8)
            else:
                categories = pd.Categorical(values.astype(str))
                cmap = plt.get_cmap("tab20", max(len(categories.categories), 1))
                for i, name in enumerate(categories.categories):
                    mask = categories.codes == i
                    ax.scatter(*coords[mask].T, s=4, color=cmap(i), label=name, linewidths=0)
                ax.legend(fontsize=6, markerscale=2, frameon=False, loc="best")
        ax.set_title((key or "latent space") + subset)
        _umap_axes(ax)
    fig.tight_layout()
    _save(fig, output)
    return int(cells.size)


def plot_variant_scores(
    scores: str | Path,
    output: str | Path,
    *,
    labels: str | Path | None = None,
    protein: str | None = None,
) -> None:
    """Distribution of ``evol_index``, split by label class when labels are given.

    Parameters
    ----------
    scores
        ``variant_scores.csv``.
    output
        PNG path.
    labels
        ClinVar-style label CSV (see :func:`vae.data.read_variant_labels`).
    protein
        ``protein_name`` rows to use from ``labels``.
    """
    from vae.data import read_variant_labels

    table = pd.read_csv(scores)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(table["evol_index"].min(), table["evol_index"].max(), 50)
    ax.hist(table["evol_index"], bins=bins, color="0.75", label="all single substitutions")
    if labels is not None:
        merged = table.merge(read_variant_labels(labels, protein), on="mutant")
        for value, name, color in ((0, "benign", "tab:blue"), (1, "pathogenic", "tab:red")):
            subset = merged.loc[merged["label"] == value, "evol_index"]
            ax.hist(subset, bins=bins, color=color, alpha=0.7, label=f"{name} (n={len(subset)})")
    ax.set_xlabel("evol_index = ELBO(wt) - ELBO(mutant)")
    ax.set_ylabel("variants")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    _save(fig, output)
