"""Embed a model's own training data (posterior means in obsm['X_vae'])."""

from vae._script import run_logged
from vae.steps import embed_preprocessed

run_logged(
    snakemake.log[0],
    embed_preprocessed,
    snakemake.input.model,
    snakemake.input.data,
    snakemake.output[0],
    device=snakemake.params.device,
    denoised=snakemake.params.denoised,
    threads=snakemake.threads,
)
