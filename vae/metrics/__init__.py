"""Quality metrics by domain: expression embeddings and protein variant scores."""

from vae.metrics._expression import (
    embedding_metrics,
    evaluation_cells,
    kmeans_ari,
    leiden_clusters,
    neighbor_graph,
    pca_baseline,
)
from vae.metrics._protein import scan_spearman, variant_auc
from vae.metrics._scan import SCAN_SCORE_COLUMNS, evaluate_scan, learning_curve_monitor

__all__ = [
    "SCAN_SCORE_COLUMNS",
    "embedding_metrics",
    "evaluate_scan",
    "evaluation_cells",
    "kmeans_ari",
    "learning_curve_monitor",
    "leiden_clusters",
    "neighbor_graph",
    "pca_baseline",
    "scan_spearman",
    "variant_auc",
]
