"""The protein scoreboard across the sheet's scored datasets, as a table and a figure."""

from vae._script import run_logged
from vae.steps import summarise_protein

run_logged(
    snakemake.log[0],
    summarise_protein,
    list(snakemake.params.datasets),
    list(snakemake.input.metrics),
    [list(folders) for folders in snakemake.params.models],
    snakemake.output.table,
    snakemake.output.figure,
    threads=snakemake.threads,
)
