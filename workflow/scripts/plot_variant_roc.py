"""ROC curve of evol_index against ClinVar labels (a placeholder figure without labels)."""

from vae._script import run_logged
from vae.plotting import plot_variant_roc

run_logged(
    snakemake.log[0],
    plot_variant_roc,
    snakemake.input.scores,
    snakemake.output[0],
    labels=snakemake.input.get("labels") or None,
    protein=snakemake.params.protein,
    threads=snakemake.threads,
)
