"""Latent UMAP from embedding.h5ad."""

from vae._script import run_logged
from vae.plotting import plot_latent

run_logged(
    snakemake.log[0],
    plot_latent,
    snakemake.input[0],
    snakemake.output[0],
    seed=snakemake.params.seed,
    max_cells=snakemake.params.max_cells,
    threads=snakemake.threads,
)
