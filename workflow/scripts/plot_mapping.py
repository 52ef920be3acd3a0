"""Figures and predicted-label table of a mapped query, from the map step's saved outputs."""

from pathlib import Path

from vae._script import run_logged
from vae.plotting import plot_confusion, plot_joint_umap, write_predicted_label_counts


def plot_mapping(mapped, model_dir, umap, confusion, table, *, seed, max_cells):
    """Joint UMAP, confusion matrix and predicted-label counts of one mapped query."""
    plot_joint_umap(
        mapped, Path(model_dir) / "reference.h5ad", umap, seed=seed, max_cells=max_cells
    )
    plot_confusion(mapped, confusion)
    write_predicted_label_counts(mapped, table)


run_logged(
    snakemake.log[0],
    plot_mapping,
    snakemake.input.mapped,
    snakemake.input.model,
    snakemake.output.umap,
    snakemake.output.confusion,
    snakemake.output.table,
    seed=snakemake.params.seed,
    max_cells=snakemake.params.max_cells,
    threads=snakemake.threads,
)
