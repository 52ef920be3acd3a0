"""Protein figures: ROC of variant scores, mutational heat map, sample frequencies."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import Normalize

from vae._alphabet import AMINO_ACIDS, GAP, PROTEIN_ALPHABET
from vae._constants import KEYS
from vae.errors import VAEInputError
from vae.metrics._samples import column_frequencies, frequency_correlation, read_samples
from vae.plotting._figures import _save

_SCORE_COLUMNS = ("mutant", "position", "wt", "mt", "evol_index")


def _read_scores(scores: str | Path) -> pd.DataFrame:
    table = pd.read_csv(scores)
    missing = [c for c in _SCORE_COLUMNS if c not in table]
    if missing:
        raise VAEInputError(scores, f"variant score table lacks columns {missing}")
    return table


def _message(ax: plt.Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, wrap=True)


def plot_variant_roc(
    scores: str | Path,
    output: str | Path,
    *,
    labels: str | Path | None = None,
    protein: str | None = None,
) -> None:
    """ROC curve of ``evol_index`` against benign/pathogenic labels.

    Without labels (or with labels of a single class among the scored variants) the
    figure is still written and says why there is no curve, so the rule's output is
    the same whatever the configuration.

    Parameters
    ----------
    scores
        ``variant_scores.csv``.
    output
        PNG path.
    labels
        ClinVar-style label CSV (see :func:`vae.data.read_variant_labels`), or ``None``.
    protein
        ``protein_name`` rows to use from ``labels``.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    from vae.data import read_variant_labels

    table = _read_scores(scores)
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot([0, 1], [0, 1], ":", color="0.6", linewidth=1, label="chance (AUC = 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (benign called damaging)")
    ax.set_ylabel("true positive rate (pathogenic called damaging)")
    if labels is None:
        ax.set_title("ROC of evol_index")
        _message(ax, "no variant labels configured\nfor this dataset")
    else:
        label_table = read_variant_labels(labels, protein)
        merged = table.merge(label_table, on="mutant", how="inner").dropna(subset=["evol_index"])
        n_path = int((merged["label"] == 1).sum())
        n_benign = int((merged["label"] == 0).sum())
        counts = f"{n_path} pathogenic, {n_benign} benign scored of {len(label_table)} labelled"
        if n_path == 0 or n_benign == 0:
            ax.set_title("ROC of evol_index")
            _message(ax, f"ROC undefined: need both classes\n({counts})")
        else:
            fpr, tpr, _ = roc_curve(merged["label"], merged["evol_index"])
            auc = roc_auc_score(merged["label"], merged["evol_index"])
            ax.plot(fpr, tpr, color="tab:red", linewidth=2, label=f"VAE (AUC = {auc:.3f})")
            ax.set_title(f"ROC of evol_index\n{counts}", fontsize=10)
            ax.legend(loc="lower right", frameon=False, fontsize=9)
    fig.tight_layout()
    _save(fig, output)


