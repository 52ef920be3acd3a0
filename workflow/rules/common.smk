# Config, dataset sheets and per-dataset overrides: validated against JSON schemas before
# any job runs. Parsing the workflow never imports `vae` (the --sdm conda driver lacks it).
import sys
import pandas as pd
import yaml
from pathlib import Path
from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "lib"))
from schema_check import schema_problem
from sheets import SheetError, read_sheet

SCHEMAS = Path(workflow.basedir) / "schemas"
# one home for the suffix of each built-in source: a table inside the vae package
BUILTIN_TABLE = Path(workflow.basedir).parent / "vae" / "data" / "builtin_sources.tsv"


def check(instance, schema, where):
    """Stop with one line naming the file and key when ``instance`` breaks ``schema``."""
    problem = schema_problem(instance, SCHEMAS / schema)
    if problem:
        sys.exit(f"error: {where}: {problem}")
    validate(instance, schema=SCHEMAS / schema)


check(config, "config.schema.yaml", "config")
# how variants are scored (score.estimator and profile's latent_shrink), for the scoring
# steps, the training monitor and the evaluation alike
ESTIMATOR_SETTINGS = {
    key: config["score"][key] for key in ("estimator", "latent_shrink")
}


def read_checked_sheet(path, schema, what, path_columns=()):
    """A sheet read and checked by ``lib/sheets.py``; one ``error:`` line if it is unusable."""
    try:
        return read_sheet(
            path,
            SCHEMAS / schema,
            what=what,
            data_dir=config["data_dir"],
            path_columns=path_columns,
        )
    except SheetError as err:
        sys.exit(f"error: {err}")


DATASETS = (
    read_checked_sheet(
        config["datasets"],
        "datasets.schema.yaml",
        "dataset sheet",
        path_columns=("source", "labels", "dms", "database"),
    )
    .set_index("dataset", drop=False)
    .sort_index()
)
if DATASETS.index.duplicated().any():
    sys.exit(f"error: {config['datasets']}: duplicate dataset names")
DOMAINS = ["protein", "expression"]


def read_embed_sheet(path):
    """The batch-embedding sheet: new datasets and the trained model for each."""
    columns = ["dataset", "model", "source", "layer", "var_key"]
    if not path:
        return pd.DataFrame(columns=columns).set_index("dataset", drop=False)
    sheet = read_checked_sheet(
        path, "embed.schema.yaml", "embedding sheet", ("source",)
    )
    sheet = sheet.set_index("dataset", drop=False).sort_index()
    for _, row in sheet.iterrows():
        if row["model"] not in DATASETS.index:
            sys.exit(
                f"error: {path}: model {row['model']!r} is not a dataset of the main sheet"
            )
        expression = DATASETS.loc[row["model"], "domain"] == "expression"
        if not expression and (row.get("layer") or row.get("var_key")):
            sys.exit(
                f"error: {path}: row {row.name!r}: layer and var_key are for expression models"
            )
    clash = sheet.index.intersection(DATASETS.index)
    if len(clash) or sheet.index.duplicated().any():
        sys.exit(f"error: {path}: dataset names must be unique across both sheets")
    return sheet


QUERIES = read_embed_sheet(config["embed"]["sheet"])
SECTIONS = ["preprocess", "model", "train"]


def budget_problem(train, domain):
    """Why a dataset's train settings give no single budget (max_steps or max_epochs)."""
    if train.get("max_steps") is not None and train.get("max_epochs") is not None:
        return (
            f"train.{domain}: set max_steps or max_epochs, not both (the other to null)"
        )
    return None


def read_overrides(path):
    """Per-dataset settings: ``{dataset: {section: {key: value}}}`` from the overrides file."""
    if not path:
        return {}
    if not Path(path).is_file():
        sys.exit(f"error: {path}: overrides file does not exist")
    try:
        overrides = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        sys.exit(f"error: {path}: not valid YAML ({type(err).__name__})")
    check(overrides, "overrides.schema.yaml", path)
    unknown = sorted(set(overrides) - set(DATASETS.index))
    if unknown:
        sys.exit(f"error: {path}: {unknown[0]!r} is not a dataset of the main sheet")
    return overrides


