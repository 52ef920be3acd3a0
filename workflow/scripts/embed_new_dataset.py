"""Embed a new dataset with an already trained model (genes or focus columns matched)."""

from vae._script import run_logged
from vae.steps import embed_new

run_logged(
    snakemake.log[0],
    embed_new,
    snakemake.input.model,
    snakemake.input.data,
    snakemake.output.embedding,
    device=snakemake.params.device,
    min_overlap=snakemake.params.min_overlap,
    max_gap_frac=snakemake.params.max_gap_frac,
    chunk_size=snakemake.params.chunk_size,
    layer=snakemake.params.layer,
    var_key=snakemake.params.var_key,
    threads=snakemake.threads,
)
