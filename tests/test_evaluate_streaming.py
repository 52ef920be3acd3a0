"""The held-out ELBO of ``evaluate_expression`` streams the validation cells from disk."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vae.data._backed import BackedCounts, BackedRowSubset
from vae.data._csr import CSRCounts
from vae.metrics import evaluation_cells
from vae.model import CountModel, load_model
from vae.steps import embed_preprocessed, evaluate_expression, train_model

N_CELLS, N_GENES = 2600, 30  # three blocks of 1024 rows


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    counts = rng.poisson(rng.gamma(1.0, 2.0, (N_CELLS, N_GENES))).astype(np.float32)
    obs = pd.DataFrame(
        {"batch": pd.Categorical(rng.choice(["b0", "b1"], N_CELLS))},
        index=[f"c{i}" for i in range(N_CELLS)],
    )
    adata = ad.AnnData(X=sp.csr_matrix(counts), obs=obs)
    adata.var_names = [f"g{j}" for j in range(N_GENES)]
    adata.uns["preprocess"] = {"batch_key": "batch"}
    path = tmp_path_factory.mktemp("streaming") / "data.h5ad"
    adata.write_h5ad(path)
    return path


def test_backed_view_reads_its_rows_only(counts_file, monkeypatch):
    memory = ad.read_h5ad(counts_file)
    backed = ad.read_h5ad(counts_file, backed="r")
    model = CountModel.from_anndata(memory, batch_key="batch", n_latent=2, n_hidden=8)
    rows = np.sort(np.random.default_rng(1).choice(N_CELLS, 200, replace=False))
    rows = rows[rows < 2048]  # the first two blocks only

    read = []  # blocks read from disk (cache misses)
    original = BackedCounts._read_block

    def spy(self, block):
        if block not in self._cache:
            read.append(block)
        return original(self, block)

    monkeypatch.setattr(BackedCounts, "_read_block", spy)
    store = model.tensors(backed[rows])["x"]
    assert isinstance(store, BackedRowSubset)
    assert len(store) == rows.size
    np.testing.assert_allclose(
        model.elbo(backed[rows], batch_size=64), model.elbo(memory[rows], batch_size=64), rtol=1e-6
    )
    assert sorted(set(read)) == [0, 1]
    assert len(read) == 2  # each block read once: sorted rows stream through the file
    evidence, sampled = model.log_evidence(backed[rows], n_samples=3, seed=2)
    expected = model.log_evidence(memory[rows], n_samples=3, seed=2)
    np.testing.assert_allclose(evidence, expected[0], rtol=1e-6)
    np.testing.assert_allclose(sampled, expected[1], rtol=1e-6)


@pytest.mark.parametrize(
    "index",
    [
        np.array([2599, 3, 1500, 0, 1024]),  # unsorted, across blocks
        slice(2590, 10, -7),
        slice(None, None, 3),
        np.arange(N_CELLS) % 5 == 1,  # a boolean mask
        np.array([-1, -2600]),  # negative positions
    ],
    ids=["unsorted", "reversed_slice", "step_slice", "mask", "negative"],
)
def test_backed_view_rows_are_found_by_obs_name(counts_file, index):
    memory = ad.read_h5ad(counts_file)
    backed = ad.read_h5ad(counts_file, backed="r")
    model = CountModel.from_anndata(memory, batch_key="batch", n_latent=2, n_hidden=8)
    store = model.tensors(backed[index])["x"]
    assert isinstance(store, BackedRowSubset)
    np.testing.assert_array_equal(store.index.numpy(), np.arange(N_CELLS)[index])
    got, expected = store[slice(None)], CSRCounts.from_scipy(memory[index].X)[slice(None)]
    np.testing.assert_array_equal(got.library().numpy(), expected.library().numpy())


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_backed_view_with_duplicate_obs_names_is_loaded_instead(tmp_path, caplog):
    rng = np.random.default_rng(3)
    counts = rng.poisson(2.0, (40, N_GENES)).astype(np.float32)
    adata = ad.AnnData(X=sp.csr_matrix(counts))
    adata.obs_names = [f"c{i % 20}" for i in range(40)]  # every name twice
    adata.var_names = [f"g{j}" for j in range(N_GENES)]
    path = tmp_path / "duplicates.h5ad"
    adata.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    model = CountModel.from_anndata(adata, n_latent=2, n_hidden=8)
    rows = np.array([25, 3, 30])
    with caplog.at_level("WARNING", logger="vae.model._count"):
        store = model.tensors(backed[rows])["x"]
    assert "obs names do not identify the rows" in caplog.text
    assert isinstance(store, CSRCounts)
    np.testing.assert_array_equal(store[slice(None)].library().numpy(), counts[rows].sum(1))
    np.testing.assert_allclose(model.elbo(backed[rows]), model.elbo(adata[rows]), rtol=1e-6)


def _trained_and_embedded(counts_file, folder, **train):
    """A tiny model trained on ``counts_file`` and its embedding, under ``folder``."""
    model_dir, embedding = folder / "model", folder / "embedding.h5ad"
    train_model(
        counts_file,
        model_dir,
        folder / "history.tsv",
        domain="expression",
        model_kwargs={"n_latent": 2, "n_hidden": 8},
        train_kwargs={"batch_size": 64, "eval_every": 2} | train,
        device="cpu",
    )
    embed_preprocessed(model_dir, counts_file, embedding, device="cpu")
    return model_dir, embedding


def test_evaluate_never_loads_the_validation_cells(counts_file, tmp_path, monkeypatch):
    model_dir, embedding = _trained_and_embedded(counts_file, tmp_path, max_steps=4, backed=True)
    loaded = []
    original = ad.AnnData.to_memory
    monkeypatch.setattr(
        ad.AnnData, "to_memory", lambda self, *a, **k: loaded.append(self.n_obs) or original(self)
    )
    metrics = evaluate_expression(
        model_dir, counts_file, embedding, tmp_path / "m.json", max_cells=100
    )
    assert loaded == [100]  # the evaluated subsample only (PCA baseline)
    model = load_model(model_dir)
    heldout = ad.read_h5ad(counts_file)[model.validation_index]
    assert heldout.n_obs > 200
    expected = float(model.elbo(heldout).mean())
    assert metrics["heldout_elbo_per_cell"] == pytest.approx(expected, rel=1e-6)


def test_the_log_evidence_uses_a_seeded_subsample_above_evidence_examples(counts_file, tmp_path):
    model_dir, embedding = _trained_and_embedded(counts_file, tmp_path, max_steps=2)
    metrics = evaluate_expression(
        model_dir,
        counts_file,
        embedding,
        tmp_path / "m.json",
        max_cells=100,
        evidence_samples=3,
        evidence_examples=50,
        seed=4,
    )
    model = load_model(model_dir)
    heldout = ad.read_h5ad(counts_file)[model.validation_index]
    assert metrics["n_heldout_cells"] == heldout.n_obs > 50
    assert metrics["n_heldout_cells_evidence"] == 50
    subset = evaluation_cells(heldout.n_obs, 50, 4)
    evidence, sampled = model.log_evidence(heldout[subset], n_samples=3, seed=4)
    assert metrics["heldout_log_evidence_per_cell"] == pytest.approx(evidence.mean(), rel=1e-6)
    gap = float((evidence - sampled).mean())
    assert metrics["heldout_evidence_gap_per_cell"] == pytest.approx(gap, rel=1e-6)
    # the ELBO still uses every validation cell
    expected = float(model.elbo(heldout).mean())
    assert metrics["heldout_elbo_per_cell"] == pytest.approx(expected, rel=1e-6)
