"""Map a new dataset onto a trained expression model and transfer its labels."""

from vae._script import run_logged
from vae.steps import map_query

run_logged(
    snakemake.log[0],
    map_query,
    snakemake.input.model,
    snakemake.input.data,
    snakemake.output.mapped,
    reference=snakemake.input.reference,
    batch_key=snakemake.params.batch_key,
    epochs=snakemake.params.epochs,
    label_key=snakemake.params.label_key,
    uncertainty_threshold=snakemake.params.uncertainty_threshold,
    n_neighbors=snakemake.params.n_neighbors,
    device=snakemake.params.device,
    min_overlap=snakemake.params.min_overlap,
    layer=snakemake.params.layer,
    var_key=snakemake.params.var_key,
    seed=snakemake.params.seed,
    threads=snakemake.threads,
)
