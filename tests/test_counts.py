"""Reading, checking and QC of single-cell count matrices."""

from __future__ import annotations

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import N_CELLS, N_GENES

from vae.data import counts_matrix, prepare_counts, read_counts_file
from vae.errors import VAEInputError


def _dense(adata: ad.AnnData) -> np.ndarray:
    return adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)


# --- counts_matrix ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.nan, "NaN or infinite"),
        (np.inf, "NaN or infinite"),
        (-1.0, "negative"),
        (0.5, "non-integer"),
    ],
    ids=["nan", "inf", "negative", "non-integer"],
)
@pytest.mark.parametrize("layer", [None, "counts"])
@pytest.mark.parametrize("sparse", [False, True])
def test_counts_matrix_rejects_bad_values(counts_adata, value, message, layer, sparse):
    x = _dense(counts_adata).copy()
    x[3, 7] = value
    x = sp.csr_matrix(x) if sparse else x
    if layer is None:
        counts_adata.X = x
    else:
        counts_adata.layers[layer] = x
    with pytest.raises(VAEInputError, match=message) as err:
        counts_matrix(counts_adata, layer, "data.h5ad")
    text = str(err.value)
    assert text.startswith("data.h5ad: ")
    assert (f"layer {layer!r}" if layer else "X holds") in text
    if value == 0.5:
        assert "layer" in text  # tells the user to point at the raw-count layer


def test_non_integer_message_lists_layers(counts_adata):
    counts_adata.layers["raw"] = counts_adata.X.copy()
    counts_adata.X = counts_adata.X.multiply(0.37).tocsr()
    with pytest.raises(VAEInputError, match=r"layers present: \['raw'\]"):
        counts_matrix(counts_adata, None, "data.h5ad")
    # the named raw layer is accepted
    assert counts_matrix(counts_adata, "raw", "data.h5ad").nnz == counts_adata.layers["raw"].nnz


def test_counts_matrix_missing_layer(counts_adata):
    with pytest.raises(VAEInputError, match="layer 'raw' not found"):
        counts_matrix(counts_adata, "raw", "data.h5ad")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int64])
def test_counts_matrix_accepts_integer_counts(counts_adata, dtype):
    x = _dense(counts_adata).astype(dtype)
    counts_adata.X = x
    out = counts_matrix(counts_adata, None, "data.h5ad")
    assert sp.isspmatrix_csr(out)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out.toarray(), x.astype(np.float32))


# --- read_counts_file -------------------------------------------------------------------------


def test_read_counts_file_round_trip(counts_h5ad, counts_adata):
    adata = read_counts_file(counts_h5ad)
    np.testing.assert_array_equal(_dense(adata), _dense(counts_adata))
    assert list(adata.obs.columns) == ["cell_type", "batch"]


def test_read_counts_csv(tmp_path, counts_adata):
    path = tmp_path / "counts.csv"
    counts_adata.to_df().to_csv(path)
    adata = read_counts_file(path)
    assert adata.shape == (N_CELLS, N_GENES)
    np.testing.assert_array_equal(_dense(adata), _dense(counts_adata))


def test_h5ad_written_by_h5py_is_rejected(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "random.h5ad"
    with h5py.File(path, "w") as handle:
        handle["X"] = rng.random((5, 4))
        handle["obs"] = rng.random(5)
        handle["stuff/values"] = rng.integers(0, 10, 7)
    with pytest.raises(VAEInputError, match="not a readable AnnData") as err:
        read_counts_file(path)
    assert str(err.value).startswith(f"{path}: ")
    with pytest.raises(VAEInputError, match="not a readable AnnData"):
        prepare_counts(path)


def test_truncated_h5ad_is_rejected(tmp_path, counts_h5ad):
    raw = counts_h5ad.read_bytes()
    path = tmp_path / "truncated.h5ad"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VAEInputError, match="not a readable AnnData") as err:
        prepare_counts(path)
    assert str(err.value).startswith(f"{path}: ")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.h5ad", None, "does not exist"),
        ("empty.h5ad", b"", "empty"),
        ("text.h5ad", b"hello, not hdf5\n", "not a readable AnnData"),
        ("counts.loom", b"x", "unknown expression suffix"),
    ],
)
def test_bad_count_files(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VAEInputError, match=message) as err:
        read_counts_file(path)
    assert str(err.value).startswith(f"{path}: ")


