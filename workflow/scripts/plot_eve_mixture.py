"""Evol-index histogram with EVE's two mixture components and the labelled variants."""

from vae._script import run_logged
from vae.plotting import plot_eve_mixture

run_logged(
    snakemake.log[0],
    plot_eve_mixture,
    snakemake.input.scores,
    snakemake.output[0],
    labels=snakemake.input.get("labels") or None,
    protein=snakemake.params.protein,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
