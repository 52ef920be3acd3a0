"""Distribution of variant scores, by ClinVar class when labels exist."""

from vae._script import run_logged
from vae.plotting import plot_variant_scores

run_logged(
    snakemake.log[0],
    plot_variant_scores,
    snakemake.input[0],
    snakemake.output[0],
    labels=snakemake.params.labels,
    protein=snakemake.params.protein,
    threads=snakemake.threads,
)
