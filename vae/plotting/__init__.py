"""Figures drawn from saved artifacts only (history, embeddings, scores)."""

from vae.plotting._figures import plot_latent, plot_training_curves, plot_variant_scores

__all__ = ["plot_latent", "plot_training_curves", "plot_variant_scores"]