def dataset_settings_table(overrides, where):
    """Preprocess, model and train settings of every dataset, overrides applied and checked."""
    table = {}
    for name, row in DATASETS.iterrows():
        domain, override = row["domain"], overrides.get(name, {})
        merged = {**config}
        for section in SECTIONS:
            merged[section] = {
                **config[section],
                domain: {**config[section][domain], **override.get(section, {})},
            }
        origin = f"{where}: {name}" if override else "config"
        problem = override and schema_problem(merged, SCHEMAS / "config.schema.yaml")
        problem = problem or budget_problem(merged["train"][domain], domain)
        if problem:
            sys.exit(f"error: {origin}: {problem}")
        table[name] = {section: merged[section][domain] for section in SECTIONS}
    return table


OVERRIDES_FILE = config.get("overrides") or ""
SETTINGS = dataset_settings_table(read_overrides(OVERRIDES_FILE), OVERRIDES_FILE)


wildcard_constraints:
    domain="|".join(DOMAINS),
    dataset="|".join(DATASETS.index) or "NO_DATASETS",
    model="|".join(DATASETS.index) or "NO_DATASETS",
    query="|".join(QUERIES.index) or "NO_QUERIES",
    seed=r"\d+",


resource_scopes:
    gpu="local",


def dataset(wildcards):
    """Sheet row of the dataset named by the wildcards."""
    return DATASETS.loc[wildcards.dataset]


def dataset_settings(wildcards, section):
    """Settings of a section (preprocess, model, train) for the dataset of the wildcards.

    ``config[section][domain]`` of the dataset's domain, with its overrides applied.
    """
    return SETTINGS[wildcards.dataset][section]


def train_settings(wildcards, seed):
    """Train settings of the dataset for one training job (the ensemble size removed)."""
    settings = dict(SETTINGS[wildcards.dataset]["train"])
    settings.pop("ensemble", None)
    return settings | {"seed": seed}


def ensemble_seeds(name):
    """Seeds of a dataset's models: ``seed, seed + 1, ...`` (``train.<domain>.ensemble``)."""
    size = SETTINGS[name]["train"].get("ensemble", 1)
    return [config["seed"] + i for i in range(size)]


def member_models(wildcards):
    """Input function: the model folders of the protein dataset of the wildcards."""
    return dataset_models(wildcards.dataset)


def dataset_models(name):
    """Model folders of a protein dataset: the main model, then further ensemble members."""
    return [f"results/protein/{name}/model"] + [
        f"results/protein/{name}/ensemble/seed{seed}/model"
        for seed in ensemble_seeds(name)[1:]
    ]


def source_row(name):
    """Sheet row of a training or to-be-embedded dataset."""
    return DATASETS.loc[name] if name in DATASETS.index else QUERIES.loc[name]


def read_builtin_suffixes(sheets):
    """``{source: suffix}`` of the built-in sources; those the sheets name must be known."""
    used = [
        (path, name, source)
        for path, frame in sheets.items()
        for name, source in frame["source"].items()
        if source.startswith("builtin:")
    ]
    if not used:
        return {}
    if not BUILTIN_TABLE.is_file():
        sys.exit(f"error: {BUILTIN_TABLE}: table of built-in sources does not exist")
    table = pd.read_csv(BUILTIN_TABLE, sep="\t", dtype=str, comment="#")
    suffixes = dict(zip(table["source"], table["suffix"]))
    for path, name, source in used:
        if source not in suffixes:
            known = ", ".join(suffixes)
            sys.exit(f"error: {path} row {name!r}: unknown source {source!r} ({known})")
    return suffixes


BUILTIN_SUFFIXES = read_builtin_suffixes(
    {config["datasets"]: DATASETS, config["embed"]["sheet"]: QUERIES}
)


COMPRESSION_SUFFIXES = ("gz", "bz2", "xz", "zip")


def remote_suffix(source):
    """File suffix of a built-in or downloaded source (``.h5``, ``.fasta.gz``, ...).

    The last suffix, and the one before it when the last is a compression: dots inside
    a name (``pbmc_v3.0.0_filtered.h5``) are not suffixes.
    """
    if source in BUILTIN_SUFFIXES:
        return BUILTIN_SUFFIXES[source]
    kept = []
    for part in reversed(Path(source.split("?")[0]).name.split(".")[1:]):
        if not part.isalnum():
            break
        kept.insert(0, part)
        if len(kept) == 2 or part.lower() not in COMPRESSION_SUFFIXES:
            break
    return "".join(f".{part}" for part in kept)


