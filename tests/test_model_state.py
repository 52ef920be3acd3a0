"""A model trained through the Python API alone carries what evaluation and embedding need.

No workflow step writes anything into the model folder: the training record (validation
split), the family HMM for raw sequences and the gene matching of new cells belong to the
model, so a model trained, saved and loaded from Python can be evaluated and can embed
raw FASTA or new cells.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
from conftest import write_stockholm

from vae import steps
from vae._constants import FILES
from vae._io import read_h5ad
from vae.data import read_records
from vae.model import CountModel, SequenceModel, load_model
from vae.train import TrainConfig

DATA = Path(__file__).resolve().parents[1] / ".test" / "data"
CONFIG = TrainConfig(max_steps=20, batch_size=32, eval_every=10, seed=3)


@pytest.fixture(scope="module")
def protein(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api_protein")
    steps.preprocess_protein(DATA / "tinyfam.a2m", root / "data.h5ad", device="cpu")
    adata = read_h5ad(root / "data.h5ad")
    model = SequenceModel.from_anndata(adata, n_latent=3, encoder_hidden=[16], decoder_hidden=[16])
    result = model.train(adata, CONFIG)
    model.save(root / "model")
    return {"root": root, "data": root / "data.h5ad", "model": root / "model", "result": result}


def test_protein_model_records_its_split_and_family_hmm(protein) -> None:
    loaded = load_model(protein["model"])
    assert loaded.validation_index.tolist() == protein["result"].val_index.tolist()
    assert loaded.info["train"]["steps"] == 20
    assert loaded.info["train"]["seed"] == 3
    assert (protein["model"] / FILES.FAMILY_HMM).read_bytes() == loaded.family_hmm
    assert loaded.family_hmm.startswith(b"HMMER3")
    assert b"DATE" not in loaded.family_hmm  # no build date: same data, same bytes


def test_python_trained_protein_model_is_evaluated(protein, tmp_path) -> None:
    scores = tmp_path / "variant_scores.csv"
    steps.score_variants(protein["model"], scores, n_samples=2, device="cpu")
    metrics = steps.evaluate_protein(
        protein["model"],
        protein["data"],
        scores,
        tmp_path / "metrics.json",
        labels=DATA / "tinyfam_labels.csv",
        protein="tinyfam",
        evidence_samples=3,
    )
    assert metrics["n_heldout"] == load_model(protein["model"]).validation_index.size > 0
    assert np.isfinite(metrics["heldout_elbo_per_sequence"])
    assert np.isfinite(metrics["heldout_site_independent_loglik_per_sequence"])
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_python_trained_protein_model_embeds_raw_fasta(protein, tmp_path) -> None:
    report = steps.embed_new(
        protein["model"], DATA / "tinyfam_raw.fasta", tmp_path / "raw.h5ad", device="cpu"
    )
    assert report["mode"].startswith("unaligned")
    embedded = ad.read_h5ad(tmp_path / "raw.h5ad")
    assert embedded.n_obs == report["n_embedded"] > 0
    assert np.isfinite(embedded.obsm["X_vae"]).all()


def test_prepare_query_without_family_hmm_names_the_problem(protein) -> None:
    model = load_model(protein["model"])
    model.family_hmm = None
    with pytest.raises(Exception, match="no family HMM"):
        model.prepare_query(DATA / "tinyfam_raw.fasta")


def test_stockholm_file_embeds_like_the_same_a2m(protein, tmp_path) -> None:
    """``vae embed`` used to reject the ``.stockholm`` suffix that the reader accepts."""
    records = read_records(DATA / "tinyfam.a2m")[:25]
    a2m = tmp_path / "part.a2m"
    a2m.write_text("".join(f">{name}\n{row}\n" for name, row in records))
    stockholm = write_stockholm(
        tmp_path / "part.stockholm", [n for n, _ in records], [r for _, r in records]
    )
    steps.embed_new(protein["model"], a2m, tmp_path / "a2m.h5ad", device="cpu")
    steps.embed_new(protein["model"], stockholm, tmp_path / "sto.h5ad", device="cpu")
    from_a2m = ad.read_h5ad(tmp_path / "a2m.h5ad")
    from_stockholm = ad.read_h5ad(tmp_path / "sto.h5ad")
    assert from_stockholm.uns["overlap"]["mode"] == "aligned"
    assert list(from_stockholm.obs["id"]) == list(from_a2m.obs["id"])
    np.testing.assert_allclose(from_stockholm.obsm["X_vae"], from_a2m.obsm["X_vae"])


@pytest.fixture(scope="module")
def expression(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api_expression")
    steps.preprocess_expression(
        DATA / "tinycells.h5ad", root / "data.h5ad", label_key="cell_type", batch_key="batch"
    )
    adata = read_h5ad(root / "data.h5ad")
    model = CountModel.from_preprocessed(adata, n_latent=3, n_hidden=16)
    model.train(adata, CONFIG)
    model.save(root / "model")
    return {"data": root / "data.h5ad", "model": root / "model"}


def test_python_trained_expression_model_is_evaluated(expression, tmp_path) -> None:
    embedding = tmp_path / "embedding.h5ad"
    steps.embed_preprocessed(expression["model"], expression["data"], embedding, device="cpu")
    metrics = steps.evaluate_expression(
        expression["model"], expression["data"], embedding, tmp_path / "m.json", evidence_samples=3
    )
    assert load_model(expression["model"]).info["batch_key"] == "batch"
    assert np.isfinite(metrics["heldout_log_evidence_per_cell"])
    assert 0 <= metrics["vae"]["knn_accuracy"] <= 1


def test_prepare_query_matches_new_cells_to_the_model_genes(expression, tmp_path) -> None:
    model = load_model(expression["model"])
    query = ad.read_h5ad(DATA / "tinycells_query.h5ad")
    prepared = model.prepare_query(query, min_overlap=0.5, source="query.h5ad")
    assert list(prepared.var_names) == model.var_names
    assert prepared.var["present"].sum() == prepared.uns["overlap"]["n_shared_genes"] == 36
    missing = ~prepared.var["present"].to_numpy()
    assert prepared.X[:, missing].nnz == 0
    kept = [model.var_names.index(g) for g in query.var_names[:5]]
    np.testing.assert_array_equal(
        prepared.X[:, kept].toarray(), np.asarray(query[:, query.var_names[:5]].X.todense())
    )
    steps.embed_new(
        expression["model"],
        DATA / "tinycells_query.h5ad",
        tmp_path / "q.h5ad",
        device="cpu",
        min_overlap=0.5,
    )
    embedded = ad.read_h5ad(tmp_path / "q.h5ad")
    np.testing.assert_allclose(embedded.obsm["X_vae"], model.get_latent(prepared), rtol=1e-5)