def plot_mutation_heatmap(
    scores: str | Path,
    output: str | Path,
    *,
    row_length: int = 100,
) -> None:
    """Heat map of ``evol_index``: the 20 amino acids by focus position.

    Long proteins wrap into several panels of ``row_length`` positions, each with the
    same cell width. Wild-type cells carry a black dot; residues between the first and
    last scored one that are not model columns are grey.

    Parameters
    ----------
    scores
        ``variant_scores.csv`` (``position``, ``wt``, ``mt``, ``evol_index``).
    output
        PNG path.
    row_length
        Positions per panel.
    """
    table = _read_scores(scores)
    if table.empty:
        raise VAEInputError(scores, "no variant scores to plot")
    first, last = int(table["position"].min()), int(table["position"].max())
    if last - first + 1 > row_length:
        # wrapped panels start at residue 1, row_length + 1, ... so numbers line up
        origin = (first - 1) // row_length * row_length + 1
    else:
        origin = first
    span = last - origin + 1
    aa_row = {aa: i for i, aa in enumerate(AMINO_ACIDS)}
    matrix = np.full((len(AMINO_ACIDS), span), np.nan)
    rows = table["mt"].map(aa_row)
    keep = rows.notna().to_numpy()
    matrix[rows[keep].astype(int), table["position"][keep] - origin] = table["evol_index"][keep]
    wild_type = table.drop_duplicates("position").set_index("position")["wt"]
    modelled = np.zeros(span, dtype=bool)
    modelled[wild_type.index.to_numpy() - origin] = True
    inside = np.arange(span) >= first - origin

    values = table["evol_index"].to_numpy(dtype=float)
    limit = float(np.nanpercentile(np.abs(values), 99)) if np.isfinite(values).any() else 0.0
    limit = limit if np.isfinite(limit) and limit > 0 else 1.0
    norm = Normalize(vmin=-limit, vmax=limit)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad=(0, 0, 0, 0))

    n_panels = math.ceil(span / row_length)
    width = min(span, row_length)
    fig, axes = plt.subplots(
        n_panels,
        1,
        figsize=(max(6.0, 2.2 + 0.14 * width), 0.8 + 3.0 * n_panels),
        squeeze=False,
        layout="constrained",
    )
    for panel, ax in enumerate(axes[:, 0]):
        start = panel * row_length
        stop = min(start + row_length, span)
        cols = np.arange(start, stop)
        for col in cols[inside[cols] & ~modelled[cols]]:
            ax.axvspan(col - start - 0.5, col - start + 0.5, color="0.85", linewidth=0)
        ax.imshow(
            matrix[:, start:stop],
            cmap=cmap,
            norm=norm,
            aspect="auto",
            interpolation="nearest",
            extent=(-0.5, stop - start - 0.5, len(AMINO_ACIDS) - 0.5, -0.5),
        )
        shown = cols[modelled[cols]]
        wt_letters = [wild_type[origin + c] for c in shown]
        dots = [
            (c - start, aa_row[wt])
            for c, wt in zip(shown, wt_letters, strict=True)
            if wt in aa_row
        ]
        if dots:
            ax.plot(*zip(*dots, strict=True), "o", color="black", markersize=2.2)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(len(AMINO_ACIDS) - 0.5, -0.5)
        ax.set_yticks(range(len(AMINO_ACIDS)), list(AMINO_ACIDS), fontsize=7)
        ax.set_ylabel("mutant amino acid", fontsize=8)
        numbered = [c for c in cols if (origin + c) % 10 == 0] or [cols[0]]
        ax.set_xticks([c - start for c in numbered], [str(origin + c) for c in numbered])
        ax.tick_params(axis="x", labelsize=7)
        top = ax.secondary_xaxis("top")
        top.set_xticks([c - start for c in shown], wt_letters, fontsize=6)
        top.tick_params(length=0, pad=1)
        ax.set_xlabel(f"focus position {origin + start}-{origin + stop - 1}", fontsize=8)
    colorbar = fig.colorbar(
        plt.cm.ScalarMappable(norm=norm, cmap=cmap),
        ax=axes[:, 0].tolist(),
        shrink=min(1.0, 0.9 / n_panels + 0.1),
        extend="both",
    )
    colorbar.set_label("evol_index (red: mutant disfavoured)", fontsize=8)
    fig.suptitle(
        "evol_index of every single substitution of the focus sequence\n"
        "wild type: letters on top and dots; grey: residue not modelled",
        fontsize=9,
    )
    _save(fig, output)


def plot_sample_frequencies(
    samples: str | Path,
    data: str | Path,
    output: str | Path,
) -> None:
    """Per-column symbol frequencies of generated sequences against the natural alignment.

    Parameters
    ----------
    samples
        ``samples.fasta`` (sequences over the model's columns).
    data
        ``preprocessed.h5ad``: alphabet indices in ``X``, sequence weights in
        ``obs['weight']``.
    output
        PNG path.
    """
    import anndata as ad

    adata = ad.read_h5ad(data)
    natural = np.asarray(adata.X)
    weights = adata.obs[KEYS.WEIGHT].to_numpy(dtype=float)
    generated = read_samples(samples, natural.shape[1])
    x = column_frequencies(natural, weights)
    y = column_frequencies(generated)
    r = frequency_correlation(generated, natural, weights)

    gap = PROTEIN_ALPHABET.index(GAP)
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0, 1], [0, 1], ":", color="0.6", linewidth=1)
    ax.scatter(
        x[:, :gap].ravel(),
        y[:, :gap].ravel(),
        s=6,
        alpha=0.5,
        color="tab:blue",
        linewidths=0,
        label="amino acids",
    )
    ax.scatter(
        x[:, gap], y[:, gap], s=10, alpha=0.8, color="tab:orange", linewidths=0, label="gap"
    )
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel(f"natural frequency (weighted, Neff = {weights.sum():.0f})")
    ax.set_ylabel(f"sample frequency ({len(generated)} generated sequences)")
    ax.set_title(f"Column frequencies, samples vs natural\nPearson r = {r:.3f}", fontsize=10)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    fig.tight_layout()
    _save(fig, output)


