"""Count readers (10x folder, TSV) and batch-aware gene selection."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from conftest import N_CELLS, N_GENES

from vae.data import prepare_counts, read_counts_file
from vae.errors import VAEInputError


def _write_10x(folder, adata, *, gz: bool = True) -> None:
    """Cell Ranger v3 layout: genes x cells matrix, barcodes, features (id, name, type)."""
    folder.mkdir()
    suffix = ".gz" if gz else ""
    opener = gzip.open if gz else open
    with opener(folder / f"matrix.mtx{suffix}", "wb") as handle:
        scipy.io.mmwrite(handle, sp.csr_matrix(adata.X).T.tocoo().astype(np.int64))
    with opener(folder / f"barcodes.tsv{suffix}", "wt") as handle:
        handle.write("".join(f"{name}\n" for name in adata.obs_names))
    with opener(folder / f"features.tsv{suffix}", "wt") as handle:
        handle.write(
            "".join(
                f"ENSG{i:05d}\t{name}\tGene Expression\n" for i, name in enumerate(adata.var_names)
            )
        )


@pytest.mark.parametrize("gz", [True, False])
def test_read_10x_folder(tmp_path, counts_adata, gz):
    folder = tmp_path / "filtered_feature_bc_matrix"
    _write_10x(folder, counts_adata, gz=gz)
    adata = read_counts_file(folder)
    assert adata.shape == (N_CELLS, N_GENES)
    assert list(adata.obs_names) == list(counts_adata.obs_names)
    assert list(adata.var_names) == list(counts_adata.var_names)
    np.testing.assert_array_equal(adata.X.toarray(), counts_adata.X.toarray())
    assert adata.var["gene_ids"].iloc[0] == "ENSG00000"


def test_read_tsv(tmp_path, counts_adata):
    path = tmp_path / "counts.tsv"
    counts_adata.to_df().to_csv(path, sep="\t")
    adata = read_counts_file(path)
    np.testing.assert_array_equal(np.asarray(adata.X), counts_adata.X.toarray())


def test_10x_folder_without_matrix_is_one_clear_error(tmp_path):
    folder = tmp_path / "empty_10x"
    folder.mkdir()
    with pytest.raises(VAEInputError) as err:
        read_counts_file(folder)
    assert str(err.value).startswith(str(folder))
    assert "matrix.mtx" in str(err.value)
    assert "\n" not in str(err.value)


def test_hvg_is_batch_aware(counts_h5ad):
    pytest.importorskip("skmisc", reason="scanpy's seurat_v3 flavour needs scikit-misc")
    batched, _ = prepare_counts(counts_h5ad, batch_key="batch", n_top_genes=20)
    plain, _ = prepare_counts(counts_h5ad, n_top_genes=20)
    # seurat_v3 ranks genes within each batch when a batch key is given
    assert "highly_variable_nbatches" in batched.var
    assert batched.var["highly_variable_nbatches"].max() <= 2
    assert "highly_variable_nbatches" not in plain.var
