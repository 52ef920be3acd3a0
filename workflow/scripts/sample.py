"""Generate samples from a trained model (FASTA or .h5ad by domain)."""

from vae._script import run_logged
from vae.steps import sample_expression, sample_protein

if snakemake.rule == "sample_protein":
    step, kwargs = sample_protein, {}
else:
    conditioned = snakemake.params.condition == "cells"
    step = sample_expression
    kwargs = {
        "condition_on": snakemake.input.data if conditioned else None,
        "batch": snakemake.params.batch,
    }
run_logged(
    snakemake.log[0],
    step,
    snakemake.input.model,
    snakemake.output[0],
    n=snakemake.params.n,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
    **kwargs,
)
