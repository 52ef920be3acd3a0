"""The `vae` command line on tiny models trained in the fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from _tiny import train_tiny_expression, train_tiny_protein

from vae import steps

REPO = Path(__file__).resolve().parents[1]


def vae_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from vae.cli import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli")
    return {
        "expression": train_tiny_expression(REPO / ".test/data/tinycells.h5ad", root, "cells"),
        "protein": train_tiny_protein(REPO / ".test/data/tinyfam.a2m", root, "fam"),
        "root": root,
    }


def test_help_lists_subcommands() -> None:
    result = vae_cli("--help")
    assert result.returncode == 0
    for command in ("embed", "info", "sample"):
        assert command in result.stdout


def test_info_prints_domain_and_manifest(trained) -> None:
    result = vae_cli("info", str(trained["expression"]))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["domain"] == "expression"
    assert summary["n_features"] == 40
    assert summary["manifest"]["seed"] == 0


def test_embed_expression_reorders_and_fills_genes(trained, tmp_path) -> None:
    cells = ad.read_h5ad(REPO / ".test/data/tinycells.h5ad")
    rng = np.random.default_rng(0)
    order = rng.permutation(cells.n_vars)[:36]  # 90 % of genes, shuffled
    query = cells[:, order].copy()
    query.write_h5ad(tmp_path / "query.h5ad")
    out = tmp_path / "embedded.h5ad"
    result = vae_cli("embed", str(trained["expression"]), str(tmp_path / "query.h5ad"), str(out))
    assert result.returncode == 0, result.stderr
    embedded = ad.read_h5ad(out)
    assert embedded.obsm["X_vae"].shape == (150, 3)
    assert embedded.uns["overlap"]["n_shared_genes"] == 36
    assert list(embedded.obs_names) == list(cells.obs_names)


def test_embed_same_genes_equals_training_embedding(trained, tmp_path) -> None:
    out = tmp_path / "same.h5ad"
    result = vae_cli(
        "embed", str(trained["expression"]), str(REPO / ".test/data/tinycells.h5ad"), str(out)
    )
    assert result.returncode == 0, result.stderr
    reference = tmp_path / "reference.h5ad"
    steps.embed_preprocessed(
        trained["expression"], trained["root"] / "cells.h5ad", reference, device="cpu"
    )
    np.testing.assert_allclose(
        ad.read_h5ad(out).obsm["X_vae"], ad.read_h5ad(reference).obsm["X_vae"], rtol=1e-5
    )


def test_embed_low_overlap_fails_cleanly(trained, tmp_path) -> None:
    cells = ad.read_h5ad(REPO / ".test/data/tinycells.h5ad")
    cells[:, :10].copy().write_h5ad(tmp_path / "few.h5ad")
    out = tmp_path / "never.h5ad"
    result = vae_cli("embed", str(trained["expression"]), str(tmp_path / "few.h5ad"), str(out))
    assert result.returncode != 0
    assert str(tmp_path / "few.h5ad") in result.stderr
    assert "25%" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_embed_protein_alignment(trained, tmp_path) -> None:
    out = tmp_path / "fam.h5ad"
    result = vae_cli(
        "embed", str(trained["protein"]), str(REPO / ".test/data/tinyfam.a2m"), str(out)
    )
    assert result.returncode == 0, result.stderr
    assert ad.read_h5ad(out).obsm["X_vae"].shape[1] == 3


def test_sample_both_domains(trained, tmp_path) -> None:
    fasta = tmp_path / "s.fasta"
    assert vae_cli("sample", str(trained["protein"]), str(fasta), "-n", "5").returncode == 0
    assert fasta.read_text().count(">") == 5
    cells = tmp_path / "s.h5ad"
    assert vae_cli("sample", str(trained["expression"]), str(cells), "-n", "7").returncode == 0
    assert ad.read_h5ad(cells).n_obs == 7


def test_model_folder_missing_is_one_clear_line(tmp_path) -> None:
    result = vae_cli("info", str(tmp_path / "nope"))
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: {tmp_path / 'nope'}: not a model folder (no model.pt)"


def test_embed_unaligned_sequences_with_hmmalign(trained, tmp_path) -> None:
    from vae.data import read_records

    records = read_records(REPO / ".test/data/tinyfam.a2m")[:30]
    raw = tmp_path / "raw.fasta"
    lines = [f">{rid}\n{seq.replace('-', '').replace('.', '').upper()}\n" for rid, seq in records]
    lines.append(">junk\n" + "W" * 60 + "\n")
    raw.write_text("".join(lines))
    out = tmp_path / "raw_embedded.h5ad"
    result = vae_cli("embed", str(trained["protein"]), str(raw), str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"].startswith("unaligned")
    assert "junk" in report["not_aligned"]
    embedded = ad.read_h5ad(out)
    assert report["n_embedded"] == embedded.n_obs >= 25
    assert (trained["protein"] / "family.hmm").is_file()
    manifest = json.loads((tmp_path / "raw_embedded.manifest.json").read_text())
    assert manifest["inputs"]["input"]["sha256"]

    # the same sequences given aligned land close to where hmmalign puts them
    aligned = tmp_path / "aligned_embedded.h5ad"
    source = REPO / ".test/data/tinyfam.a2m"
    assert vae_cli("embed", str(trained["protein"]), str(source), str(aligned)).returncode == 0
    reference = ad.read_h5ad(aligned)
    shared = [i for i in embedded.obs_names if i in reference.obs_names]
    assert len(shared) >= 25
    diff = embedded[shared].obsm["X_vae"] - reference[shared].obsm["X_vae"]
    assert np.median(np.abs(diff)) < 0.5


def test_embed_matches_genes_by_var_column(tmp_path) -> None:
    cells = ad.read_h5ad(REPO / ".test/data/tinycells.h5ad")
    cells.var["gene_ids"] = [f"ENSG{i:05d}" for i in range(cells.n_vars)]
    cells.write_h5ad(tmp_path / "train.h5ad")
    model = train_tiny_expression(tmp_path / "train.h5ad", tmp_path, "pre")
    query = cells.copy()
    query.var_names = [f"renamed{i}" for i in range(query.n_vars)]  # symbols no longer match
    query.write_h5ad(tmp_path / "query.h5ad")
    out = tmp_path / "by_id.h5ad"
    by_name = vae_cli("embed", str(model), str(tmp_path / "query.h5ad"), str(out))
    assert by_name.returncode != 0
    assert "none of the model's 40 genes" in by_name.stderr
    args = ["--var-key", "gene_ids"]
    result = vae_cli("embed", str(model), str(tmp_path / "query.h5ad"), str(out), *args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n_shared_genes"] == 40
