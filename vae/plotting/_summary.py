"""The protein scoreboard as a figure: gain over the site-independent model per dataset."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from vae.plotting._figures import _save

#: Bar colour by target: scan ρ and ClinVar AUC are different measures.
_COLOURS = {"dms": "#1f77b4", "labels": "#d62728"}
_NAMES = {"dms": "scan: Spearman ρ", "labels": "labels: ROC AUC"}


def plot_protein_gain(table: str | Path | pd.DataFrame, output: str | Path) -> None:
    """Draw each dataset's gain (VAE − site-independent) as sorted bars with the seed spread.

    Error bars are ± one standard deviation of the seed ensemble's members (none for
    one model); the dashed line marks no gain, and the title gives the mean gain per
    measure. An empty table still writes a figure that says so.

    Parameters
    ----------
    table
        ``results/summary/protein.tsv`` (:func:`~vae.metrics.protein_summary`) or its frame.
    output
        PNG path.
    """
    if not isinstance(table, pd.DataFrame):
        table = pd.read_csv(table, sep="\t")
    table = table.sort_values("gain", ignore_index=True)
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.32 * len(table) + 1.2)))
    if table.empty:
        ax.text(0.5, 0.5, "no protein dataset with a scan or labels", ha="center", va="center")
        ax.set_axis_off()
        _save(fig, output)
        return
    y = np.arange(len(table))
    colours = [_COLOURS[t] for t in table["target"]]
    ax.barh(y, table["gain"], color=colours, alpha=0.85)
    spread = table["seed_sd"].notna().to_numpy()
    if spread.any():  # one model has no spread to show
        ax.errorbar(
            table["gain"][spread],
            y[spread],
            xerr=table["seed_sd"][spread],
            fmt="none",
            ecolor="0.2",
            capsize=2,
            linewidth=0.8,
        )
    ax.set_yticks(
        y, [f"{d} ({t})" for d, t in zip(table["dataset"], table["target"], strict=True)]
    )
    ax.axvline(0.0, color="0.3", linestyle="--", linewidth=0.8)
    ax.set_xlabel("gain over the site-independent model (VAE − site-independent)")
    means = [
        f"{_NAMES[t]} mean {g['gain'].mean():+.3f} (n={len(g)})"
        for t, g in table.groupby("target", sort=True)
    ]
    ax.set_title("; ".join(means), fontsize=9)
    handles = [
        Patch(color=colour, label=_NAMES[target])
        for target, colour in _COLOURS.items()
        if (table["target"] == target).any()
    ]
    ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=False)
    _save(fig, output)
