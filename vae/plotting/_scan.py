"""Protein figure: the model's variant scores against a deep mutational scan."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from vae.errors import VAEInputError
from vae.metrics import SCAN_SCORE_COLUMNS, scan_spearman
from vae.plotting._figures import _save


def plot_scan(scan_scores: str | Path, output: str | Path) -> None:
    """Scatter of predicted fitness (``-evol_index``) against the scan's fitness.

    The title gives Spearman ρ of the VAE and of the site-independent model on the same
    variants (as ``dms_spearman`` in metrics.json). Without a scan (an empty table) the
    figure says so, so the rule's output is the same whatever the configuration.

    Parameters
    ----------
    scan_scores
        ``dms_scores.csv`` written by the evaluation step.
    output
        PNG path.
    """
    table = pd.read_csv(scan_scores)
    missing = [c for c in SCAN_SCORE_COLUMNS if c not in table]
    if missing:
        raise VAEInputError(scan_scores, f"scan score table lacks columns {missing}")
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.set_xlabel("VAE predicted fitness (−evol_index)")
    ax.set_ylabel("measured fitness (scan)")
    if table.empty:
        ax.set_title("VAE vs deep mutational scan")
        ax.text(0.5, 0.5, "no scan configured\nfor this dataset", ha="center", va="center")
    else:
        vae = scan_spearman(table["evol_index"].to_numpy(), table["fitness"].to_numpy())
        site = scan_spearman(table["site_independent"].to_numpy(), table["fitness"].to_numpy())
        single = table["n_mutations"] == 1
        for mask, label, colour in (
            (single, "single", "tab:blue"),
            (~single, "multiple", "tab:orange"),
        ):
            if mask.any():
                ax.scatter(
                    -table.loc[mask, "evol_index"],
                    table.loc[mask, "fitness"],
                    s=4,
                    alpha=0.35,
                    color=colour,
                    linewidths=0,
                    label=f"{label} mutants ({int(mask.sum())})",
                    rasterized=True,
                )
        ax.set_title(
            f"{len(table)} variants: VAE ρ = {vae:.3f}, site-independent ρ = {site:.3f}",
            fontsize=10,
        )
        ax.legend(frameon=False, fontsize=8, markerscale=3)
    fig.tight_layout()
    _save(fig, output)
