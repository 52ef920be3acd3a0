"""Per-position heat map of evol_index from variant_scores.csv."""

from vae._script import run_logged
from vae.plotting import plot_mutation_heatmap

run_logged(
    snakemake.log[0],
    plot_mutation_heatmap,
    snakemake.input[0],
    snakemake.output[0],
    row_length=snakemake.params.row_length,
    threads=snakemake.threads,
)
