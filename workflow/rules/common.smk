# Config and dataset sheet: validated against JSON schemas before any job runs.
import sys
import pandas as pd
from pathlib import Path
from snakemake.utils import validate
from vae._schema import schema_problem
from vae.steps import BUILTIN_SOURCES

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


def read_embed_sheet(path):
    """The batch-embedding sheet: new datasets and the trained model for each."""
    columns = ["dataset", "model", "source"]
    if not path:
        return pd.DataFrame(columns=columns).set_index("dataset", drop=False)
    if not Path(path).is_file():
        sys.exit(f"error: {path}: embedding sheet does not exist")
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#").fillna("")
    sheet = sheet.set_index("dataset", drop=False).sort_index()
    for _, row in sheet.iterrows():
        check(row.to_dict(), "embed.schema.yaml", f"{path} row {row.name!r}")
        if row["model"] not in DATASETS.index:
            sys.exit(
                f"error: {path}: model {row['model']!r} is not a dataset of the main sheet"
            )
    clash = sheet.index.intersection(DATASETS.index)
    if len(clash) or sheet.index.duplicated().any():
        sys.exit(f"error: {path}: dataset names must be unique across both sheets")
    return sheet


QUERIES = read_embed_sheet(config["embed"]["sheet"])


wildcard_constraints:
    domain="|".join(DOMAINS),
    dataset="|".join(DATASETS.index) or "NO_DATASETS",
    model="|".join(DATASETS.index) or "NO_DATASETS",
    query="|".join(QUERIES.index) or "NO_QUERIES",


resource_scopes:
    gpu="local",


def dataset(wildcards):
    """Sheet row of the dataset named by the wildcards."""
    return DATASETS.loc[wildcards.dataset]


def source_row(name):
    """Sheet row of a training or to-be-embedded dataset."""
    return DATASETS.loc[name] if name in DATASETS.index else QUERIES.loc[name]


def remote_suffix(source):
    """File suffix of a built-in or downloaded source."""
    return BUILTIN_SOURCES.get(source) or "".join(
        Path(source.split("?")[0]).suffixes[-2:]
    )


def source_path_of(name):
    """Where the raw input of a dataset lives (data_dir path or materialised source)."""
    source = source_row(name)["source"]
    if source.startswith(("builtin:", "https://")):
        return f"resources/sources/{name}{remote_suffix(source)}"
    return str(Path(config["data_dir"]) / source)


def source_path(wildcards):
    """Raw input of the training dataset named by the wildcards."""
    return source_path_of(wildcards.dataset)


def model_dir(wildcards):
    """Trained model folder of the dataset named by the ``model`` wildcard."""
    return f"results/{DATASETS.loc[wildcards.model, 'domain']}/{wildcards.model}/model"


def embed_outputs():
    """Embeddings of every dataset of the batch-embedding sheet."""
    return [
        f"results/embed/{row['model']}/{name}{suffix}"
        for name, row in QUERIES.iterrows()
        for suffix in (".h5ad", ".manifest.json")
    ]


def optional_path(value):
    """A sheet path resolved under data_dir, or None when empty."""
    return str(Path(config["data_dir"]) / value) if value else None


def optional_input(column):
    """Input function: the dataset's sheet path in ``column`` under data_dir, or none."""
    return lambda wc: optional_path(dataset(wc).get(column, "")) or []


def scan_settings(wc):
    """Scan score column and direction of the dataset (sheet columns, with defaults)."""
    row = dataset(wc)
    return {
        "scan_score_column": row.get("dms_score_column", "") or "score",
        "scan_higher_is_fitter": row.get("dms_higher_is_fitter", "") != "false",
    }


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
            "figures/variant_roc.png",
            "figures/mutation_heatmap.png",
            "figures/sample_frequencies.png",
            "dms_scores.csv",
            "figures/dms_scatter.png",
        ],
        "expression": [
            "samples.h5ad",
            "metrics_table.tsv",
            "figures/metrics_table.png",
        ],
    }
    return [
        path
        for name, row in DATASETS.iterrows()
        for path in results(row["domain"], name, *common, *extra[row["domain"]])
    ]
