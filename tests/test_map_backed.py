"""Mapping a query read from disk in row blocks gives what the in-memory route gives."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from test_mapping import train_reference

from vae import steps
from vae.data._backed import BackedCounts
from vae.errors import VAEInputError
from vae.metrics import knn_label_transfer, query_mixing
from vae.model import load_model
from vae.model._gene_map import GeneMappedCounts, column_map


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, Path]:
    return train_reference(tmp_path_factory.mktemp("map_backed"))


def _shuffled_genes(query: Path, out: Path) -> Path:
    """The query with its genes reversed, one model gene missing and one extra gene."""
    cells = ad.read_h5ad(query)
    cells = cells[:, cells.var_names[::-1][1:]].copy()
    extra = ad.AnnData(
        X=sp.csr_matrix(np.ones((cells.n_obs, 1), dtype=np.float32)),
        obs=cells.obs[[]],
        var=pd.DataFrame(index=["not_a_model_gene"]),
    )
    joined = ad.concat([cells, extra], axis=1, merge="first")
    joined.obs = cells.obs
    joined.X = sp.csr_matrix(joined.X)
    joined.write_h5ad(out)
    return out


def test_gene_mapped_rows_match_the_in_memory_alignment(reference, tmp_path) -> None:
    model = load_model(reference["model"])
    path = _shuffled_genes(reference["query"], tmp_path / "shuffled.h5ad")
    memory = model.prepare_query(ad.read_h5ad(path))
    match = model.match_genes(ad.read_h5ad(path, backed="r"))
    store = GeneMappedCounts(
        BackedCounts(path, block_size=16), column_map(match.present, 40), len(model.var_names)
    )
    rows = torch.tensor([3, 70, 0, 41, 3])
    batch = store[rows]
    np.testing.assert_array_equal(batch.dense().numpy(), memory.X.toarray()[rows.numpy()])
    flat = (batch.cell * batch.n_genes + batch.gene).numpy()
    assert np.all(np.diff(flat) > 0)  # row-major, genes sorted within rows
    np.testing.assert_array_equal(store[10:20].dense().numpy(), memory.X.toarray()[10:20])


@pytest.mark.parametrize("shuffle", [False, True])
def test_backed_query_maps_as_in_memory(reference, tmp_path, shuffle) -> None:
    query = reference["query"]
    if shuffle:
        query = _shuffled_genes(query, tmp_path / "shuffled.h5ad")
    results = {}
    for backed in (False, True):
        out = tmp_path / f"backed_{backed}.h5ad"
        report = steps.map_query(
            reference["model"], query, out, epochs=3, device="cpu", backed=backed
        )
        assert report["mapping"]["backed"] is backed
        assert report["mapping"]["mode"] == "surgery"
        results[backed] = (ad.read_h5ad(out), report)
    memory, backed = results[False][0], results[True][0]
    # one block of rows: the block order of an epoch is the in-memory shuffle itself
    np.testing.assert_allclose(backed.obsm["X_vae"], memory.obsm["X_vae"], rtol=1e-4, atol=1e-5)
    assert list(backed.obs["predicted_cell_type"]) == list(memory.obs["predicted_cell_type"])
    np.testing.assert_allclose(
        backed.obs["cell_type_uncertainty"], memory.obs["cell_type_uncertainty"], atol=1e-4
    )
    assert results[True][1]["metrics"]["label_accuracy"] == pytest.approx(
        results[False][1]["metrics"]["label_accuracy"]
    )
    np.testing.assert_array_equal(backed.uns["gene_present"], memory.uns["gene_present"])


def test_backed_needs_an_h5ad(reference, tmp_path) -> None:
    cells = ad.read_h5ad(reference["query"])
    csv = tmp_path / "query.csv"
    pd.DataFrame(cells.X.toarray(), index=cells.obs_names, columns=cells.var_names).to_csv(csv)
    with pytest.raises(VAEInputError, match="needs an .h5ad"):
        steps.map_query(reference["model"], csv, tmp_path / "o.h5ad", backed=True)
    assert not (tmp_path / "o.h5ad").exists()


def test_label_transfer_and_mixing_are_the_same_in_chunks() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(200, 3))
    labels = np.where(reference[:, 0] > 0, "a", "b")
    query = rng.normal(size=(101, 3))
    whole = knn_label_transfer(reference, labels, query, n_neighbors=10, chunk_size=1000)
    chunked = knn_label_transfer(reference, labels, query, n_neighbors=10, chunk_size=7)
    pd.testing.assert_frame_equal(whole, chunked)
    full = query_mixing(reference, query, chunk_size=1000)
    assert query_mixing(reference, query, chunk_size=7) == pytest.approx(full)
    # above max_cells: a seeded subsample of the query cells is looked up
    subsample = query_mixing(reference, query, max_cells=60, seed=3)
    assert subsample == query_mixing(reference, query, max_cells=60, seed=3)
    assert subsample == pytest.approx(full, abs=0.2)
