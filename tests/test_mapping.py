"""Query mapping (scArches surgery) and label transfer through the Python API.

The tiny cells are split by their ``batch`` column: the reference model is trained on
batch ``b0`` and batch ``b1`` is mapped onto it.
"""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

from vae import steps
from vae._io import sha256_file
from vae.metrics import UNKNOWN, knn_label_transfer, query_mixing
from vae.model import (
    CountModel,
    QueryTraining,
    default_query_epochs,
    load_model,
    map_query_model,
)
from vae.module import CountVAE
from vae.train import TrainConfig

DATA = Path(__file__).resolve().parents[1] / ".test" / "data"
CONFIG = TrainConfig(max_steps=20, batch_size=32, eval_every=10, seed=1)


def split_by_batch(root: Path) -> tuple[Path, Path]:
    """Write the tiny cells of batch b0 (reference) and b1 (query) as two files."""
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    cells[cells.obs["batch"] == "b0"].copy().write_h5ad(root / "ref_raw.h5ad")
    cells[cells.obs["batch"] == "b1"].copy().write_h5ad(root / "query.h5ad")
    return root / "ref_raw.h5ad", root / "query.h5ad"


def train_reference(root: Path) -> dict[str, Path]:
    """Train a tiny reference on batch b0; return its model, data and the b1 query."""
    raw, query = split_by_batch(root)
    steps.preprocess_expression(raw, root / "ref.h5ad", label_key="cell_type", batch_key="batch")
    steps.train_model(
        root / "ref.h5ad",
        root / "model",
        root / "history.tsv",
        domain="expression",
        model_kwargs={"n_latent": 3, "n_hidden": 16},
        train_kwargs={"max_steps": 20, "batch_size": 32, "eval_every": 10},
        device="cpu",
    )
    return {"root": root, "model": root / "model", "query": query, "data": root / "ref.h5ad"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    return train_reference(tmp_path_factory.mktemp("mapping"))


def test_default_epochs_follow_scvi_tools_heuristic() -> None:
    assert default_query_epochs(80) == 400
    assert default_query_epochs(20_000) == 400
    assert default_query_epochs(100_000) == 80
    assert default_query_epochs(10_000_000) == 1


def test_map_trains_only_new_batch_columns_and_keeps_reference(reference, tmp_path) -> None:
    digest = sha256_file(reference["model"] / "model.pt")
    output = tmp_path / "mapped.h5ad"
    report = steps.map_query(
        reference["model"], reference["query"], output, epochs=3, device="cpu"
    )
    assert sha256_file(reference["model"] / "model.pt") == digest
    assert report["mapping"]["mode"] == "surgery"
    assert report["mapping"]["new_batches"] == ["b1"]
    assert report["mapping"]["steps"] == 3 * report["mapping"]["steps_per_epoch"]

    ref_model, mapped = load_model(reference["model"]), load_model(tmp_path / "mapped_model")
    assert mapped.info["batch_categories"] == ["b0", "b1"]
    old, new = ref_model.module.state_dict(), mapped.module.state_dict()
    changed = []
    for key, value in new.items():
        if value.shape == old[key].shape:
            assert torch.equal(value, old[key]), key
        else:
            width = old[key].shape[-1]
            assert torch.equal(value[:, :width], old[key]), key
            changed.append(key)
            # a one-batch reference has no one-hot input: its new column stays zero
            assert torch.all(value[:, width] == 0)
            assert value[:, width + 1 :].abs().sum() > 0
    assert sorted(changed) == ["decoder.0.weight", "encoder.body.0.weight"]
    # reference cells embed exactly as with the reference model
    ref_data = ad.read_h5ad(reference["data"])
    np.testing.assert_array_equal(mapped.get_latent(ref_data), ref_model.get_latent(ref_data))

    out = ad.read_h5ad(output)
    assert out.n_obs == 80
    assert out.obsm["X_vae"].shape == (80, 3)
    assert out.uns["overlap"]["overlap"] == 1.0
    assert set(out.obs["predicted_cell_type"]) <= {"t0", "t1", "t2", UNKNOWN}
    assert out.obs["cell_type_uncertainty"].between(0, 1).all()
    stored = ad.read_h5ad(tmp_path / "mapped_model" / "reference.h5ad")
    np.testing.assert_allclose(stored.obsm["X_vae"], ref_model.get_latent(ref_data), rtol=1e-6)
    assert list(stored.obs["cell_type"]) == list(ref_data.obs["cell_type"].astype(str))
    metrics = json.loads((tmp_path / "mapped.metrics.json").read_text())
    assert 0 <= metrics["label_accuracy"] <= 1
    assert 0 <= metrics["confident_share"] <= 1
    assert metrics["query_mixing"] >= 0
    assert -1 <= metrics["kmeans_ari"] <= 1
    manifest = json.loads((tmp_path / "mapped.manifest.json").read_text())
    assert manifest["mapping"]["mode"] == "surgery"
    assert len(manifest["inputs"]["reference"]["sha256"]) == 64


def test_query_training_moves_the_query_latent(reference, tmp_path) -> None:
    model = load_model(reference["model"])
    query = model.prepare_query(ad.read_h5ad(reference["query"]))
    zero, _ = map_query_model(model, query, QueryTraining(epochs=0))
    trained, record = map_query_model(model, query, QueryTraining(epochs=5))
    assert record["steps"] == 5 * record["steps_per_epoch"]
    assert not np.allclose(zero.get_latent(query), trained.get_latent(query))
    # zero-initialised new columns: untrained, the query is a batch-free reference cell
    as_reference = query.copy()
    as_reference.obs["batch"] = "b0"
    np.testing.assert_allclose(zero.get_latent(query), model.get_latent(as_reference))


def test_seen_batches_embed_as_vae_embed_does(reference, tmp_path) -> None:
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    cells[cells.obs["batch"] == "b0"].copy().write_h5ad(tmp_path / "seen.h5ad")
    report = steps.map_query(
        reference["model"], tmp_path / "seen.h5ad", tmp_path / "seen_map.h5ad", device="cpu"
    )
    assert report["mapping"]["mode"] == "seen_batches"
    steps.embed_new(reference["model"], tmp_path / "seen.h5ad", tmp_path / "e.h5ad", device="cpu")
    np.testing.assert_allclose(
        ad.read_h5ad(tmp_path / "seen_map.h5ad").obsm["X_vae"],
        ad.read_h5ad(tmp_path / "e.h5ad").obsm["X_vae"],
        rtol=1e-5,
    )


def test_model_without_batch_covariate_maps_by_plain_embedding(tmp_path) -> None:
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    model = CountModel.from_anndata(cells, n_latent=3, n_hidden=16)
    model.train(cells, CONFIG)
    mapped, record = map_query_model(model, cells)
    assert mapped is model
    assert record["mode"] == "no_batch_covariate"
    assert "no batch covariate" in record["note"]


def test_batch_key_names_the_query_column(reference, tmp_path) -> None:
    query = ad.read_h5ad(reference["query"])
    query.obs = query.obs.rename(columns={"batch": "donor"})
    query.write_h5ad(tmp_path / "donor.h5ad")
    report = steps.map_query(
        reference["model"], tmp_path / "donor.h5ad", tmp_path / "d.h5ad",
        batch_key="donor", epochs=1, device="cpu",
    )  # fmt: skip
    assert report["mapping"]["new_batches"] == ["b1"]


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_layer_norm_setting_maps(norm) -> None:
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    ref = cells[cells.obs["batch"] == "b0"].copy()
    query = cells[cells.obs["batch"] == "b1"].copy()
    model = CountModel.from_anndata(
        ref, batch_key="batch", n_latent=3, n_hidden=16, encoder_norm=norm, decoder_norm=norm
    )
    model.train(ref, CONFIG)
    norms = [m for m in model.module.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert bool(norms) == (norm == "layer")
    mapped, record = map_query_model(model, query, QueryTraining(epochs=2))
    assert record["mode"] == "surgery"
    assert np.isfinite(mapped.get_latent(query)).all()


def test_default_norm_settings_keep_the_old_weights() -> None:
    torch.manual_seed(0)
    before = CountVAE(12, n_batches=3, n_latent=2, n_hidden=8).state_dict()
    torch.manual_seed(0)
    after = CountVAE(
        12, n_batches=3, n_latent=2, n_hidden=8, encoder_norm="batch", decoder_norm="batch"
    ).state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert "encoder.body.1.running_mean" in before  # batch norm, as saved models have


def test_weighted_knn_transfer_votes_and_marks_unknown() -> None:
    rng = np.random.default_rng(0)
    reference = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (30, 2))])
    labels = np.array(["a"] * 30 + ["b"] * 30)
    query = np.array([[0.0, 0.0], [5.0, 5.0], [2.5, 2.5]])
    out = knn_label_transfer(reference, labels, query, n_neighbors=20, threshold=0.3)
    assert list(out["best"][:2]) == ["a", "b"]
    assert out["uncertainty"][:2].max() < 0.05
    transfer = knn_label_transfer(reference, labels, query, n_neighbors=60, threshold=0.3)
    assert transfer["uncertainty"][2] > 0.3
    assert transfer["predicted"][2] == UNKNOWN


def test_query_mixing_is_one_when_mixed_and_zero_when_apart() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 2))
    assert query_mixing(reference, rng.normal(size=(100, 2))) == pytest.approx(1.0, abs=0.15)
    assert query_mixing(reference, rng.normal(50, 1, size=(100, 2))) == 0.0
