"""Held-out ELBO, site-independent baseline, ClinVar ROC AUC and sample statistics."""

from vae._script import run_logged
from vae.steps import evaluate_protein

run_logged(
    snakemake.log[0],
    evaluate_protein,
    snakemake.input.model,
    snakemake.input.data,
    snakemake.input.scores,
    snakemake.output[0],
    labels=snakemake.params.labels,
    protein=snakemake.params.protein,
    samples=snakemake.input.samples,
    threads=snakemake.threads,
)
