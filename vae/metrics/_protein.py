"""Quality metrics of protein variant scores: ClinVar ROC AUC and Spearman ρ on scans."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score


def variant_auc(scores: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float]:
    """ROC AUC of ``evol_index`` against binary labels (1 = pathogenic).

    Parameters
    ----------
    scores
        Table with ``mutant`` and ``evol_index``.
    labels
        Table with ``mutant`` and ``label`` (0/1).
    """
    merged = scores.merge(labels, on="mutant", how="inner")
    out = {"n_labelled": int(len(labels)), "n_scored": int(len(merged))}
    if merged["label"].nunique() == 2:
        out["roc_auc"] = float(roc_auc_score(merged["label"], merged["evol_index"]))
    return out


def scan_spearman(evol_index: np.ndarray, fitness: np.ndarray) -> float:
    """Spearman ρ between predicted fitness (``-evol_index``) and a scan's fitness.

    ``evol_index`` is higher for more damaging variants, ``fitness`` higher for fitter
    ones, so a good model gives a positive ρ (ProteinGym's convention).
    """
    if len(fitness) < 3 or np.ptp(np.asarray(fitness, dtype=float)) == 0:
        return float("nan")
    return float(spearmanr(-np.asarray(evol_index), np.asarray(fitness)).statistic)
