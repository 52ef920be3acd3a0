"""Train a domain model on a preprocessed dataset."""

from vae._script import run_logged
from vae.steps import train_model

run_logged(
    snakemake.log[0],
    train_model,
    snakemake.input[0],
    snakemake.output.model,
    snakemake.output.history,
    domain=snakemake.params.domain,
    model_kwargs=dict(snakemake.params.model),
    train_kwargs=dict(snakemake.params.train),
    device=snakemake.params.device,
    checkpoint=snakemake.params.checkpoint,
    scan=snakemake.params.scan,
    labels=snakemake.params.labels,
    protein=snakemake.wildcards.dataset,
    score_settings=dict(snakemake.params.score_settings),
    **snakemake.params.scan_settings,
    threads=snakemake.threads,
)
