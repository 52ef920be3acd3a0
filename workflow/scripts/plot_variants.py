"""Distribution of variant scores, by ClinVar class when labels exist."""

from vae._script import run_logged
from vae.plotting import plot_variant_scores

run_logged(
    snakemake.log[0],
    plot_variant_scores,
    snakemake.input.scores,
    snakemake.output[0],
    labels=snakemake.input.get("labels") or None,
    protein=snakemake.params.protein,
    threads=snakemake.threads,
)