def source_path_of(name):
    """Where the raw input of a dataset lives (data_dir path or materialised source)."""
    source = source_row(name)["source"]
    if source.startswith(("builtin:", "https://")):
        return f"resources/sources/{name}{remote_suffix(source)}"
    return str(Path(config["data_dir"]) / source)


def source_path(wildcards):
    """Input of the dataset's preprocessing: its source, or the alignment searched for it."""
    if search_database(wildcards.dataset):
        return f"results/protein/{wildcards.dataset}/alignment.{SEARCH_FORMAT}"
    return source_path_of(wildcards.dataset)


# --- family search: a protein row whose source is one focus sequence (rules/align.smk)
SEARCH = config.get("search") or {}
# the searched alignment is written as results/protein/{dataset}/alignment.<a2m|a3m>
SEARCH_FORMAT = SEARCH.get("alignment_format") or "a2m"
SEQUENCE_SUFFIXES = (".fasta", ".fa", ".faa")


def search_database(name):
    """Database searched for the family of a protein dataset, or None (a ready alignment).

    A protein row whose source is a sequence file (``.fasta``, ``.fa``, ``.faa``) is
    searched when its ``database`` column, or else the config's ``search.database``, names
    a database (a path under data_dir). Alignments (``.a2m``, ``.a3m``, ``.sto``) are read
    as they are.
    """
    if name not in DATASETS.index or DATASETS.loc[name, "domain"] != "protein":
        return None
    row = DATASETS.loc[name]
    database = row.get("database", "") or SEARCH.get("database") or ""
    source = row["source"]
    remote = source.startswith(("builtin:", "https://"))
    suffix = (remote and remote_suffix(source)) or Path(source.split("?")[0]).suffix
    suffix = suffix.lower()
    if not database or suffix not in SEQUENCE_SUFFIXES:
        return None
    return str(Path(config["data_dir"]) / database)


def check_search_rows():
    """Stop when a row names a database but its source is not a focus sequence file."""
    for name, row in DATASETS.iterrows():
        if row.get("database", "") and not search_database(name):
            sys.exit(
                f"error: {config['datasets']} row {name!r}: a database is searched only "
                f"for a protein source that is a sequence file ({', '.join(SEQUENCE_SUFFIXES)})"
            )


def search_settings(wildcards):
    """Settings of the dataset's family search: the config's ``search`` keys that the step
    takes, and the dataset's preprocessing filters (to measure coverage and Neff)."""
    preprocess = dataset_settings(wildcards, "preprocess")
    settings = {k: v for k, v in SEARCH.items() if k not in ("database", "threads")}
    keys = ("max_seq_gap_frac", "max_col_gap_frac", "theta")
    return settings | {k: preprocess[k] for k in keys if k in preprocess}


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
            "figures/eve_mixture.png",
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
    if EVE_GLOBAL:
        extra["protein"].append("eve_global.csv")
    return [
        path
        for name, row in DATASETS.iterrows()
        for path in results(row["domain"], name, *common, *extra[row["domain"]])
    ]


# Mapping sheet (config: map.sheet): new batches onto trained expression models.
MAP = {"sheet": "", "epochs": None, "uncertainty_threshold": 0.5, "n_neighbors": 50} | (
    config.get("map") or {}
)


def read_map_sheet(path):
    """The mapping sheet: new datasets, the expression model each is mapped onto."""
    columns = ["dataset", "model", "source", "batch_key", "label_key", "epochs"]
    if not path:
        return pd.DataFrame(columns=columns).set_index("dataset", drop=False)
    sheet = read_checked_sheet(path, "map.schema.yaml", "mapping sheet", ("source",))
    sheet = sheet.set_index("dataset", drop=False).sort_index()
    for _, row in sheet.iterrows():
        if row["model"] not in DATASETS.index:
            sys.exit(
                f"error: {path}: model {row['model']!r} is not a dataset of the main sheet"
            )
        if DATASETS.loc[row["model"], "domain"] != "expression":
            sys.exit(
                f"error: {path}: row {row.name!r}: only expression models are mapped onto"
            )
    if sheet.index.duplicated().any():
        sys.exit(f"error: {path}: duplicate dataset names")
    return sheet


