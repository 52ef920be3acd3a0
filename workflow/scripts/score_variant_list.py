"""Score a list of single or multiple mutants with a dataset's model or seed ensemble."""

from vae._script import run_logged
from vae.steps import score_variant_table

run_logged(
    snakemake.log[0],
    score_variant_table,
    list(snakemake.input.models),
    snakemake.input.variants,
    snakemake.output[0],
    n_samples=snakemake.params.n_samples,
    common_draws=snakemake.params.common_draws,
    estimator=snakemake.params.estimator,
    latent_shrink=snakemake.params.latent_shrink,
    chunk_size=snakemake.params.chunk_size,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
