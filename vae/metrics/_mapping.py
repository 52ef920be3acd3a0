"""Label transfer from a reference latent space and the quality of a query mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.neighbors import NearestNeighbors

from vae.metrics._expression import evaluation_cells, kmeans_ari

UNKNOWN = "Unknown"

#: Query cells looked up in a neighbour index at a time (bounds the distance arrays).
CHUNK_CELLS = 50_000
#: Query cells whose neighbours :func:`query_mixing` looks up, at most (a seeded subsample).
MIXING_MAX_CELLS = 50_000


def knn_label_transfer(
    reference: np.ndarray,
    labels: np.ndarray,
    query: np.ndarray,
    *,
    n_neighbors: int = 50,
    threshold: float = 0.5,
    chunk_size: int = CHUNK_CELLS,
) -> pd.DataFrame:
    """Weighted kNN label transfer with scArches' Gaussian distance weights.

    The ``n_neighbors`` nearest reference cells of each query cell vote with weights
    ``exp(-d / (2 / sd(d))**2)``, normalised to sum to one (``sd`` over the cell's
    neighbour distances; ``scarches.utils.weighted_knn_transfer``). The label with the
    largest weight share wins; the uncertainty is one minus that share. Cells with an
    uncertainty above ``threshold`` get ``Unknown``. The index holds the reference only,
    so query cells are voted on ``chunk_size`` at a time (the same result for any size).

    Returns
    -------
    pandas.DataFrame
        One row per query cell: ``predicted`` (``Unknown`` above the threshold),
        ``best`` (the winning label regardless of the threshold) and ``uncertainty``.
    """
    labels = np.asarray(labels).astype(str)
    query = np.asarray(query)
    k = min(n_neighbors, len(labels))
    index = NearestNeighbors(n_neighbors=k).fit(reference)
    classes, codes = np.unique(labels, return_inverse=True)
    best = np.empty(len(query), dtype=classes.dtype)
    uncertainty = np.empty(len(query))
    for start in range(0, len(query), chunk_size):
        stop = min(start + chunk_size, len(query))
        distances, neighbours = index.kneighbors(query[start:stop])
        with np.errstate(divide="ignore", invalid="ignore"):
            bandwidth = (2.0 / distances.std(axis=1, keepdims=True)) ** 2
            affinity = np.exp(-distances / bandwidth)
        # equal distances (sd 0) give an infinite bandwidth: equal weights
        affinity = np.where(np.isfinite(affinity), affinity, 1.0)
        weights = affinity / affinity.sum(axis=1, keepdims=True)
        votes = np.zeros((stop - start, len(classes)))
        np.add.at(votes, (np.arange(stop - start)[:, None], codes[neighbours]), weights)
        best[start:stop] = classes[votes.argmax(axis=1)]
        uncertainty[start:stop] = np.clip(1.0 - votes.max(axis=1), 0.0, 1.0)
    predicted = np.where(uncertainty > threshold, UNKNOWN, best)
    return pd.DataFrame({"predicted": predicted, "best": best, "uncertainty": uncertainty})


def query_mixing(
    reference: np.ndarray,
    query: np.ndarray,
    *,
    k: int = 15,
    chunk_size: int = CHUNK_CELLS,
    max_cells: int = MIXING_MAX_CELLS,
    seed: int = 0,
) -> float:
    """Mean share of reference cells among each query cell's ``k`` neighbours, relative.

    Neighbours are found in the joint embedding (the cell itself excluded; query cells
    are looked up ``chunk_size`` at a time); the share is divided by the share of
    reference cells among all other cells, so 1 means the query sits among reference
    cells as if mixed at random and 0 that it stays apart. Above ``max_cells`` query
    cells the mean is taken over a seeded random subsample of them (every cell stays in
    the joint embedding): the neighbour search costs more than mapping a large query.
    """
    joint = np.concatenate([reference, query])
    n_ref, n = len(reference), len(reference) + len(query)
    k = min(k, n - 1)
    if n_ref == 0 or k < 1:
        return float("nan")
    index = NearestNeighbors(n_neighbors=k + 1).fit(joint)
    cells = query[evaluation_cells(len(query), max_cells, seed)]
    total = 0.0
    for start in range(0, len(cells), chunk_size):
        neighbours = index.kneighbors(cells[start : start + chunk_size])[1][:, 1:]
        total += (neighbours < n_ref).mean(axis=1).sum()
    return float(total / len(cells) / (n_ref / (n - 1)))


def mapping_metrics(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
    transfer: pd.DataFrame,
    *,
    k: int = 15,
    seed: int = 0,
) -> dict[str, float]:
    """Label-transfer accuracy, confident share, query mixing and joint KMeans ARI.

    ``label_accuracy`` scores the winning label of every cell (``Unknown`` not applied);
    ``confident_accuracy`` only the cells below the uncertainty threshold, whose share is
    ``confident_share``. ``kmeans_ari`` clusters the joint embedding (k = number of labels)
    against the reference labels and the query's true labels.
    """
    truth = np.asarray(query_labels).astype(str)
    confident = transfer["predicted"].to_numpy() != UNKNOWN
    correct = transfer["best"].to_numpy() == truth
    joint_labels = np.concatenate([np.asarray(reference_labels).astype(str), truth])
    return {
        "n_query": int(len(truth)),
        "n_reference": int(len(reference)),
        "label_accuracy": float(correct.mean()),
        "confident_share": float(confident.mean()),
        "confident_accuracy": float(correct[confident].mean()) if confident.any() else None,
        "query_mixing": query_mixing(reference, query, k=k, seed=seed),
        "query_mixing_cells": int(min(len(truth), MIXING_MAX_CELLS)),
        "kmeans_ari": kmeans_ari(np.concatenate([reference, query]), joint_labels, seed=seed),
    }
