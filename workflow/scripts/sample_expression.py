"""Generate posterior-predictive cells from a trained model (.h5ad)."""

from vae._script import run_logged
from vae.steps import sample_expression

conditioned = snakemake.params.condition == "cells"
run_logged(
    snakemake.log[0],
    sample_expression,
    snakemake.input.model,
    snakemake.output[0],
    n=snakemake.params.n,
    seed=snakemake.params.seed,
    condition_on=snakemake.input.data if conditioned else None,
    batch=snakemake.params.batch,
    threads=snakemake.threads,
)
