"""Held-out ELBO and evidence, site-independent baseline, ClinVar AUC, scan ρ, samples."""

from vae._script import run_logged
from vae.steps import evaluate_protein

run_logged(
    snakemake.log[0],
    evaluate_protein,
    list(snakemake.input.models),
    snakemake.input.data,
    snakemake.input.scores,
    snakemake.output.metrics,
    labels=snakemake.params.labels,
    protein=snakemake.params.protein,
    samples=snakemake.input.samples,
    scan=snakemake.input.scan or None,
    scan_scores=snakemake.output.scan_scores,
    score_settings=snakemake.params.score_settings,
    evidence_samples=snakemake.params.evidence_samples,
    evidence_examples=snakemake.params.evidence_examples,
    seed=snakemake.params.seed,
    eve_global=snakemake.input.get("eve_global") or None,
    **snakemake.params.scan_settings,
    threads=snakemake.threads,
)
