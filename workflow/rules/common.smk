# Config and dataset sheet: validated against JSON schemas before any job runs.
import sys
import pandas as pd
from pathlib import Path
from snakemake.utils import validate
from vae._schema import schema_problem

SCHEMAS = Path(workflow.basedir) / "schemas"


def check(instance, schema, where):
    """Stop with one line naming the file and key when ``instance`` breaks ``schema``."""
    problem = schema_problem(instance, SCHEMAS / schema)
    if problem:
        sys.exit(f"error: {where}: {problem}")
    validate(instance, schema=SCHEMAS / schema)


check(config, "config.schema.yaml", "config")
if not Path(config["datasets"]).is_file():
    sys.exit(f"error: {config['datasets']}: dataset sheet does not exist")
DATASETS = (
    pd.read_csv(config["datasets"], sep="\t", dtype=str, comment="#")
    .fillna("")
    .set_index("dataset", drop=False)
    .sort_index()
)
for _, row in DATASETS.iterrows():
    check(
        row.to_dict(), "datasets.schema.yaml", f"{config['datasets']} row {row.name!r}"
    )
if DATASETS.index.duplicated().any():
    sys.exit(f"error: {config['datasets']}: duplicate dataset names")
DOMAINS = ["protein", "expression"]


wildcard_constraints:
    domain="|".join(DOMAINS),
    dataset="|".join(DATASETS.index) or "NO_DATASETS",


resource_scopes:
    gpu="local",


def dataset(wildcards):
    """Sheet row of the dataset named by the wildcards."""
    return DATASETS.loc[wildcards.dataset]


def remote_suffix(source):
    """File suffix of a built-in or downloaded source."""
    builtin = {"builtin:pbmc68k": ".h5ad", "builtin:pf02826": ".a2m"}
    return builtin.get(source) or "".join(Path(source.split("?")[0]).suffixes[-2:])


def source_path(wildcards):
    """Where the raw input of a dataset lives (data_dir path or materialised source)."""
    source = dataset(wildcards)["source"]
    if source.startswith(("builtin:", "https://")):
        return f"resources/sources/{wildcards.dataset}{remote_suffix(source)}"
    return str(Path(config["data_dir"]) / source)


def optional_path(value):
    """A sheet path resolved under data_dir, or None when empty."""
    return str(Path(config["data_dir"]) / value) if value else None


def results(domain, name, *files):
    """Paths of per-dataset results."""
    return [f"results/{domain}/{name}/{f}" for f in files]


def all_outputs():
    """Every artifact of every dataset in the sheet."""
    common = [
        "model",
        "embedding.h5ad",
        "history.tsv",
        "metrics.json",
        "figures/training_curves.png",
        "figures/latent_umap.png",
    ]
    extra = {
        "protein": [
            "samples.fasta",
            "variant_scores.csv",
            "figures/variant_scores.png",
        ],
        "expression": ["samples.h5ad"],
    }
    return [
        path
        for name, row in DATASETS.iterrows()
        for path in results(row["domain"], name, *common, *extra[row["domain"]])
    ]
