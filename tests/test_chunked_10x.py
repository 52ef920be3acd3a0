"""10x Genomics inputs (``.h5`` v3/v2, matrix folders): read in memory and preprocessed chunked.

The in-memory route reads a 10x ``.h5`` file with scanpy's ``read_10x_h5``; the chunked
route reads its CSR rows (gene expression features only) or streams a folder's
``matrix.mtx`` cell by cell into a temporary CSR ``.h5ad``. Both must give the same file.
"""

from __future__ import annotations

import gzip

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.io
import scipy.sparse as sp
from test_chunked_preprocess import _assert_same_file

from vae import steps
from vae.data import _chunked as chunked_module
from vae.data import _tenx_mtx as tenx_mtx
from vae.data import read_counts_file
from vae.data._backed import stored_csr_bytes
from vae.data._chunked import _annotations, preprocess_counts_chunked, use_chunked
from vae.data._tenx_mtx import mtx_csr_bytes
from vae.errors import VAEInputError

N_CELLS, N_GENES = 90, 36
#: Features that are not gene expression, at these positions among all features.
OTHER = {4: "CD3_TotalSeqB", 17: "CD19_TotalSeqB", 38: "guide_1"}
SETTINGS = {"min_genes": 8, "min_cells": 4, "n_top_genes": 15}


def _features() -> pd.DataFrame:
    """Ids, names (one name twice) and types of all features, 10x order."""
    genes = iter(range(N_GENES))
    rows = []
    for i in range(N_GENES + len(OTHER)):
        if i in OTHER:
            kind = "CRISPR Guide Capture" if OTHER[i].startswith("guide") else "Antibody Capture"
            rows.append((OTHER[i], OTHER[i], kind))
        else:
            j = next(genes)
            rows.append((f"ENSG{j:05d}", "DUP" if j in (2, 9) else f"G{j}", "Gene Expression"))
    return pd.DataFrame(rows, columns=["id", "name", "type"])


def _counts(seed: int = 0) -> sp.csr_matrix:
    """Cells x features integer counts: low-quality cells, undetected genes, empty cells."""
    rng = np.random.default_rng(seed)
    n_features = N_GENES + len(OTHER)
    mu = rng.gamma(0.7, 2.0, n_features) * rng.lognormal(0, 0.6, N_CELLS)[:, None]
    counts = rng.poisson(mu).astype(np.int64)
    counts[:6, 3:] = 0  # too few genes
    counts[[20, 50], :] = 0  # empty cells: no entries at all
    counts[:, [6, 30]] = 0  # never detected
    counts[:, list(OTHER)] += 40  # antibodies everywhere, large
    return sp.csr_matrix(counts)


def _barcodes() -> np.ndarray:
    return np.array([f"AAAC{i:04d}-1" for i in range(N_CELLS)])


def _write_matrix(group, counts: sp.csr_matrix) -> None:
    """The cells x features CSR arrays as Cell Ranger's genes x cells CSC, with barcodes."""
    group["data"] = counts.data.astype(np.int32)
    group["indices"] = counts.indices.astype(np.int64)
    group["indptr"] = counts.indptr.astype(np.int64)
    group["shape"] = np.array([counts.shape[1], counts.shape[0]], dtype=np.int32)
    group["barcodes"] = _barcodes().astype("S")


def _write_h5_v3(path, counts: sp.csr_matrix) -> None:
    """Cell Ranger v3 layout: genes x cells CSC = the cells x features CSR arrays."""
    features = _features()
    with h5py.File(path, "w") as handle:
        group = handle.create_group("matrix")
        _write_matrix(group, counts)
        feats = group.create_group("features")
        feats["id"] = features["id"].to_numpy().astype("S")
        feats["name"] = features["name"].to_numpy().astype("S")
        feats["feature_type"] = features["type"].to_numpy().astype("S")
        feats["genome"] = np.array([b"GRCh38"] * len(features))
        feats["_all_tag_keys"] = np.array([b"genome"])


def _write_h5_v2(path, counts: sp.csr_matrix) -> None:
    """Cell Ranger v2 layout: one group per genome, gene expression only."""
    features = _features()
    genes = (features["type"] == "Gene Expression").to_numpy()
    counts = counts[:, genes].tocsr()
    with h5py.File(path, "w") as handle:
        group = handle.create_group("GRCh38")
        _write_matrix(group, counts)
        group["genes"] = features["id"].to_numpy()[genes].astype("S")
        group["gene_names"] = features["name"].to_numpy()[genes].astype("S")


