"""Expression outputs: conditioned samples, the denoised layer, backed selection in steps."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest

from vae.data._backed import use_backed
from vae.errors import VAEInputError
from vae.model import CountModel
from vae.steps import embed_preprocessed, sample_expression, train_model
from vae.train import TrainConfig

TINY = {"n_latent": 2, "n_hidden": 16}
QUICK = {"max_steps": 12, "batch_size": 16, "eval_every": 6, "lr": 5e-3}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import make_counts

    folder = tmp_path_factory.mktemp("expression")
    adata = make_counts()
    adata.uns["preprocess"] = {"batch_key": "batch", "label_key": "cell_type"}
    data = folder / "preprocessed.h5ad"
    adata.write_h5ad(data)
    train_model(
        data,
        folder / "model",
        folder / "history.tsv",
        domain="expression",
        model_kwargs=TINY,
        train_kwargs=QUICK | {"backed": True},
        device="cpu",
    )
    return folder, adata


def test_trained_backed_and_manifest_says_so(trained):
    import json

    folder, _ = trained
    manifest = json.loads((folder / "model/manifest.json").read_text())
    assert manifest["backed"] is True


def test_samples_conditioned_on_cells_and_batch(trained, tmp_path):
    folder, adata = trained
    out = tmp_path / "samples.h5ad"
    sample_expression(
        folder / "model", out, n=30, seed=1, condition_on=folder / "preprocessed.h5ad"
    )
    samples = ad.read_h5ad(out)
    assert samples.shape == (30, adata.n_vars)
    assert list(samples.var_names) == list(adata.var_names)
    assert set(samples.obs["source_cell"]) <= set(adata.obs_names)
    # each sample keeps its source cell's batch
    source_batch = adata.obs.loc[samples.obs["source_cell"], "batch"].astype(str).to_numpy()
    np.testing.assert_array_equal(samples.obs["batch"].astype(str).to_numpy(), source_batch)
    counts = samples.X.toarray()
    assert (counts >= 0).all()
    assert np.array_equal(counts, np.round(counts))
    # conditioned samples follow their cells: depth correlates with the source library
    library = np.asarray(adata[samples.obs["source_cell"]].X.sum(1)).ravel()
    assert np.corrcoef(library, counts.sum(1))[0, 1] > 0.3
    sample_expression(folder / "model", out, n=10, seed=1, batch="b1")
    assert (ad.read_h5ad(out).obs["batch"] == "b1").all()
    with pytest.raises(VAEInputError, match="unknown batch 'b9'"):
        sample_expression(folder / "model", tmp_path / "x.h5ad", n=3, batch="b9")
    assert not (tmp_path / "x.h5ad").exists()


def test_embedding_with_denoised_layer(trained, tmp_path):
    folder, adata = trained
    out = tmp_path / "embedding.h5ad"
    embed_preprocessed(folder / "model", folder / "preprocessed.h5ad", out, device="cpu")
    plain = ad.read_h5ad(out)
    assert plain.obsm["X_vae"].shape == (adata.n_obs, 2)
    assert not plain.layers
    embed_preprocessed(
        folder / "model", folder / "preprocessed.h5ad", out, device="cpu", denoised=True
    )
    full = ad.read_h5ad(out)
    np.testing.assert_allclose(full.obsm["X_vae"], plain.obsm["X_vae"], rtol=1e-5)
    denoised = full.layers["denoised"]
    assert denoised.shape == adata.shape
    assert list(full.var_names) == list(adata.var_names)
    np.testing.assert_allclose(denoised.sum(1), 1e4, rtol=1e-4)


def test_use_backed(tmp_path, counts_adata):
    path = tmp_path / "counts.h5ad"
    counts_adata.write_h5ad(path)
    assert use_backed(path, "auto") is False  # small
    assert use_backed(path, True) is True
    with pytest.raises(VAEInputError, match="auto, true or false"):
        use_backed(path, "yes")


def test_count_model_sample_rejects_batch_without_batches(counts_adata):
    model = CountModel.from_anndata(counts_adata, **TINY)
    model.train(counts_adata, TrainConfig(**QUICK))
    with pytest.raises(VAEInputError, match="without batches"):
        model.sample(3, batch="b0")


def test_evaluation_cells():
    from vae.metrics import evaluation_cells

    np.testing.assert_array_equal(evaluation_cells(5, 10), np.arange(5))
    cells = evaluation_cells(1000, 100, seed=3)
    assert cells.size == 100
    assert np.unique(cells).size == 100
    assert np.all(np.diff(cells) > 0)
    assert cells.max() < 1000
    np.testing.assert_array_equal(cells, evaluation_cells(1000, 100, seed=3))
    assert not np.array_equal(cells, evaluation_cells(1000, 100, seed=4))
    with pytest.raises(VAEInputError, match="max_cells"):
        evaluation_cells(10, 0)


def test_evaluate_expression_subsamples_large_datasets(trained, tmp_path):
    import json

    from vae.metrics import embedding_metrics, evaluation_cells
    from vae.model import load_model
    from vae.steps import evaluate_expression

    folder, adata = trained
    data, embedding = folder / "preprocessed.h5ad", tmp_path / "embedding.h5ad"
    embed_preprocessed(folder / "model", data, embedding, device="cpu")
    latent = ad.read_h5ad(embedding).obsm["X_vae"]
    model = load_model(folder / "model")
    val = np.asarray(model.info["train"]["val_index"])
    elbo = float(model.elbo(adata[val]).mean())

    full = evaluate_expression(folder / "model", data, embedding, tmp_path / "full.json")
    assert full["n_cells_evaluated"] == adata.n_obs
    assert full["heldout_elbo_per_cell"] == pytest.approx(elbo, rel=1e-5)
    # importance-weighted log-evidence: above the ELBO of its own draws, gap reported
    evidence, sampled = model.log_evidence(adata[val], n_samples=100, seed=0)
    assert full["heldout_log_evidence_per_cell"] == pytest.approx(evidence.mean(), rel=1e-6)
    assert full["heldout_evidence_gap_per_cell"] == pytest.approx((evidence - sampled).mean())
    assert full["heldout_evidence_gap_per_cell"] > 0

    n = adata.n_obs // 2
    part = evaluate_expression(
        folder / "model", data, embedding, tmp_path / "part.json", seed=1, max_cells=n
    )
    assert part == json.loads((tmp_path / "part.json").read_text())
    assert part["n_cells"] == adata.n_obs
    assert part["n_cells_evaluated"] == n
    # the held-out ELBO still uses every validation cell; the metrics only the subsample
    assert part["heldout_elbo_per_cell"] == pytest.approx(elbo, rel=1e-5)
    cells = evaluation_cells(adata.n_obs, n, seed=1)
    expected = embedding_metrics(
        latent[cells],
        adata.obs["cell_type"].to_numpy()[cells],
        adata.obs["batch"].to_numpy()[cells],
        seed=1,
    )
    assert part["vae"] == pytest.approx(expected)
    assert set(part["pca_baseline"]) == set(expected)


def test_evaluate_expression_embedding_of_other_cells(trained, tmp_path):
    from vae.steps import evaluate_expression

    folder, adata = trained
    embedding = tmp_path / "embedding.h5ad"
    ad.AnnData(obs=adata.obs.iloc[:5], obsm={"X_vae": np.zeros((5, 2))}).write_h5ad(embedding)
    out = tmp_path / "metrics.json"
    with pytest.raises(VAEInputError, match="5 embedded cells"):
        evaluate_expression(folder / "model", folder / "preprocessed.h5ad", embedding, out)
    assert not out.exists()


def test_metrics_above_scanpys_approximate_neighbour_threshold():
    """Above 8,192 cells scanpy's default kNN is pynndescent; metrics must still work."""
    from vae.metrics import embedding_metrics

    rng = np.random.default_rng(0)
    labels = rng.choice(["a", "b"], 9000)
    embedding = rng.normal(size=(9000, 3)) + 4.0 * (labels == "b")[:, None]
    metrics = embedding_metrics(embedding, labels, seed=0)
    assert metrics["n_leiden_clusters"] >= 2
    assert metrics["kmeans_ari"] > 0.95
    assert metrics["knn_accuracy"] > 0.99


