"""The workflow parses without ``vae`` and hands each rule's settings to its step.

Snakemake runs here with a stand-in ``vae`` package first on ``PYTHONPATH``: one that
refuses to be imported (the ``--sdm conda`` driver has no ``vae``), and one whose steps
only record the arguments they get, so rules run in well under a second each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]

NO_VAE = 'raise ImportError("vae must not be imported while the workflow is parsed")\n'
RECORDING_STEPS = textwrap.dedent(
    """
    import json
    from pathlib import Path


    def _record(path, step, args, kwargs):
        call = {"step": step, "args": [str(a) for a in args], "kwargs": kwargs}
        Path(path).write_text(json.dumps(call, default=str))


    def preprocess_protein(*args, **kwargs):
        _record(args[1], "preprocess_protein", args, kwargs)


    def preprocess_expression(*args, **kwargs):
        _record(args[1], "preprocess_expression", args, kwargs)


    def train_model(data, model_dir, history, **kwargs):
        Path(model_dir).mkdir(parents=True)
        _record(Path(model_dir) / "call.json", "train_model", [data], kwargs)
        Path(history).write_text("")


    def embed_new(model_dir, data, output, **kwargs):
        _record(output, "embed_new", [model_dir, data], kwargs)
        Path(str(output).removesuffix(".h5ad") + ".manifest.json").write_text("{}")
    """
)
RUN_LOGGED = (
    "def run_logged(log, func, *args, threads=None, **kwargs):\n    func(*args, **kwargs)\n"
)


def _stub(root: Path, files: dict[str, str]) -> dict[str, str]:
    """Environment whose ``PYTHONPATH`` starts with a ``vae`` package made of ``files``."""
    (root / "vae").mkdir(parents=True)
    for name, text in files.items():
        (root / "vae" / name).write_text(text)
    path = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    return os.environ | {"PYTHONPATH": os.pathsep.join(path)}


def _snakemake(workdir: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "1", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,  # not the repository: ``python -m`` puts the cwd first on sys.path
        check=False,
        timeout=300,
    )


@pytest.fixture(scope="module")
def no_vae(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("no_vae")
    env = _stub(root, {"__init__.py": NO_VAE})
    probe = subprocess.run(
        [sys.executable, "-c", "import vae"], env=env, cwd=root, capture_output=True, text=True
    )
    assert probe.returncode != 0
    assert "vae must not be imported" in probe.stderr
    return env


def _test_workdir(root: Path, overrides: dict | None = None) -> Path:
    """A copy of ``.test/``; with ``overrides``, written and named by the config."""
    shutil.copytree(REPO / ".test" / "config", root / "config")
    shutil.copytree(REPO / ".test" / "data", root / "data")
    if overrides is not None:
        (root / "config" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        with open(root / "config" / "config.yaml", "a") as config:
            config.write("overrides: config/overrides.yaml\n")
    return root


@pytest.mark.workflow
def test_demo_dry_run_never_imports_vae(no_vae, tmp_path: Path) -> None:
    shutil.copytree(REPO / "config", tmp_path / "config")
    result = _snakemake(tmp_path, no_vae, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    # built-in sources are materialised with the suffixes of vae/data/builtin_sources.tsv
    for path in ("pbmc68k.h5ad", "pf02826.a2m", "pf02826_new.fasta"):
        assert f"resources/sources/{path}" in result.stdout


@pytest.mark.workflow
def test_a_downloaded_source_keeps_its_file_suffix_only(no_vae, tmp_path: Path) -> None:
    work = _test_workdir(tmp_path / "work")
    sheet = work / "config" / "datasets.tsv"
    url = "https://example.org/pbmc_10k_v3.0.0_filtered_feature_bc_matrix.h5"
    sheet.write_text(sheet.read_text().replace("\ttinycells.h5ad\t", f"\t{url}\t"))
    assert url in sheet.read_text()
    result = _snakemake(work, no_vae, "-n", "results/expression/tinycells/preprocessed.h5ad")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resources/sources/tinycells.h5\n" in result.stdout + "\n"


@pytest.mark.workflow
def test_rules_hand_settings_and_overrides_to_steps(tmp_path: Path) -> None:
    env = _stub(
        tmp_path / "stub",
        {"__init__.py": "", "_script.py": RUN_LOGGED, "steps.py": RECORDING_STEPS},
    )
    overrides = {
        "tinycells": {
            "preprocess": {"min_genes": 2},
            "model": {"n_latent": 3},
            "train": {"max_steps": 7, "lr": 0.01},
        }
    }
    work = _test_workdir(tmp_path / "work", overrides)
    sheet = "dataset\tmodel\tsource\tlayer\tvar_key\n"
    sheet += "tinycells_query\ttinycells\ttinycells_query.h5ad\tcounts\tgene_ids\n"
    sheet += "tinyfam_raw\ttinyfam\ttinyfam_raw.fasta\t\t\n"
    (work / "config" / "embed.tsv").write_text(sheet)
    targets = [
        f"results/embed/{m}/{m}_{q}.h5ad" for m, q in [("tinycells", "query"), ("tinyfam", "raw")]
    ]
    result = _snakemake(work, env, *targets)
    assert result.returncode == 0, result.stderr[-3000:]

    def call(path: str) -> dict:
        return json.loads((work / path).read_text())["kwargs"]

    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    cells = call("results/expression/tinycells/model/call.json")
    # the config's settings (schema defaults added), the dataset's overrides over them
    expected = config["model"]["expression"] | {"n_latent": 3}
    assert expected.items() <= cells["model_kwargs"].items()
    assert cells["train_kwargs"]["max_steps"] == 7
    assert cells["train_kwargs"]["lr"] == 0.01
    assert cells["train_kwargs"]["batch_size"] == config["train"]["expression"]["batch_size"]
    assert cells["train_kwargs"]["seed"] == 0
    family = call("results/protein/tinyfam/model/call.json")
    assert config["model"]["protein"].items() <= family["model_kwargs"].items()
    assert family["train_kwargs"]["max_steps"] == config["train"]["protein"]["max_steps"]
    assert call("results/expression/tinycells/preprocessed.h5ad")["min_genes"] == 2
    assert call("results/protein/tinyfam/preprocessed.h5ad")["theta"] == 0.2
    query = call("results/embed/tinycells/tinycells_query.h5ad")
    assert (query["layer"], query["var_key"]) == ("counts", "gene_ids")
    raw = call("results/embed/tinyfam/tinyfam_raw.h5ad")
    assert (raw["layer"], raw["var_key"]) == (None, None)


OVERRIDE_ERRORS = {
    "unknown_dataset": (
        {"nosuch": {"model": {"n_latent": 3}}},
        "error: config/overrides.yaml: 'nosuch' is not a dataset of the main sheet",
    ),
    "key_of_other_domain": (
        {"tinyfam": {"model": {"n_hidden": 8}}},
        "error: config/overrides.yaml: tinyfam: model.protein: Additional properties are not "
        "allowed ('n_hidden' was unexpected)",
    ),
    "unknown_section": (
        {"tinycells": {"modle": {"n_latent": 3}}},
        "error: config/overrides.yaml: tinycells: Additional properties are not allowed "
        "('modle' was unexpected)",
    ),
    "steps_and_epochs": (
        {"tinycells": {"train": {"max_epochs": 5}}},
        "error: config/overrides.yaml: tinycells: train.expression: set max_steps or "
        "max_epochs, not both (the other to null)",
    ),
}


@pytest.mark.workflow
@pytest.mark.parametrize("case", list(OVERRIDE_ERRORS))
def test_bad_overrides_stop_with_one_line(case, no_vae, tmp_path: Path) -> None:
    overrides, line = OVERRIDE_ERRORS[case]
    work = _test_workdir(tmp_path, overrides)
    result = _snakemake(work, no_vae, "-n")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == line


@pytest.mark.workflow
def test_layer_on_a_protein_model_is_refused(no_vae, tmp_path: Path) -> None:
    work = _test_workdir(tmp_path)
    sheet = "dataset\tmodel\tsource\tlayer\ntinyfam_raw\ttinyfam\ttinyfam_raw.fasta\tcounts\n"
    (work / "config" / "embed.tsv").write_text(sheet)
    result = _snakemake(work, no_vae, "-n")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config/embed.tsv: row 'tinyfam_raw': layer and var_key are for expression models"
    )


def test_builtin_source_suffixes_have_one_home() -> None:
    # the workflow reads the table by path (rules/common.smk), vae through importlib.resources
    from vae.data._demo import builtin_sources

    table = REPO / "vae" / "data" / "builtin_sources.tsv"
    rows = pd.read_csv(table, sep="\t", dtype=str, comment="#")
    assert builtin_sources() == dict(zip(rows["source"], rows["suffix"], strict=True))
    assert builtin_sources() == {
        "builtin:pbmc68k": ".h5ad",
        "builtin:pf02826": ".a2m",
        "builtin:pf02826_raw": ".fasta",
    }


def _dry_run_resources(output: str) -> dict[str, dict[str, str]]:
    """``rule -> resources`` of each job a dry run lists (the last job of a rule wins)."""
    jobs, rule = {}, None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
        elif rule and line.strip().startswith("resources:"):
            pairs = line.split(":", 1)[1].split(",")
            jobs[rule] = dict(p.strip().split("=", 1) for p in pairs if "=" in p)
    return jobs


@pytest.mark.workflow
def test_rules_sent_to_the_gpu_partition_hold_the_local_gpu(no_vae, tmp_path: Path) -> None:
    # an ensemble of 2, so that train_member is planned too
    work = _test_workdir(tmp_path, {"tinyfam": {"train": {"ensemble": 2}}})
    result = _snakemake(work, no_vae, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = _dry_run_resources(result.stdout)
    cluster = yaml.safe_load((REPO / "cluster" / "config.yaml").read_text())
    gpu_rules = {
        rule
        for rule, resources in cluster["set-resources"].items()
        if resources.get("slurm_partition") == "gpu"
    }
    assert gpu_rules <= set(jobs), gpu_rules - set(jobs)
    # gpu=1 serialises these jobs on one local GPU (profiles/default); nothing else holds it
    holding = {rule for rule, resources in jobs.items() if resources.get("gpu") == "1"}
    assert holding == gpu_rules


MAP_STEP = textwrap.dedent(
    """

    def map_query(model_dir, query, output, **kwargs):
        _record(output, "map_query", [model_dir, query], kwargs)
        Path(str(output).removesuffix(".h5ad") + ".manifest.json").write_text("{}")
        Path(str(output).removesuffix(".h5ad") + "_model").mkdir()
    """
)


@pytest.mark.workflow
def test_map_min_overlap_defaults_to_embed_min_overlap(tmp_path: Path) -> None:
    env = _stub(
        tmp_path / "stub",
        {"__init__.py": "", "_script.py": RUN_LOGGED, "steps.py": RECORDING_STEPS + MAP_STEP},
    )
    work = _test_workdir(tmp_path / "work")
    config_path = work / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    assert "min_overlap" not in config["map"]
    target = "results/map/tinycells/tinycells_newbatch.h5ad"

    def min_overlap(embed: float, mapping: float | None) -> float:
        config["embed"]["min_overlap"] = embed
        config["map"] = {k: v for k, v in config["map"].items() if k != "min_overlap"}
        if mapping is not None:
            config["map"]["min_overlap"] = mapping
        config_path.write_text(yaml.safe_dump(config))
        result = _snakemake(work, env, target)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads((work / target).read_text())["kwargs"]["min_overlap"]

    assert min_overlap(0.7, None) == 0.7  # unset (null): embed.min_overlap
    assert min_overlap(0.7, 0.25) == 0.25  # its own key; map_query reruns (params changed)


@pytest.mark.workflow
def test_optional_sheet_columns_may_be_left_out(no_vae, tmp_path: Path) -> None:
    work = _test_workdir(tmp_path / "work")
    sheet = work / "config" / "datasets.tsv"
    table = pd.read_csv(sheet, sep="\t", dtype=str).fillna("")
    # only the required columns and a scan: no labels, focus_id, label_key, batch_key, ...
    table[table["dataset"] == "tinyfam"][["dataset", "domain", "source", "dms"]].to_csv(
        sheet, sep="\t", index=False
    )
    config = work / "config" / "config.yaml"
    text = config.read_text()
    for sheet_key in ("embed", "map"):
        text = text.replace(
            f"{sheet_key}: {{sheet: config/{sheet_key}.tsv", f"{sheet_key}: {{sheet: ''"
        )
    config.write_text(text.replace("variant_lists: config/variant_lists.tsv", "variant_lists: ''"))
    result = _snakemake(work, no_vae, "-n")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results/summary/protein.tsv" in result.stdout
    assert "results/protein/tinyfam/dms_scores.csv" in result.stdout
