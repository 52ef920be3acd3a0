"""End-to-end: the Snakemake workflow on the tiny .test config, then figure regeneration."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
from Bio import SeqIO

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]

pytestmark = pytest.mark.workflow

# figures per dataset of the sheet, by domain, and per row of the map sheet
FIGURES = {
    "protein": (
        "training_curves",
        "latent_umap",
        "variant_scores",
        "variant_roc",
        "eve_mixture",
        "mutation_heatmap",
        "sample_frequencies",
        "dms_scatter",
    ),
    "expression": ("training_curves", "latent_umap", "metrics_table"),
    "map": ("joint_umap", "confusion"),
}


def _run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("workflow")
    shutil.copytree(REPO / ".test" / "config", work / "config")
    shutil.copytree(REPO / ".test" / "data", work / "data")
    result = _run(work, "--configfile", str(work / "config" / "config.yaml"))
    assert result.returncode == 0, result.stderr[-4000:]
    return work


def test_protein_artifacts(workdir: Path) -> None:
    out = workdir / "results" / "protein" / "tinyfam"
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["domain"] == "protein"
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert len(manifest["inputs"]["data"]["sha256"]) == 64
    assert manifest["seed"] == 0
    n_cols = len(model["var_names"])
    scores = pd.read_csv(out / "variant_scores.csv")
    assert list(scores.columns[:1]) == ["mutant"]
    assert len(scores) == 19 * n_cols
    assert scores["mutant"].str.match(r"^[A-Z]\d+[A-Z]$").all()
    assert scores["evol_index"].notna().all()
    fasta = (out / "samples.fasta").read_text().split()
    assert len(fasta) == 2 * 20
    assert all(len(seq) == n_cols for seq in fasta[1::2])
    embedding = ad.read_h5ad(out / "embedding.h5ad")
    assert embedding.obsm["X_vae"].shape == (embedding.n_obs, 4)
    assert "weight" in embedding.obs
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_scored"] == 20
    assert 0.0 <= metrics["roc_auc"] <= 1.0
    assert metrics["n_samples"] == 20
    assert -1.0 <= metrics["sample_frequency_pearson_r"] <= 1.0
    assert 0.0 <= metrics["sample_nearest_natural_identity_mean"] <= 1.0
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert {"train_elbo", "val_elbo", "train_kl", "val_reconstruction"} <= set(history.columns)
    # the variant-list sheet: every row of the list back with its status, in order
    listed = pd.read_csv(out / "variant_lists" / "scan.csv")
    assert (
        listed["mutant"].tolist()
        == pd.read_csv(workdir / "data" / "tinyfam_dms.csv")["mutant"].tolist()
    )
    assert listed.loc[listed["status"] == "scored", "evol_index"].notna().all()
    # the sheet's scan: ρ of both models, every variant accounted for, a learning curve
    scan = pd.read_csv(out / "dms_scores.csv")
    assert metrics["dms_n_scored"] == len(scan) > 0
    assert metrics["dms_n_variants"] == len(pd.read_csv(workdir / "data" / "tinyfam_dms.csv"))
    assert -1 <= metrics["dms_spearman"] <= 1
    assert -1 <= metrics["site_independent_dms_spearman"] <= 1
    assert history["monitor_dms_spearman"].notna().all()
    assert history["monitor_roc_auc"].between(0, 1).all()
    assert (
        metrics["heldout_log_evidence_per_sequence"]
        >= metrics["heldout_elbo_sampled_per_sequence"]
    )
    assert (out / "figures" / "dms_scatter.png").stat().st_size > 0


def test_protein_scoreboard(workdir: Path) -> None:
    summary = workdir / "results" / "summary"
    table = pd.read_csv(summary / "protein.tsv", sep="\t")
    # tinyfam has a scan and labels, tinysearch a scan: one row per dataset and target
    assert sorted(zip(table["dataset"], table["target"], strict=True)) == [
        ("tinyfam", "dms"),
        ("tinyfam", "labels"),
        ("tinysearch", "dms"),
    ]
    metrics = json.loads((workdir / "results/protein/tinyfam/metrics.json").read_text())
    row = table.set_index(["dataset", "target"]).loc[("tinyfam", "dms")]
    assert row["vae"] == pytest.approx(metrics["dms_spearman"], abs=1e-4)
    assert row["gain"] == pytest.approx(
        metrics["dms_spearman"] - metrics["site_independent_dms_spearman"], abs=1e-4
    )
    assert row["n_columns"] == metrics["n_columns"]
    assert row["steps"] == 40
    assert row["train_seconds"] > 0
    # how the variants were scored is recorded: the .test config keeps the ELBO difference
    assert metrics["score_settings"]["estimator"] == row["scoring"] == "elbo"
    assert (summary / "figures" / "protein_gain.png").read_bytes()[:4] == b"\x89PNG"


def _fasta_ids(path: Path) -> list[str]:
    return [record.id for record in SeqIO.parse(path, "fasta")]


def test_family_search_feeds_the_model(workdir: Path) -> None:
    # tinysearch: one focus sequence and a database (.test/make_tinysearch.py), searched
    # by align_family, then preprocessed, trained, scored and evaluated as an alignment
    out = workdir / "results" / "protein" / "tinysearch"
    database = workdir / "data" / "tinysearch_db.fasta"
    entries = _fasta_ids(database)
    decoys = {name for name in entries if name.startswith("shuffled_")}
    family = set(entries) - decoys
    (focus,) = _fasta_ids(workdir / "data" / "tinysearch_focus.fasta")
    # the alignment: focus first in its own numbering, then the hits as name/start-end
    rows = _fasta_ids(out / "alignment.a2m")
    assert rows[0] == focus == "2-Hacid_dh_C_consensus/1-178"
    hits = [name.rsplit("/", 1)[0] for name in rows[1:]]
    assert set(hits) <= family
    assert len(set(hits)) >= 0.9 * len(family)
    # provenance: settings of the config's search section, database checksum, hits per round
    search = json.loads((out / "alignment.manifest.json").read_text())["search"]
    assert search["database"]["sha256"] == _digest(database)
    assert search["database"]["n_sequences"] == len(entries) == 160
    assert search["settings"]["iterations"] == 2
    assert search["settings"]["threads"] == 2
    assert search["settings"]["bitscore_per_residue"] == 0.1
    rounds = search["iterations"]
    assert 1 <= len(rounds) <= 2
    assert rounds[-1]["n_sequences_included"] == search["n_sequences_included"] == len(hits)
    table = pd.read_csv(out / "search_thresholds.tsv", sep="\t")
    assert table["bitscore_per_residue"].tolist() == [0.1]
    assert table["chosen"].tolist() == [True]
    assert table["n_sequences_included"].tolist() == [len(hits)]
    # preprocessing read the alignment and kept the search record
    preprocessed = ad.read_h5ad(out / "preprocessed.h5ad")
    uns = preprocessed.uns["preprocess"]
    assert uns["source"].endswith("tinysearch/alignment.a2m")
    assert uns["search"]["database_sha256"] == _digest(database)
    assert list(uns["search"]["sequences_per_iteration"]) == [
        r["n_sequences_included"] for r in rounds
    ]
    assert preprocessed.obs_names[0] == focus
    # the model was trained on that file, then scored and evaluated
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["inputs"]["data"]["sha256"] == _digest(out / "preprocessed.h5ad")
    model = json.loads((out / "model" / "model.json").read_text())
    n_cols = len(model["var_names"])
    assert n_cols == preprocessed.n_vars
    assert len(pd.read_csv(out / "variant_scores.csv")) == 19 * n_cols
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_sequences"] == preprocessed.n_obs
    assert metrics["n_columns"] == n_cols
    assert metrics["n_samples"] == 20
    # tinyfam's scan, in the focus numbering the searched alignment kept
    assert metrics["dms_n_scored"] > 0
    assert metrics["dms_n_skipped_wt_mismatch"] == 0
    assert ad.read_h5ad(out / "embedding.h5ad").n_obs == preprocessed.n_obs


def test_expression_artifacts(workdir: Path) -> None:
    out = workdir / "results" / "expression" / "tinycells"
    embedding = ad.read_h5ad(out / "embedding.h5ad")
    assert embedding.n_obs == 150
    assert embedding.obsm["X_vae"].shape == (150, 4)
    assert {"cell_type", "batch"} <= set(embedding.obs.columns)
    assert embedding.uns["obs_keys"] == {"label_key": "cell_type", "batch_key": "batch"}
    samples = ad.read_h5ad(out / "samples.h5ad")
    assert samples.n_obs == 20
    assert list(samples.var_names) == [f"g{i}" for i in range(40)]
    metrics = json.loads((out / "metrics.json").read_text())
    # evaluate.max_cells is 50 in the test config: metrics on a subsample of the 150 cells
    assert metrics["n_cells"] == 150
    assert metrics["n_cells_evaluated"] == 50
    assert {"knn_accuracy", "leiden_ari"} <= set(metrics["vae"])
    assert {"knn_accuracy", "leiden_ari"} <= set(metrics["pca_baseline"])
    assert "batch_mixing_silhouette" in metrics["vae"]
    model = json.loads((out / "model" / "model.json").read_text())
    assert model["info"]["batch_categories"] == ["b0", "b1"]


def test_batch_embedding_of_new_datasets(workdir: Path) -> None:
    cells = ad.read_h5ad(workdir / "results/embed/tinycells/tinycells_query.h5ad")
    assert cells.obsm["X_vae"].shape == (150, 4)
    assert cells.obs_names[0].startswith("new_")
    assert cells.uns["overlap"]["n_shared_genes"] == 36
    assert cells.uns["gene_present"].sum() == 36
    raw = ad.read_h5ad(workdir / "results/embed/tinyfam/tinyfam_raw.h5ad")
    assert "decoy" in list(raw.uns["not_aligned"])
    assert raw.n_obs >= 35
    manifest = json.loads(
        (workdir / "results/embed/tinyfam/tinyfam_raw.manifest.json").read_text()
    )
    assert manifest["inputs"]["input"]["path"].endswith("tinyfam_raw.fasta")


def test_mapping_figures_and_table(workdir: Path) -> None:
    out = workdir / "results" / "map" / "tinycells"
    for figure in ("joint_umap", "confusion"):
        assert (out / "figures" / f"tinycells_newbatch_{figure}.png").stat().st_size > 0
    counts = pd.read_csv(out / "tinycells_newbatch_predicted_labels.tsv", sep="\t")
    assert counts["n_cells"].sum() == 150
    assert counts["fraction"].sum() == pytest.approx(1.0, abs=1e-3)  # written with 4 digits


def test_figures_regenerate_identically_without_retraining(workdir: Path) -> None:
    figures = sorted((workdir / "results").glob("*/*/figures/*.png"))
    # per dataset of the sheet (all_outputs() in workflow/rules/common.smk) and per row of
    # the map sheet: 2 protein x 8 + 1 expression x 3 + 1 mapped query x 2 = 21
    sheet = pd.read_csv(workdir / "config" / "datasets.tsv", sep="\t")
    queries = pd.read_csv(workdir / "config" / "map.tsv", sep="\t")
    expected = [
        f"{domain}/{name}/figures/{figure}.png"
        for name, domain in zip(sheet["dataset"], sheet["domain"], strict=True)
        for figure in FIGURES[domain]
    ] + [
        f"map/{model}/figures/{name}_{figure}.png"
        for name, model in zip(queries["dataset"], queries["model"], strict=True)
        for figure in FIGURES["map"]
    ]
    assert sorted(str(p.relative_to(workdir / "results")) for p in figures) == sorted(expected)
    assert len(figures) == 21
    before = {p: _digest(p) for p in figures}
    model_mtime = (workdir / "results/protein/tinyfam/model/model.pt").stat().st_mtime
    # tinysearch's figures come from the same rules as tinyfam's: one of them is enough to
    # check that the search is not redone (keeps the rerun ~30 s shorter)
    searched = workdir / "results/protein/tinysearch/figures"
    for folder in {p.parent for p in figures} - {searched}:
        shutil.rmtree(folder)
    (searched / "training_curves.png").unlink()
    result = _run(workdir, "--configfile", str(workdir / "config" / "config.yaml"))
    assert result.returncode == 0, result.stderr[-4000:]
    rerun = result.stderr.split("Job stats:")[-1].split("Reasons")[0]
    assert "train_model" not in rerun
    assert "align_family" not in rerun
    assert {p: _digest(p) for p in figures} == before
    assert (workdir / "results/protein/tinyfam/model/model.pt").stat().st_mtime == model_mtime


def test_report_renders(workdir: Path) -> None:
    report = workdir / "results" / "report.html"
    result = _run(
        workdir, "--configfile", str(workdir / "config" / "config.yaml"), "--report", str(report)
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert report.stat().st_size > 10_000


def test_misspelt_config_key_is_rejected(workdir: Path, tmp_path: Path) -> None:
    config = (workdir / "config" / "config.yaml").read_text().replace("seed: 0", "sead: 0")
    bad = tmp_path / "bad.yaml"
    bad.write_text(config)
    result = _run(workdir, "-n", "--configfile", str(bad))
    assert result.returncode != 0
    assert (
        "error: config: top level: Additional properties are not allowed ('sead' was unexpected)"
        in result.stderr
    )