# --- prepare_counts ---------------------------------------------------------------------------


def test_prepare_counts(counts_h5ad, counts_adata):
    adata, stats = prepare_counts(counts_h5ad, label_key="cell_type", batch_key="batch")
    assert sp.isspmatrix_csr(adata.X)
    assert adata.X.dtype == np.float32
    np.testing.assert_array_equal(
        adata.obs["library_size"].to_numpy(), np.asarray(adata.X.sum(1)).ravel()
    )
    assert stats["n_cells_read"] == N_CELLS
    assert stats["n_genes_read"] == N_GENES
    assert (stats["n_cells"], stats["n_genes"]) == adata.shape
    assert (
        adata.obs["cell_type"].tolist()
        == counts_adata.obs.loc[adata.obs_names, "cell_type"].tolist()
    )
    assert set(adata.obs["batch"]) == {"b0", "b1"}
    # QC: every kept gene is seen in >= min_cells cells, every cell has >= min_genes genes
    assert (np.asarray((adata.X > 0).sum(0)).ravel() >= 1).all()


def test_prepare_counts_qc_filters(tmp_path, counts_adata):
    x = _dense(counts_adata)
    x[:, 0] = 0  # a gene never seen
    x[0] = 0  # an empty cell
    counts_adata.X = sp.csr_matrix(x)
    path = tmp_path / "qc.h5ad"
    counts_adata.write_h5ad(path)
    adata, stats = prepare_counts(path)
    assert "cell0" not in adata.obs_names
    assert "gene0" not in adata.var_names
    assert adata.shape == (N_CELLS - 1, N_GENES - 1)
    assert (stats["n_cells"], stats["n_genes"]) == (N_CELLS - 1, N_GENES - 1)


def test_prepare_counts_zero_cells(counts_h5ad):
    with pytest.raises(VAEInputError, match="zero cells left after QC") as err:
        prepare_counts(counts_h5ad, min_genes=N_GENES + 1)
    assert str(err.value).startswith(f"{counts_h5ad}: ")


def test_prepare_counts_zero_genes(counts_h5ad):
    with pytest.raises(VAEInputError, match="zero genes left after QC"):
        prepare_counts(counts_h5ad, min_cells=N_CELLS + 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label_key": "celltype"}, "label key 'celltype'"),
        ({"batch_key": "sample"}, "batch key 'sample'"),
    ],
)
def test_prepare_counts_missing_keys(counts_h5ad, kwargs, message):
    with pytest.raises(VAEInputError, match=message) as err:
        prepare_counts(counts_h5ad, **kwargs)
    assert "cell_type" in str(err.value)  # lists the columns that exist


def test_prepare_counts_layer(tmp_path, counts_adata):
    counts_adata.layers["counts"] = counts_adata.X.copy()
    counts_adata.X = counts_adata.X.multiply(0.5).tocsr()  # "normalised"
    path = tmp_path / "layered.h5ad"
    counts_adata.write_h5ad(path)
    with pytest.raises(VAEInputError, match="non-integer"):
        prepare_counts(path)
    adata, _ = prepare_counts(path, layer="counts")
    np.testing.assert_array_equal(
        _dense(adata), _dense(counts_adata[adata.obs_names, adata.var_names].copy()) * 2
    )


def test_prepare_counts_highly_variable_genes(counts_h5ad):
    pytest.importorskip("skmisc", reason="scanpy's seurat_v3 flavour needs scikit-misc")
    adata, stats = prepare_counts(counts_h5ad, batch_key="batch", n_top_genes=20)
    assert adata.n_vars == 20
    assert stats["n_genes"] == 20
