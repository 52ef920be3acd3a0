"""Quality metrics of expression embeddings (scikit-learn and scanpy)."""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_score,
)
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

from vae.errors import VAEInputError

logger = logging.getLogger(__name__)


def evaluation_cells(n_cells: int, max_cells: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of the cells that metrics and the latent figure use.

    All cells up to ``max_cells``; above it a seeded uniform random subsample of
    ``max_cells`` cells (the silhouette and cross-validated kNN grow faster than linearly
    with the number of cells, UMAP slowly).
    """
    if max_cells < 1:
        raise VAEInputError("evaluate.max_cells", f"must be at least 1, not {max_cells}")
    if n_cells <= max_cells:
        return np.arange(n_cells)
    return np.sort(np.random.default_rng(seed).choice(n_cells, max_cells, replace=False))


def neighbor_graph(
    adata: ad.AnnData, use_rep: str, *, n_neighbors: int = 15, seed: int = 0
) -> None:
    """``sc.pp.neighbors`` on ``obsm[use_rep]`` with exact neighbours (scikit-learn).

    scanpy's default switches to pynndescent from 8,192 cells; pynndescent 0.7 returns
    scipy sparse arrays that scanpy 1.11 cannot read (``AttributeError: getnnz``), and
    exact neighbours keep metrics and figures independent of an approximate search.
    """
    sc.pp.neighbors(
        adata, use_rep=use_rep, n_neighbors=n_neighbors, random_state=seed, transformer="sklearn"
    )


def leiden_clusters(embedding: np.ndarray, *, n_neighbors: int = 15, seed: int = 0) -> np.ndarray:
    """Leiden clusters (scanpy, igraph flavour) of a kNN graph on ``embedding``."""
    adata = ad.AnnData(X=np.zeros((embedding.shape[0], 1), dtype=np.float32))
    adata.obsm["rep"] = embedding
    neighbor_graph(adata, "rep", n_neighbors=n_neighbors, seed=seed)
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False, random_state=seed)
    return adata.obs["leiden"].to_numpy()


def kmeans_ari(
    embedding: np.ndarray, labels: np.ndarray, *, n_seeds: int = 5, seed: int = 0
) -> float:
    """ARI of KMeans (k = number of labels) on ``embedding``, averaged over ``n_seeds`` seeds."""
    from sklearn.cluster import KMeans

    labels = np.asarray(labels).astype(str)
    k = len(set(labels))
    scores = [
        adjusted_rand_score(
            labels, KMeans(n_clusters=k, n_init=10, random_state=seed + i).fit_predict(embedding)
        )
        for i in range(n_seeds)
    ]
    return float(np.mean(scores))


def embedding_metrics(
    embedding: np.ndarray,
    labels: np.ndarray | None = None,
    batches: np.ndarray | None = None,
    *,
    k: int = 15,
    seed: int = 0,
) -> dict[str, float]:
    """Label agreement and batch mixing of an embedding.

    Parameters
    ----------
    embedding
        ``(n, d)`` coordinates.
    labels
        Cell-type (or other) labels; enables ARI/NMI of Leiden clusters, the ARI of
        KMeans with as many clusters as labels (mean of 5 seeds), kNN accuracy
        (5-fold cross-validated, ``k`` neighbours) and the label silhouette.
    batches
        Batch labels; enables the batch silhouette (``1 - |s|`` averaged: 1 = well mixed).
    k
        Neighbours for the kNN classifier.
    seed
        Seed for Leiden and the folds.
    """
    out: dict[str, float] = {}
    if labels is not None:
        labels = np.asarray(labels).astype(str)
        clusters = leiden_clusters(embedding, seed=seed)
        out["leiden_ari"] = float(adjusted_rand_score(labels, clusters))
        out["leiden_nmi"] = float(normalized_mutual_info_score(labels, clusters))
        out["n_leiden_clusters"] = int(len(set(clusters)))
        if len(set(labels)) > 1:
            out["kmeans_ari"] = kmeans_ari(embedding, labels, seed=seed)
        counts = pd.Series(labels).value_counts()
        n_splits = int(min(5, counts.min())) if counts.size > 1 else 0
        if n_splits >= 2:
            folds = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            predicted = cross_val_predict(
                KNeighborsClassifier(n_neighbors=k), embedding, labels, cv=folds
            )
            out["knn_accuracy"] = float((predicted == labels).mean())
        if counts.size > 1:
            out["silhouette_label"] = float(silhouette_score(embedding, labels))
    if batches is not None and len(set(np.asarray(batches).astype(str))) > 1:
        from sklearn.metrics import silhouette_samples

        s = silhouette_samples(embedding, np.asarray(batches).astype(str))
        out["batch_mixing_silhouette"] = float(np.mean(1 - np.abs(s)))
    return out


def pca_baseline(counts: sp.spmatrix | np.ndarray, n_components: int, seed: int = 0) -> np.ndarray:
    """PCA of log1p(CP10k)-normalised counts, the usual single-cell baseline."""
    adata = ad.AnnData(X=sp.csr_matrix(counts, dtype=np.float32))
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    n_components = min(n_components, min(adata.shape) - 1)
    sc.pp.pca(adata, n_comps=n_components, random_state=seed)
    return adata.obsm["X_pca"]
