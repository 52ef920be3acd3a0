"""Score every single substitution of the focus sequence."""

from vae._script import run_logged
from vae.steps import score_variants

run_logged(
    snakemake.log[0],
    score_variants,
    snakemake.input.model,
    snakemake.output[0],
    n_samples=snakemake.params.n_samples,
    common_draws=snakemake.params.common_draws,
    estimator=snakemake.params.estimator,
    seed=snakemake.params.seed,
    device=snakemake.params.device,
    threads=snakemake.threads,
)
