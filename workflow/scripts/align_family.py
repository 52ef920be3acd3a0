"""Search a sequence database for a focus protein's family and write its alignment."""

from vae._script import run_logged
from vae.steps import align_family

run_logged(
    snakemake.log[0],
    align_family,
    snakemake.input.focus,
    snakemake.input.database,
    snakemake.output.alignment,
    manifest=snakemake.output.manifest,
    thresholds_table=snakemake.output.thresholds,
    cpus=snakemake.threads,
    **snakemake.params.settings,
    threads=snakemake.threads,
)
