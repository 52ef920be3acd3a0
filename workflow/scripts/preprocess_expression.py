"""Check, QC-filter and select genes of a raw-count matrix."""

from vae._script import run_logged
from vae.steps import preprocess_expression

run_logged(
    snakemake.log[0],
    preprocess_expression,
    snakemake.input[0],
    snakemake.output[0],
    **snakemake.params.settings,
    threads=snakemake.threads,
)
