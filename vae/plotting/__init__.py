"""Figures drawn from saved artifacts only (history, embeddings, scores, samples, metrics)."""

from vae.plotting._expression import metrics_table, plot_metrics_table
from vae.plotting._figures import plot_latent, plot_training_curves, plot_variant_scores
from vae.plotting._mapping import (
    confusion_matrix,
    label_accuracy,
    plot_confusion,
    plot_joint_umap,
    predicted_label_counts,
    write_predicted_label_counts,
)
from vae.plotting._protein import (
    column_frequencies,
    plot_eve_mixture,
    plot_mutation_heatmap,
    plot_sample_frequencies,
    plot_variant_roc,
)
from vae.plotting._scan import plot_scan
from vae.plotting._summary import plot_protein_gain

__all__ = [
    "column_frequencies",
    "confusion_matrix",
    "label_accuracy",
    "metrics_table",
    "plot_confusion",
    "plot_eve_mixture",
    "plot_joint_umap",
    "plot_latent",
    "plot_metrics_table",
    "plot_mutation_heatmap",
    "plot_protein_gain",
    "plot_sample_frequencies",
    "plot_scan",
    "plot_training_curves",
    "plot_variant_roc",
    "plot_variant_scores",
    "predicted_label_counts",
    "write_predicted_label_counts",
]
