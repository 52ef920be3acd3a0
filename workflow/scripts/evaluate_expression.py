"""Held-out ELBO and log-evidence, embedding metrics with a PCA baseline (expression)."""

from vae._script import run_logged
from vae.steps import evaluate_expression

run_logged(
    snakemake.log[0],
    evaluate_expression,
    snakemake.input.model,
    snakemake.input.data,
    snakemake.input.embedding,
    snakemake.output[0],
    seed=snakemake.params.seed,
    max_cells=snakemake.params.max_cells,
    evidence_samples=snakemake.params.evidence_samples,
    evidence_examples=snakemake.params.evidence_examples,
    threads=snakemake.threads,
)