def _write_folder(folder, counts: sp.csr_matrix, *, gz: bool, by_cell: bool = True) -> None:
    """Cell Ranger folder: ``matrix.mtx`` genes x cells (ordered by cell), barcodes, features."""
    folder.mkdir()
    suffix, opener = (".gz", gzip.open) if gz else ("", open)
    matrix = sp.csc_matrix(counts.T) if by_cell else sp.csr_matrix(counts.T)
    with opener(folder / f"matrix.mtx{suffix}", "wb") as handle:
        scipy.io.mmwrite(handle, matrix)
    with opener(folder / f"barcodes.tsv{suffix}", "wt") as handle:
        handle.write("".join(f"{name}\n" for name in _barcodes()))
    with opener(folder / f"features.tsv{suffix}", "wt") as handle:
        handle.write(_features().to_csv(sep="\t", header=False, index=False))


def _mtx_cells(folder) -> np.ndarray:
    """The cell (column) of every entry of the folder's ``matrix.mtx``, in file order."""
    path = next(folder.glob("matrix.mtx*"))
    entries = pd.read_csv(path, sep=r"\s+", header=None, comment="%")
    return entries[1].to_numpy()[1:]  # after the size line


def _source(kind: str, root) -> object:
    counts = _counts()
    if kind in ("v3", "v2"):
        path = root / f"filtered_feature_bc_matrix_{kind}.h5"
        (_write_h5_v3 if kind == "v3" else _write_h5_v2)(path, counts)
        return path
    folder = root / f"filtered_feature_bc_matrix_{kind}"
    _write_folder(folder, counts, gz=kind == "mtx_gz")
    assert (np.diff(_mtx_cells(folder)) >= 0).all()  # Cell Ranger's order: by cell
    return folder


@pytest.mark.filterwarnings("ignore:Variable names are not unique")
def test_h5_reads_as_scanpy(tmp_path):
    path = _source("v3", tmp_path)
    adata = read_counts_file(path)
    expected = sc.read_10x_h5(path)  # gene expression only
    expected.var_names_make_unique()
    assert adata.shape == (N_CELLS, N_GENES)
    assert list(adata.var_names) == list(expected.var_names)
    assert {"DUP", "DUP-1"} <= set(adata.var_names)
    pd.testing.assert_frame_equal(adata.obs, expected.obs)
    pd.testing.assert_frame_equal(adata.var, expected.var)
    np.testing.assert_array_equal(adata.X.toarray(), expected.X.toarray())
    assert set(adata.var["feature_types"]) == {"Gene Expression"}


@pytest.mark.parametrize("kind", ["v3", "v2"])
def test_h5_annotations_without_the_matrix(tmp_path, kind):
    path = _source(kind, tmp_path)
    obs, var = _annotations(path)
    adata = read_counts_file(path)
    pd.testing.assert_frame_equal(obs, adata.obs)
    pd.testing.assert_frame_equal(var, adata.var)


def test_folder_and_h5_agree(tmp_path):
    """A folder and an .h5 of the same run give the same cells, genes and counts."""
    h5 = read_counts_file(_source("v3", tmp_path))
    folder = read_counts_file(_source("mtx", tmp_path))
    assert list(h5.obs_names) == list(folder.obs_names)
    assert list(h5.var_names) == list(folder.var_names)
    pd.testing.assert_series_equal(h5.var["gene_ids"], folder.var["gene_ids"])
    np.testing.assert_array_equal(h5.X.toarray(), folder.X.toarray())


@pytest.mark.parametrize("kind", ["v3", "v2", "mtx", "mtx_gz"])
@pytest.mark.parametrize("block_rows", [7, 1000])
def test_chunked_equals_in_memory(tmp_path, kind, block_rows):
    source = _source(kind, tmp_path)
    memory, chunked = tmp_path / "out" / "memory.h5ad", tmp_path / "out" / "chunked.h5ad"
    steps.preprocess_expression(source, memory, chunked=False, **SETTINGS)
    stats = preprocess_counts_chunked(
        source, chunked, **SETTINGS, block_rows=block_rows, mtx_chunk_entries=53
    )
    ignore = {"source", "layer", "label_key", "batch_key", *SETTINGS}
    _assert_same_file(memory, chunked, ignore=ignore)
    result = ad.read_h5ad(chunked)
    assert 0 < result.n_obs == stats["n_cells"] < N_CELLS
    assert result.n_vars == 15
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "chunked.h5ad",
        "memory.h5ad",
    ]  # the staged folder copy is gone


def test_folder_through_the_step(tmp_path):
    source = _source("mtx_gz", tmp_path)
    memory, chunked = tmp_path / "memory.h5ad", tmp_path / "chunked.h5ad"
    assert steps.preprocess_expression(source, memory, chunked=False)["route"] == "in_memory"
    assert steps.preprocess_expression(source, chunked, chunked=True)["route"] == "chunked"
    _assert_same_file(memory, chunked)
    assert ad.read_h5ad(chunked).uns["preprocess"]["source"] == str(source)