def test_latent_figure_subsamples_and_skips_layers(trained, tmp_path):
    from vae.plotting import plot_latent

    folder, adata = trained
    embedding = tmp_path / "embedding.h5ad"
    embed_preprocessed(
        folder / "model", folder / "preprocessed.h5ad", embedding, device="cpu", denoised=True
    )
    assert plot_latent(embedding, tmp_path / "all.png") == adata.n_obs
    assert plot_latent(embedding, tmp_path / "part.png", max_cells=40) == 40
    assert (tmp_path / "part.png").stat().st_size > 0


def test_read_embedding_reads_no_matrices(tmp_path):
    from vae._io import read_embedding

    path = tmp_path / "embedding.h5ad"
    obs = {"obs_names": ["c0", "c1", "c2"]}
    embedding = ad.AnnData(
        X=np.ones((3, 4), dtype=np.float32),
        obsm={"X_vae": np.arange(6.0).reshape(3, 2)},
        layers={"denoised": np.ones((3, 4), dtype=np.float32)},
        uns={"obs_keys": {"label_key": "cell_type"}},
    )
    embedding.obs_names = obs["obs_names"]
    embedding.write_h5ad(path)
    read = read_embedding(path)
    assert read.X is None
    assert not read.layers
    assert list(read.obs_names) == obs["obs_names"]
    np.testing.assert_array_equal(read.obsm["X_vae"], np.arange(6.0).reshape(3, 2))
    assert read.uns["obs_keys"] == {"label_key": "cell_type"}
    with pytest.raises(VAEInputError, match="obsm"):
        read_embedding(path, "X_other")
    with pytest.raises(VAEInputError, match="missing.h5ad: file does not exist"):
        read_embedding(tmp_path / "missing.h5ad")
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    with pytest.raises(VAEInputError, match="bad.h5ad"):
        read_embedding(tmp_path / "bad.h5ad")