def plot_eve_mixture(
    scores: str | Path,
    output: str | Path,
    *,
    labels: str | Path | None = None,
    protein: str | None = None,
    seed: int = 0,
    n_init: int = 30,
    bins: int = 60,
) -> None:
    """Histogram of ``evol_index`` with EVE's two fitted mixture components.

    The mixture is refit here on the table's evol indices with
    :func:`vae.model.fit_eve_mixture` (the same seed and ``n_init`` give the same fit as
    :func:`vae.model.eve_scores` on this one table). Each component's density is drawn
    weighted by its mixing weight, next to their sum; when the table has ``eve_score``,
    it is drawn against the right axis. With ``labels``, a second panel marks the
    labelled variants, pathogenic and benign, at their evol index.

    Parameters
    ----------
    scores
        ``variant_scores.csv`` (``mutant``, ``evol_index``, optionally ``eve_score``).
    output
        PNG path.
    labels
        ClinVar-style label CSV (see :func:`vae.data.read_variant_labels`), or ``None``.
    protein
        ``protein_name`` rows to use from ``labels``.
    seed, n_init
        Settings of the mixture fit.
    bins
        Histogram bins.
    """
    from vae.data import read_variant_labels
    from vae.model._eve_mixture import fit_eve_mixture

    table = pd.read_csv(scores)
    missing = [c for c in ("mutant", "evol_index") if c not in table]
    if missing:
        raise VAEInputError(scores, f"variant score table lacks columns {missing}")
    values = table["evol_index"].to_numpy(dtype=float)
    mixture = fit_eve_mixture(values, seed=seed, n_init=n_init, source=str(scores))
    grid = np.linspace(values.min(), values.max(), 400)
    padding = 0.05 * (grid[-1] - grid[0])
    grid = np.linspace(grid[0] - padding, grid[-1] + padding, 400)
    density = mixture.component_densities(grid)

    if labels is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        rug = None
    else:
        fig, (ax, rug) = plt.subplots(
            2, 1, figsize=(6.4, 5.2), sharex=True, height_ratios=(4, 1.2)
        )
    ax.hist(values, bins=bins, density=True, color="0.8", label=f"{len(values)} variants")
    for k, (name, color) in enumerate((("benign", "tab:blue"), ("pathogenic", "tab:red"))):
        component = mixture.pathogenic if name == "pathogenic" else 1 - mixture.pathogenic
        ax.plot(
            grid,
            density[:, component],
            color=color,
            linewidth=2,
            label=(
                f"{name}: w = {mixture.weights[component]:.2f}, "
                f"μ = {mixture.means[component]:.2f}, σ = {mixture.sds[component]:.2f}"
            ),
            zorder=3 + k,
        )
    ax.plot(grid, density.sum(1), "--", color="black", linewidth=1, label="mixture")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    if "eve_score" in table:
        order = np.argsort(values, kind="stable")
        right = ax.twinx()
        right.plot(values[order], table["eve_score"].to_numpy()[order], ":", color="tab:purple")
        right.set_ylim(-0.02, 1.02)
        right.set_ylabel("eve_score (dotted)", color="tab:purple")
    title = "EVE mixture of evol indices"
    if rug is not None:
        label_table = read_variant_labels(labels, protein)
        merged = table.merge(label_table, on="mutant", how="inner")
        names = []
        for row, (label, name, color) in enumerate(
            ((0, "benign", "tab:blue"), (1, "pathogenic", "tab:red"))
        ):
            x = merged.loc[merged["label"] == label, "evol_index"].to_numpy(dtype=float)
            rug.plot(x, np.full(x.size, row), "|", color=color, markersize=14, alpha=0.6)
            names.append(f"{name} ({x.size})")
        rug.set_ylim(-0.6, 1.6)
        rug.set_yticks([0, 1], names, fontsize=8)
        rug.set_xlabel("evol_index (higher: more damaging)")
        title += f"\n{len(merged)} of {len(label_table)} labelled variants scored"
    else:
        ax.set_xlabel("evol_index (higher: more damaging)")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, output)