MAPPED = read_map_sheet(MAP["sheet"])


def map_row(wc):
    """Mapping sheet row of the dataset named by the ``mapped`` wildcard."""
    return MAPPED.loc[wc.mapped]


def map_label_key(wc):
    """Labels to transfer: the row's label_key, else the model dataset's, else none."""
    row = map_row(wc)
    return (
        row.get("label_key", "") or DATASETS.loc[wc.model].get("label_key", "") or None
    )


def map_epochs(wc):
    """Query training epochs: the row's, else map.epochs (null: scvi-tools' default)."""
    epochs = map_row(wc).get("epochs", "")
    return int(epochs) if epochs else MAP["epochs"]


def map_outputs():
    """Every mapping sheet row's mapped query, manifest, mapped model, figures and table."""
    return [
        f"results/map/{row['model']}/{path}"
        for name, row in MAPPED.iterrows()
        for path in (
            f"{name}.h5ad",
            f"{name}.manifest.json",
            f"{name}_model",
            f"{name}_predicted_labels.tsv",
            f"figures/{name}_joint_umap.png",
            f"figures/{name}_confusion.png",
        )
    ]


# Variant lists (config: score.variant_lists): any single or multiple mutants of a dataset.
def read_variant_lists(path):
    """The variant-list sheet: a named CSV of mutants per protein dataset."""
    columns = ["name", "dataset", "variants"]
    if not path:
        return pd.DataFrame(columns=columns)
    sheet = read_checked_sheet(
        path, "variant_lists.schema.yaml", "variant-list sheet", ("variants",)
    )
    for index, row in sheet.iterrows():
        if row["dataset"] not in DATASETS.index:
            sys.exit(
                f"error: {path}: dataset {row['dataset']!r} is not a dataset of the main sheet"
            )
        if DATASETS.loc[row["dataset"], "domain"] != "protein":
            sys.exit(f"error: {path}: {row['dataset']!r} is not a protein dataset")
    if sheet.duplicated(["dataset", "name"]).any():
        sys.exit(f"error: {path}: duplicate list names for one dataset")
    return sheet.set_index(["dataset", "name"], drop=False)


VARIANT_LISTS = read_variant_lists(config["score"].get("variant_lists", ""))


def variant_list_path(wildcards):
    """The variants CSV of a list, under data_dir."""
    row = VARIANT_LISTS.loc[(wildcards.dataset, wildcards.variant_list)]
    return str(Path(config["data_dir"]) / row["variants"])


def variant_list_outputs():
    """Scored variant lists of every row of the variant-list sheet."""
    return [
        f"results/protein/{dataset}/variant_lists/{name}.csv"
        for dataset, name in VARIANT_LISTS.index
    ]


# EVE's global + per-protein mixture across the sheet's proteins (score.eve_global_weight).
PROTEINS = list(DATASETS.index[DATASETS["domain"] == "protein"])
EVE_GLOBAL = config["score"].get("eve_global_weight") is not None
if EVE_GLOBAL and len(PROTEINS) < 2:
    sys.exit(
        "error: config: score.eve_global_weight: needs two or more protein datasets "
        f"in {config['datasets']}, found {len(PROTEINS)}"
    )


def eve_global_input(wildcards):
    """The dataset's table of the global + per-protein mixture, when configured."""
    return f"results/protein/{wildcards.dataset}/eve_global.csv" if EVE_GLOBAL else []


# The protein scoreboard (rules/summary.smk): protein datasets with a scan or labels.
SCORED_PROTEINS = [
    name
    for name in PROTEINS
    if DATASETS.loc[name].get("dms", "") or DATASETS.loc[name].get("labels", "")
]


def summary_outputs():
    """The scoreboard and its figure, when the sheet has a scored protein dataset."""
    if not SCORED_PROTEINS:
        return []
    return ["results/summary/protein.tsv", "results/summary/figures/protein_gain.png"]
