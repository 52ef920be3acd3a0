"""VAE vs PCA baseline metrics from metrics.json, as a figure and a TSV table."""

from vae._script import run_logged
from vae.plotting import plot_metrics_table

run_logged(
    snakemake.log[0],
    plot_metrics_table,
    snakemake.input[0],
    snakemake.output.figure,
    table=snakemake.output.table,
    threads=snakemake.threads,
)
