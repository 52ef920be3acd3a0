"""Generate samples from a trained model's prior (FASTA or .h5ad by domain)."""

from vae._script import run_logged
from vae.steps import sample_expression, sample_protein

step = sample_protein if snakemake.rule == "sample_protein" else sample_expression
run_logged(
    snakemake.log[0],
    step,
    snakemake.input.model,
    snakemake.output[0],
    n=snakemake.params.n,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
