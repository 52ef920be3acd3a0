"""Materialise a built-in or downloaded dataset source."""

from vae._script import run_logged
from vae.steps import fetch_source

run_logged(
    snakemake.log[0],
    fetch_source,
    snakemake.params.source,
    snakemake.output[0],
    sha256=snakemake.params.sha256,
    threads=snakemake.threads,
)
