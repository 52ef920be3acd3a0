"""EVE's global + per-protein mixture over the variant scores of every protein."""

from vae._script import run_logged
from vae.steps import score_eve_global

proteins = snakemake.params.proteins
run_logged(
    snakemake.log[0],
    score_eve_global,
    dict(zip(proteins, snakemake.input, strict=True)),
    dict(zip(proteins, snakemake.output, strict=True)),
    protein_weight=snakemake.params.protein_weight,
    eve_percentiles=tuple(snakemake.params.eve_percentiles),
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