def test_auto_route_and_sizes(tmp_path, monkeypatch):
    h5, folder = _source("v3", tmp_path), _source("mtx", tmp_path)
    nnz = _counts().nnz
    assert stored_csr_bytes(h5) == mtx_csr_bytes(folder) == nnz * 12 + (N_CELLS + 1) * 8
    assert not use_chunked(h5, "auto")
    assert not use_chunked(folder, "auto")
    monkeypatch.setattr(chunked_module, "CHUNKED_AUTO_BYTES", 1000)
    assert use_chunked(h5, "auto")
    assert use_chunked(folder, "auto")
    assert not use_chunked(h5, "auto", layer="counts")  # no layers: loaded, which says so
    assert not use_chunked(tmp_path / "missing", "auto")
    stats = steps.preprocess_expression(folder, tmp_path / "out.h5ad", n_top_genes=10)
    assert stats["route"] == "chunked"


def _one_line(err, source) -> str:
    text = str(err.value)
    assert text.startswith(f"{source}: ")
    assert "\n" not in text
    return text


@pytest.mark.parametrize("chunked", [False, True])
def test_non_10x_h5_is_one_line(tmp_path, chunked):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["values"] = np.arange(3)
    renamed = tmp_path / "renamed.h5"
    ad.AnnData(X=sp.csr_matrix(_counts().astype(np.float32))).write_h5ad(renamed)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    for source, message in (
        (other, "not a 10x Genomics HDF5 file"),
        (renamed, "not a 10x Genomics HDF5 file"),
        (text, "not an HDF5 file"),
    ):
        with pytest.raises(VAEInputError, match=message) as err:
            steps.preprocess_expression(source, tmp_path / "out.h5ad", chunked=chunked)
        _one_line(err, source)
    assert not (tmp_path / "out.h5ad").exists()


def test_unordered_mtx_is_one_line(tmp_path):
    folder = tmp_path / "by_gene"
    _write_folder(folder, _counts(), gz=True, by_cell=False)
    assert (np.diff(_mtx_cells(folder)) < 0).any()
    out = tmp_path / "out" / "chunked.h5ad"
    with pytest.raises(VAEInputError, match="not ordered by cell") as err:
        preprocess_counts_chunked(folder, out, mtx_chunk_entries=40)
    assert "preprocess.expression.chunked: false" in _one_line(err, folder / "matrix.mtx.gz")
    assert list((tmp_path / "out").iterdir()) == []  # the staged file is removed
    stats = steps.preprocess_expression(folder, tmp_path / "memory.h5ad", chunked=False)
    assert stats["n_cells_read"] == N_CELLS  # the in-memory route reads it


def test_bad_10x_counts_name_the_input(tmp_path):
    folder = _source("mtx", tmp_path)
    out = tmp_path / "out.h5ad"
    with pytest.raises(VAEInputError, match="label key 'cell_type' not in obs") as err:
        preprocess_counts_chunked(folder, out, label_key="cell_type")
    _one_line(err, folder)  # the folder, not the staged file
    matrix = folder / "matrix.mtx"
    lines = matrix.read_text().splitlines()
    matrix.write_text("\n".join(lines[:-5]) + "\n")
    with pytest.raises(VAEInputError, match="entries but its header says") as err:
        preprocess_counts_chunked(folder, out)
    _one_line(err, matrix)
    counts = _counts()
    counts.data[7] = -1
    h5 = tmp_path / "negative.h5"
    _write_h5_v3(h5, counts)
    with pytest.raises(VAEInputError, match=r"/matrix \(rows \d+-\d+\) holds negative") as err:
        preprocess_counts_chunked(h5, out, block_rows=10)
    _one_line(err, h5)
    assert not out.exists()


def test_folder_streams_in_bounded_blocks(tmp_path, monkeypatch):
    """Each block staged holds the complete cells of one chunk of ``matrix.mtx``."""
    folder = _source("mtx", tmp_path)
    sizes = []
    cell_rows = tenx_mtx._cell_rows

    def record(*args):
        rows = cell_rows(*args)
        sizes.append(rows.nnz)
        return rows

    monkeypatch.setattr(tenx_mtx, "_cell_rows", record)
    preprocess_counts_chunked(folder, tmp_path / "out.h5ad", mtx_chunk_entries=100)
    assert len(sizes) > 10
    assert max(sizes) <= 100 + _counts().getnnz(axis=1).max()  # a chunk, and a cell left open
