"""Column frequencies of generated sequences against the weighted natural alignment."""

from vae._script import run_logged
from vae.plotting import plot_sample_frequencies

run_logged(
    snakemake.log[0],
    plot_sample_frequencies,
    snakemake.input.samples,
    snakemake.input.data,
    snakemake.output[0],
    threads=snakemake.threads,
)
