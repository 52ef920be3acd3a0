"""Filter, encode and weight a protein alignment."""

from vae._script import run_logged
from vae.steps import preprocess_protein

run_logged(
    snakemake.log[0],
    preprocess_protein,
    snakemake.input[0],
    snakemake.output[0],
    device=snakemake.params.device,
    **snakemake.params.settings,
    threads=snakemake.threads,
)
