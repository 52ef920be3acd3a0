"""Training curves from history.tsv."""

from vae._script import run_logged
from vae.plotting import plot_training_curves

run_logged(
    snakemake.log[0],
    plot_training_curves,
    snakemake.input[0],
    snakemake.output[0],
    threads=snakemake.threads,
)
