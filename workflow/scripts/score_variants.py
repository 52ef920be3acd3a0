"""Score every single substitution of the focus sequence, with EVE's scores and classes."""

from vae._script import run_logged
from vae.steps import score_variants

run_logged(
    snakemake.log[0],
    score_variants,
    list(snakemake.input.models),
    snakemake.output[0],
    n_samples=snakemake.params.n_samples,
    common_draws=snakemake.params.common_draws,
    estimator=snakemake.params.estimator,
    latent_shrink=snakemake.params.latent_shrink,
    eve_percentiles=tuple(snakemake.params.eve_percentiles),
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
