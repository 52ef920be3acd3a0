"""Training and embedding from an .h5ad read block by block (backed mode)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vae.data._backed import BackedCounts, stored_csr_bytes
from vae.errors import VAEInputError
from vae.model import CountModel
from vae.train import TrainConfig

TINY = {"n_latent": 2, "n_hidden": 16}


@pytest.fixture
def counts_file(tmp_path, counts_adata):
    path = tmp_path / "counts.h5ad"
    counts_adata.write_h5ad(path)
    return path


def test_backed_rows_match_memory(counts_file, counts_adata):
    store = BackedCounts(counts_file, block_size=16, buffer_blocks=2)
    assert store.shape == counts_adata.shape
    dense = counts_adata.X.toarray()
    rows = torch.tensor([99, 3, 40, 3, 17, 64])
    batch = store[rows]
    np.testing.assert_array_equal(batch.dense().numpy(), dense[rows.numpy()])
    np.testing.assert_array_equal(store[5:9].dense().numpy(), dense[5:9])
    np.testing.assert_allclose(store.row_sums(chunk_rows=7), dense.sum(1))
    assert len(store._cache) <= store._cache_blocks
    assert stored_csr_bytes(counts_file) == counts_adata.X.nnz * 12 + (counts_adata.n_obs + 1) * 8


def test_epoch_order_is_a_blockwise_permutation(counts_file):
    store = BackedCounts(counts_file, block_size=8, buffer_blocks=3)
    order = store.epoch_order(90, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(90))
    # each buffer of 3 blocks (24 positions) holds whole blocks only
    for start in range(0, 72, 24):
        blocks = {int(p) // 8 for p in order[start : start + 24]}
        assert len(blocks) == 3


def test_backed_training_matches_shapes(counts_file, counts_adata):
    backed = ad.read_h5ad(counts_file, backed="r")
    model = CountModel.from_anndata(backed, batch_key="batch", **TINY)
    memory = CountModel.from_anndata(counts_adata, batch_key="batch", **TINY)
    assert model.info["log_library_mean"] == pytest.approx(memory.info["log_library_mean"])
    config = TrainConfig(max_steps=14, batch_size=16, eval_every=7, lr=5e-3)
    result = model.train(backed, config)
    assert result.steps == 14
    assert len(result.history) == 2
    assert np.isfinite(result.history["val_elbo"]).all()
    latent = model.get_latent(backed, batch_size=32)
    assert latent.shape == (counts_adata.n_obs, 2)
    # same weights, same cells: reading from disk changes nothing
    np.testing.assert_allclose(latent, model.get_latent(counts_adata), rtol=1e-5, atol=1e-5)
    elbo = model.elbo(backed)
    np.testing.assert_allclose(elbo, model.elbo(counts_adata), rtol=1e-5, atol=1e-3)


def test_backed_rejects_bad_counts_and_dense_x(tmp_path, counts_adata):
    bad = counts_adata.copy()
    bad.X = sp.csr_matrix(bad.X.multiply(0.5))
    path = tmp_path / "normalised.h5ad"
    bad.write_h5ad(path)
    store = BackedCounts(path, block_size=16)
    with pytest.raises(VAEInputError, match="non-integer"):
        store[torch.arange(10)]
    dense = counts_adata.copy()
    dense.X = dense.X.toarray()
    path = tmp_path / "dense.h5ad"
    dense.write_h5ad(path)
    with pytest.raises(VAEInputError, match="not a CSR matrix"):
        BackedCounts(path)
    assert stored_csr_bytes(path) is None
