"""Quality metrics by domain: expression embeddings and protein variant scores."""

from vae.metrics._eve import eve_metrics
from vae.metrics._expression import (
    embedding_metrics,
    evaluation_cells,
    kmeans_ari,
    leiden_clusters,
    neighbor_graph,
    pca_baseline,
)
from vae.metrics._mapping import UNKNOWN, knn_label_transfer, mapping_metrics, query_mixing
from vae.metrics._protein import scan_spearman, variant_auc
from vae.metrics._scan import SCAN_SCORE_COLUMNS, evaluate_scan, learning_curve_monitor
from vae.metrics._summary import PROTEIN_SUMMARY_COLUMNS, protein_summary, protein_summary_rows

__all__ = [
    "PROTEIN_SUMMARY_COLUMNS",
    "SCAN_SCORE_COLUMNS",
    "UNKNOWN",
    "embedding_metrics",
    "eve_metrics",
    "evaluate_scan",
    "evaluation_cells",
    "kmeans_ari",
    "knn_label_transfer",
    "learning_curve_monitor",
    "leiden_clusters",
    "mapping_metrics",
    "neighbor_graph",
    "pca_baseline",
    "protein_summary",
    "protein_summary_rows",
    "query_mixing",
    "scan_spearman",
    "variant_auc",
]
