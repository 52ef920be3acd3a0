"""Out-of-core preprocessing gives scanpy's in-memory result bit for bit.

The in-memory route (:func:`vae.data.prepare_counts`) runs scanpy's ``filter_cells``,
``filter_genes`` and ``highly_variable_genes(flavor="seurat_v3")``; the chunked route
(:func:`vae.data._chunked.preprocess_counts_chunked`) reads the same counts in row blocks.
Both files must hold the same ``X`` (values, indices, row pointers), ``obs``, ``var``
(``highly_variable_rank``, ``variances_norm`` ... compared exactly, not to a tolerance)
and ``uns``. The comparison is sensitive to the floating-point order: adding the clipped
sums of pass 2 block by block instead of value by value changes ``variances_norm`` of
CellBench in the last bit, and squaring the counts in float64 instead of float32 (as
scanpy) changes the pancreas set's ``variances``.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from vae import steps
from vae.data import _chunked as chunked_module
from vae.data import prepare_counts
from vae.data._chunked import preprocess_counts_chunked, use_chunked
from vae.errors import VAEInputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "expression"


def _synthetic(seed: int = 0) -> ad.AnnData:
    """Counts with three batches (one lost to QC), unseen genes, huge values, stored zeros."""
    rng = np.random.default_rng(seed)
    n_cells, n_genes = 260, 90
    batches = np.array(["b2", "b0", "b1", "lowq"])[rng.integers(0, 4, n_cells)]
    mu = rng.gamma(0.6, 3.0, n_genes) * rng.lognormal(0, 0.5, n_cells)[:, None]
    counts = rng.poisson(rng.gamma(2.0, mu / 2.0)).astype(np.float32)
    counts[batches == "lowq", 10:] = 0  # too few genes: the whole batch fails min_genes
    counts[:, [3, 40]] = 0  # never detected
    counts[rng.random((n_cells, n_genes)) < 0.01] = 5000.0  # float32 squares not exact
    matrix = sp.csr_matrix(counts)
    matrix.data[::97] = 0.0  # explicit zeros: stored, not detected
    obs = pd.DataFrame(
        {
            "batch": pd.Categorical(batches),
            "cell_type": rng.choice(["t1", "t2"], n_cells),
            "depth": counts.sum(1).astype(np.int64),
        },
        index=[f"c{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame({"gene_ids": [f"ENSG{j:05d}" for j in range(n_genes)]})
    var.index = [f"g{j}" for j in range(n_genes)]
    return ad.AnnData(X=matrix, obs=obs, var=var)


def _assert_same_file(expected: Path, actual: Path, ignore: set[str] = frozenset()) -> None:
    """The two files hold the same matrix and annotations (but the route), exactly."""
    a, b = ad.read_h5ad(expected), ad.read_h5ad(actual)
    assert a.shape == b.shape
    for name in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(a.X, name), getattr(b.X, name), err_msg=name)
    assert a.X.dtype == b.X.dtype == np.float32
    pd.testing.assert_frame_equal(a.obs, b.obs, check_exact=True)
    pd.testing.assert_frame_equal(a.var, b.var, check_exact=True)
    ignore = {"route", "chunked", *ignore}
    assert {k: v for k, v in a.uns["preprocess"].items() if k not in ignore} == {
        k: v for k, v in b.uns["preprocess"].items() if k not in ignore
    }
    assert {k: v for k, v in a.uns.items() if k != "preprocess"} == {
        k: v for k, v in b.uns.items() if k != "preprocess"
    }


def _both_routes(source: Path, root: Path, **settings) -> tuple[Path, Path]:
    memory, chunked = root / "memory.h5ad", root / "chunked.h5ad"
    stats = steps.preprocess_expression(source, memory, chunked=False, **settings)
    assert stats["route"] == "in_memory"
    stats = steps.preprocess_expression(source, chunked, chunked=True, **settings)
    assert stats["route"] == "chunked"
    return memory, chunked


@pytest.mark.parametrize("block_rows", [1, 7, 1000])
def test_synthetic_batches_match_scanpy(tmp_path, block_rows):
    source = tmp_path / "raw.h5ad"
    _synthetic().write_h5ad(source)
    settings = {"batch_key": "batch", "min_genes": 12, "min_cells": 5, "n_top_genes": 30}
    memory = tmp_path / "memory.h5ad"
    steps.preprocess_expression(source, memory, chunked=False, **settings)
    chunked = tmp_path / "chunked.h5ad"
    stats = preprocess_counts_chunked(source, chunked, **settings, block_rows=block_rows)
    _assert_same_file(memory, chunked, ignore={"source", "layer", "label_key", *settings})
    result = ad.read_h5ad(chunked)
    assert set(result.obs["batch"]) == {"b0", "b1", "b2"}  # a batch lost to QC is not ranked
    assert result.n_vars == stats["n_genes"] == 30
    assert set(result.var["highly_variable_nbatches"]) <= {1, 2, 3}


@pytest.mark.parametrize(
    "settings",
    [
        {"min_genes": 12, "min_cells": 5, "n_top_genes": 30},  # one batch
        {"min_genes": 0, "min_cells": 0, "n_top_genes": None},  # QC only, nothing dropped
        {"batch_key": "batch", "n_top_genes": 1000},  # more than the genes: no selection
    ],
)
def test_synthetic_settings_match_scanpy(tmp_path, settings):
    source = tmp_path / "raw.h5ad"
    _synthetic(1).write_h5ad(source)
    _assert_same_file(*_both_routes(source, tmp_path, label_key="cell_type", **settings))


def test_layer_and_route_recorded(tmp_path):
    raw = _synthetic(2)
    raw.layers["counts"] = raw.X.copy()
    raw.X = sp.csr_matrix(raw.X.multiply(0.5))  # normalised-looking values in X
    source = tmp_path / "raw.h5ad"
    raw.write_h5ad(source)
    memory, chunked = _both_routes(source, tmp_path, layer="counts", n_top_genes=20)
    _assert_same_file(memory, chunked)
    assert ad.read_h5ad(chunked).uns["preprocess"]["route"] == "chunked"
    assert ad.read_h5ad(memory).uns["preprocess"]["route"] == "in_memory"
    assert ad.read_h5ad(memory).uns["preprocess"]["chunked"] is False


def test_auto_route_by_size(tmp_path, monkeypatch):
    source = tmp_path / "raw.h5ad"
    _synthetic().write_h5ad(source)
    assert not use_chunked(source, "auto")
    monkeypatch.setattr(chunked_module, "CHUNKED_AUTO_BYTES", 1000)
    assert use_chunked(source, "auto")
    stats = steps.preprocess_expression(source, tmp_path / "out.h5ad", n_top_genes=20)
    assert stats["route"] == "chunked"
    assert ad.read_h5ad(tmp_path / "out.h5ad").uns["preprocess"]["chunked"] == "auto"
    dense = tmp_path / "dense.h5ad"
    ad.AnnData(X=_synthetic().X.toarray()).write_h5ad(dense)
    assert not use_chunked(dense, "auto")  # not CSR: loaded
    assert not use_chunked(tmp_path / "folder", "auto")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda a: setattr(a, "X", a.X.toarray()), "X is a dense array, not a CSR matrix"),
        (lambda a: setattr(a, "X", sp.csc_matrix(a.X)), "X is csc_matrix, not a CSR matrix"),
        (lambda a: a.X.data.__setitem__(500, -1.0), r"X \(rows \d+-\d+\) holds negative"),
        (lambda a: a.X.data.__setitem__(500, 0.5), r"X \(rows \d+-\d+\) holds non-integer"),
        (lambda a: a.X.data.__setitem__(500, np.nan), r"holds NaN or infinite values"),
    ],
)
def test_bad_input_is_one_line(tmp_path, make, message):
    raw = _synthetic()
    make(raw)
    source = tmp_path / "raw.h5ad"
    raw.write_h5ad(source)
    with pytest.raises(VAEInputError, match=message) as err:
        steps.preprocess_expression(source, tmp_path / "out.h5ad", chunked=True)
    assert str(err.value).startswith(f"{source}: ")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out.h5ad").exists()


def test_bad_settings(tmp_path):
    source = tmp_path / "raw.h5ad"
    _synthetic().write_h5ad(source)
    out = tmp_path / "out.h5ad"
    with pytest.raises(VAEInputError, match="preprocess.expression.chunked: must be auto"):
        steps.preprocess_expression(source, out, chunked="yes")
    with pytest.raises(VAEInputError, match="batch key 'donor' not in obs"):
        steps.preprocess_expression(source, out, chunked=True, batch_key="donor")
    with pytest.raises(VAEInputError, match="layer 'raw' not found"):
        steps.preprocess_expression(source, out, chunked=True, layer="raw")
    with pytest.raises(VAEInputError, match=r"zero cells left after QC \(min_genes=1000\)"):
        steps.preprocess_expression(source, out, chunked=True, min_genes=1000)
    with pytest.raises(VAEInputError, match=r"zero genes left after QC \(min_cells=1000\)"):
        steps.preprocess_expression(source, out, chunked=True, min_cells=1000)
    (tmp_path / "text.h5ad").write_text("not hdf5")
    with pytest.raises(VAEInputError, match="not a readable AnnData/count file"):
        steps.preprocess_expression(tmp_path / "text.h5ad", out, chunked=True)
    assert not out.exists()


def test_output_reads_back_backed(tmp_path):
    """The block-written file is a CSR ``.h5ad`` that backed training can read."""
    source = tmp_path / "raw.h5ad"
    _synthetic().write_h5ad(source)
    out = tmp_path / "out.h5ad"
    preprocess_counts_chunked(source, out, n_top_genes=20, block_rows=9)
    with h5py.File(out, "r") as handle:
        assert handle["X"].attrs["encoding-type"] == "csr_matrix"
        assert handle["X/indptr"].dtype == np.int64
        assert handle["X/data"].compression == "gzip"
    assert ad.read_h5ad(out, backed="r").shape == (ad.read_h5ad(out).n_obs, 20)


# --- real data (../shared; skipped when absent) -----------------------------------------------

REAL = [
    # pbmc68k: one batch; QC thresholds that drop cells and genes
    ("pbmc68k_reduced_counts.h5ad", {"min_genes": 220, "min_cells": 50, "n_top_genes": 300}),
    # CellBench: CEL-seq2 vs Drop-seq
    (
        "cellbench_3cl_celseq2_dropseq_counts.h5ad",
        {"batch_key": "batch", "min_genes": 4000, "min_cells": 50, "n_top_genes": 2000},
    ),
    # pancreas: inDrop UMIs vs Smart-seq2 reads (counts up to 361,476)
    (
        "pancreas_baron_segerstolpe_subset_counts.h5ad",
        {"batch_key": "batch", "min_genes": 600, "min_cells": 230, "n_top_genes": 300},
    ),
]


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/expression is absent")
@pytest.mark.parametrize(("name", "settings"), REAL, ids=[r[0].split("_")[0] for r in REAL])
def test_real_data_match_scanpy(tmp_path, name, settings):
    source = SHARED / name
    adata, _ = prepare_counts(source, **settings)  # scanpy in memory
    out = tmp_path / "chunked.h5ad"
    preprocess_counts_chunked(source, out, **settings, block_rows=61)
    result = ad.read_h5ad(out)
    assert list(result.obs_names) == list(adata.obs_names)  # kept cells
    assert list(result.var_names) == list(adata.var_names)  # selected genes, in file order
    np.testing.assert_array_equal(
        result.var["highly_variable_rank"], adata.var["highly_variable_rank"]
    )
    assert result.n_obs < ad.read_h5ad(source, backed="r").n_obs  # QC bit
    memory, chunked = _both_routes(source, tmp_path, **settings)
    _assert_same_file(memory, chunked)
