"""The workflow route of query mapping: mapping sheet -> results/map/{model}/{dataset}.h5ad."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
TARGET = "results/map/tinycells/tinycells_newbatch"
FIGURES = "results/map/tinycells/figures/tinycells_newbatch"

pytestmark = pytest.mark.workflow


def test_mapping_sheet_row_is_mapped_and_labelled(tmp_path) -> None:
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    shutil.copytree(REPO / ".test" / "data", tmp_path / "data")
    result = subprocess.run(
        [
            *SNAKEMAKE, f"{TARGET}.h5ad", f"{TARGET}.manifest.json", f"{TARGET}_model",
            f"{TARGET}_predicted_labels.tsv", f"{FIGURES}_joint_umap.png",
            f"{FIGURES}_confusion.png",
            "--directory", str(tmp_path), "--cores", "2",
            "--configfile", str(tmp_path / "config" / "config.yaml"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    out = ad.read_h5ad(tmp_path / f"{TARGET}.h5ad")
    assert out.n_obs == 150
    assert out.obsm["X_vae"].shape == (150, 4)
    assert out.uns["mapping"]["mode"] == "surgery"
    assert out.uns["mapping"]["epochs"] == 2  # the sheet's epochs column
    assert list(out.uns["mapping"]["new_batches"]) == ["b2"]
    assert out.obs["cell_type_uncertainty"].between(0, 1).all()
    assert "predicted_cell_type" in out.obs
    assert (tmp_path / f"{TARGET}_model" / "reference.h5ad").is_file()
    metrics = json.loads((tmp_path / f"{TARGET}.metrics.json").read_text())
    assert 0 <= metrics["label_accuracy"] <= 1
    manifest = json.loads((tmp_path / f"{TARGET}.manifest.json").read_text())
    assert manifest["inputs"]["reference"]["path"].endswith("preprocessed.h5ad")
    # figures and the predicted-label table, from the saved outputs only
    for figure in ("joint_umap", "confusion"):
        assert (tmp_path / f"{FIGURES}_{figure}.png").stat().st_size > 0
    counts = pd.read_csv(tmp_path / f"{TARGET}_predicted_labels.tsv", sep="\t")
    assert counts["n_cells"].sum() == 150
    assert list(counts.columns) == ["predicted_cell_type", "n_cells", "fraction", "n_correct"]


def test_mapping_sheet_refuses_protein_models(tmp_path) -> None:
    shutil.copytree(REPO / ".test" / "config", tmp_path / "config")
    shutil.copytree(REPO / ".test" / "data", tmp_path / "data")
    (tmp_path / "config" / "map.tsv").write_text(
        "dataset\tmodel\tsource\nfam_query\ttinyfam\ttinyfam_raw.fasta\n"
    )
    result = subprocess.run(
        [*SNAKEMAKE, "--directory", str(tmp_path), "-n", "--configfile",
         str(tmp_path / "config" / "config.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "only expression models are mapped onto" in result.stderr
