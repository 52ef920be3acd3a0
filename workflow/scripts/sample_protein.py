"""Generate protein sequences from a trained model's prior (FASTA)."""

from vae._script import run_logged
from vae.steps import sample_protein

run_logged(
    snakemake.log[0],
    sample_protein,
    snakemake.input.model,
    snakemake.output[0],
    n=snakemake.params.n,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
