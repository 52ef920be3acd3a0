"""The protein scoreboard: one row per dataset and target, VAE next to the site-independent model.

Built from what the workflow already wrote (``metrics.json`` of each protein dataset and
the ``manifest.json`` of each of its models), the way ProteinGym summarises a model: the
measure (Spearman ρ on a scan, ROC AUC on labels), the site-independent model's on the
same variants, the gain, and the spread over the seed ensemble's members.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Columns of ``results/summary/protein.tsv``, in order.
PROTEIN_SUMMARY_COLUMNS = (
    "dataset",
    "target",
    "measure",
    "n_scored",
    "vae",
    "site_independent",
    "gain",
    "n_seeds",
    "seed_sd",
    "member_gain_min",
    "scoring",
    "neff",
    "neff_per_column",
    "n_columns",
    "n_sequences",
    "steps",
    "train_seconds",
)

#: Target -> (measure, metrics key of the VAE, of the baseline, of the count scored).
_TARGETS = {
    "dms": ("spearman", "dms_spearman", "site_independent_dms_spearman", "dms_n_scored"),
    "labels": ("roc_auc", "roc_auc", "site_independent_roc_auc", "n_scored"),
}


def _member_values(metrics: dict[str, Any], target: str) -> list[float]:
    """Each ensemble member's measure (only the main model's for a single model)."""
    if target == "dms":
        values = metrics.get("dms_member_spearman") or [metrics.get("dms_spearman")]
    else:
        members = metrics.get("members") or [{"roc_auc": metrics.get("roc_auc")}]
        values = [m.get("roc_auc") for m in members]
    return [float(v) for v in values if v is not None]


def _scoring(settings: dict[str, Any]) -> str:
    """How the variants were scored: ``elbo``, ``evidence`` or ``profile@<shrink>``."""
    estimator = settings.get("estimator", "elbo")
    if estimator == "profile":
        return f"profile@{settings.get('latent_shrink')}"
    return estimator


def _mean_seconds(manifests: list[dict[str, Any]]) -> float:
    """Mean training time per model (NaN without manifests)."""
    seconds = [m.get("train_seconds", np.nan) for m in manifests]
    return float(np.mean(seconds)) if seconds else np.nan


def protein_summary_rows(
    dataset: str, metrics: dict[str, Any], manifests: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Scoreboard rows of one protein dataset: one per target it was measured on.

    Parameters
    ----------
    dataset
        The dataset's name in the sheet.
    metrics
        Its ``metrics.json`` (:func:`~vae.steps.evaluate_protein`).
    manifests
        The ``manifest.json`` of each of its models (the main model first).

    Returns
    -------
    list of dict
        Keys :data:`PROTEIN_SUMMARY_COLUMNS`; ``seed_sd`` is the standard deviation of
        the members' measures (NaN for one model), ``member_gain_min`` the worst
        member's gain over the site-independent model, ``train_seconds`` the mean
        training time per model and ``steps`` the main model's optimiser steps.
    """
    rows = []
    for target, (measure, key, site_key, count_key) in _TARGETS.items():
        if metrics.get(key) is None or metrics.get(site_key) is None:
            continue
        vae, site = float(metrics[key]), float(metrics[site_key])
        members = _member_values(metrics, target)
        columns = int(metrics["n_columns"])
        rows.append(
            {
                "dataset": dataset,
                "target": target,
                "measure": measure,
                "n_scored": int(metrics.get(count_key, 0)),
                "vae": vae,
                "site_independent": site,
                "gain": vae - site,
                "n_seeds": len(manifests),
                "seed_sd": float(np.std(members, ddof=1)) if len(members) > 1 else np.nan,
                "member_gain_min": min(members) - site if members else np.nan,
                "scoring": _scoring(metrics.get("score_settings", {})),
                "neff": float(metrics["neff"]),
                "neff_per_column": float(metrics["neff"]) / columns,
                "n_columns": columns,
                "n_sequences": int(metrics["n_sequences"]),
                "steps": int(manifests[0].get("steps", 0)) if manifests else 0,
                "train_seconds": _mean_seconds(manifests),
            }
        )
    return rows


def protein_summary(
    entries: list[tuple[str, dict[str, Any], list[dict[str, Any]]]],
) -> pd.DataFrame:
    """Build the scoreboard of several datasets, sorted by target and gain (best first).

    ``entries`` holds ``(dataset, metrics, manifests)`` as for
    :func:`protein_summary_rows`. Datasets with neither a scan nor labels give no row.
    """
    rows = [row for entry in entries for row in protein_summary_rows(*entry)]
    table = pd.DataFrame(rows, columns=list(PROTEIN_SUMMARY_COLUMNS))
    return table.sort_values(["target", "gain"], ascending=[True, False], ignore_index=True)
