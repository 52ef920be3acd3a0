"""VAE variant scores against the dataset's deep mutational scan (a note without one)."""

from vae._script import run_logged
from vae.plotting import plot_scan

run_logged(
    snakemake.log[0],
    plot_scan,
    snakemake.input[0],
    snakemake.output[0],
    threads=snakemake.threads,
)
