"""Quality of EVE scores and classes against benign/pathogenic labels."""

from __future__ import annotations

import re

import pandas as pd
from sklearn.metrics import roc_auc_score

_CLASS_COLUMN = re.compile(r"eve_class_(?P<percent>[0-9.]+)pct")


def eve_metrics(scores: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float | int]:
    """ROC AUC of ``eve_score``, and accuracy and coverage of each EVE class column.

    Accuracy is the fraction of labelled variants with a class (not ``Uncertain``)
    whose class matches the label; coverage the fraction of labelled variants with a
    class (EVE's ``compute_accuracy_with_uncertain``, as fractions rather than rounded
    percentages). Values that are undefined (one label class only, no variant
    classified) are left out, so the result stays valid JSON.

    Parameters
    ----------
    scores
        Table from :func:`vae.model.eve_scores`: ``mutant``, ``eve_score`` and
        ``eve_class_<P>pct`` columns (``Pathogenic``, ``Benign``, ``Uncertain``).
    labels
        Table with ``mutant`` and ``label`` (1 pathogenic, 0 benign), e.g. from
        :func:`vae.data.read_variant_labels`.

    Returns
    -------
    dict
        ``eve_n_labelled_scored``; ``eve_roc_auc``; per class column
        ``eve_coverage_<P>pct``, ``eve_n_classified_<P>pct`` and ``eve_accuracy_<P>pct``.
    """
    merged = scores.merge(labels[["mutant", "label"]], on="mutant", how="inner")
    merged = merged[merged["label"].isin([0, 1])].dropna(subset=["eve_score"])
    out: dict[str, float | int] = {"eve_n_labelled_scored": int(len(merged))}
    if merged["label"].nunique() == 2:
        out["eve_roc_auc"] = float(roc_auc_score(merged["label"], merged["eve_score"]))
    for column in scores.columns:
        match = _CLASS_COLUMN.fullmatch(column)
        if match is None or merged.empty:
            continue
        suffix = f"{match['percent']}pct"
        classified = merged[merged[column] != "Uncertain"]
        out[f"eve_coverage_{suffix}"] = float(len(classified) / len(merged))
        out[f"eve_n_classified_{suffix}"] = int(len(classified))
        if len(classified):
            called = (classified[column] == "Pathogenic").astype(int)
            out[f"eve_accuracy_{suffix}"] = float((called == classified["label"]).mean())
    return out
