"""Single-cell count matrices: reading, count checks, QC and gene selection."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import scanpy as sc
import scipy.io
import scipy.sparse as sp

from vae.data._count_blocks import check_count_values
from vae.data._tenx_h5 import keep_gene_expression, require_tenx_group
from vae.data._tenx_mtx import check_shape, tenx_folder_annotations, tenx_folder_files
from vae.errors import VAEInputError, unreadable

logger = logging.getLogger(__name__)


def read_10x_folder(path: str | Path) -> ad.AnnData:
    """Read a 10x Genomics matrix folder (Cell Ranger v2 or v3+, gzipped or not).

    The folder holds ``matrix.mtx[.gz]`` (genes x cells), ``barcodes.tsv[.gz]`` and
    ``features.tsv[.gz]`` (v3: id, name, type; only "Gene Expression" rows are kept) or
    ``genes.tsv`` (v2: id, name). Gene names become ``var_names`` (made unique), ids go to
    ``var["gene_ids"]``.
    """
    path = Path(path)
    matrix, barcodes, features = tenx_folder_files(path)
    counts = sp.csr_matrix(scipy.io.mmread(matrix).T, dtype=np.float32)
    obs, var = tenx_folder_annotations(barcodes, features)
    check_shape(path, counts.shape[1], counts.shape[0], obs, var)
    return keep_gene_expression(ad.AnnData(X=counts, obs=obs, var=var))


def read_10x_h5(path: str | Path) -> ad.AnnData:
    """Read a 10x Genomics ``.h5`` file (Cell Ranger v2 or v3+) with scanpy's reader.

    As for a folder (:func:`read_10x_folder`), gene names become ``var_names`` (made
    unique over all features), ids go to ``var["gene_ids"]`` and only "Gene Expression"
    features are kept; scanpy's further columns (``feature_types``, ``genome`` ...) stay.
    """
    with h5py.File(path, "r") as handle:
        require_tenx_group(handle, path)
    with warnings.catch_warnings():  # names are made unique below
        warnings.filterwarnings("ignore", "Variable names are not unique", UserWarning)
        adata = sc.read_10x_h5(path, gex_only=False)
    adata.var_names = ad.utils.make_index_unique(adata.var_names.astype(str))
    return keep_gene_expression(adata)


def read_counts_file(path: str | Path) -> ad.AnnData:
    """Read an ``.h5ad`` file, a 10x ``.h5`` file or folder, or a CSV/TSV table (cells x genes).

    Parameters
    ----------
    path
        Input location.

    Returns
    -------
    anndata.AnnData
        The data as read, nothing changed.
    """
    path = Path(path)
    if not path.exists():
        raise VAEInputError(path, "file does not exist")
    try:
        if path.is_dir():
            return read_10x_folder(path)
        if path.stat().st_size == 0:
            raise VAEInputError(path, "file is empty")
        suffix = path.suffix.lower()
        if suffix == ".h5ad":
            return ad.read_h5ad(path)
        if suffix == ".h5":
            return read_10x_h5(path)
        if suffix in {".csv", ".tsv", ".txt"}:
            return ad.read_csv(path, delimiter="," if suffix == ".csv" else "\t")
    except VAEInputError:
        raise
    except Exception as err:  # readers raise many types for corrupt files
        raise VAEInputError(path, unreadable(err, "AnnData/count")) from err
    raise VAEInputError(
        path, f"unknown expression suffix {path.suffix!r}; use .h5ad, .h5 (10x), .csv, .tsv"
    )


def counts_matrix(adata: ad.AnnData, layer: str | None, source: str | Path) -> sp.csr_matrix:
    """Return the count matrix (``X`` or ``layer``) as CSR float32 after checking it.

    Raises :class:`~vae.errors.VAEInputError` when values are NaN/inf, negative or
    not integers: count likelihoods need raw counts.
    """
    if layer is not None and layer not in adata.layers:
        raise VAEInputError(source, f"layer {layer!r} not found; layers: {list(adata.layers)}")
    matrix = adata.layers[layer] if layer is not None else adata.X
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    where = f"layer {layer!r}" if layer else "X"
    check_count_values(matrix.data, where, source, layers=list(adata.layers))
    return matrix


def prepare_counts(
    path: str | Path,
    *,
    layer: str | None = None,
    label_key: str | None = None,
    batch_key: str | None = None,
    min_genes: int = 1,
    min_cells: int = 1,
    n_top_genes: int | None = None,
) -> tuple[ad.AnnData, dict]:
    """Read, check and QC-filter raw counts for a count VAE.

    Parameters
    ----------
    path
        Input file (see :func:`read_counts_file`).
    layer
        Layer holding raw counts; ``X`` when ``None``.
    label_key, batch_key
        ``obs`` columns that must exist when given.
    min_genes, min_cells
        QC thresholds (scanpy ``filter_cells`` / ``filter_genes``).
    n_top_genes
        When set, keep this many highly variable genes (scanpy ``seurat_v3`` on
        counts, batch-aware with ``batch_key``).

    Returns
    -------
    tuple
        AnnData with counts in ``X`` (CSR float32) and the QC stats.
    """
    raw = read_counts_file(path)
    for key, what in ((label_key, "label"), (batch_key, "batch")):
        if key is not None and key not in raw.obs:
            raise VAEInputError(path, f"{what} key {key!r} not in obs columns {list(raw.obs)}")
    adata = ad.AnnData(X=counts_matrix(raw, layer, path), obs=raw.obs.copy(), var=raw.var.copy())
    adata.obs_names, adata.var_names = raw.obs_names.astype(str), raw.var_names.astype(str)
    stats = {"n_cells_read": adata.n_obs, "n_genes_read": adata.n_vars}
    sc.pp.filter_cells(adata, min_genes=min_genes)
    if adata.n_obs == 0:
        raise VAEInputError(path, f"zero cells left after QC (min_genes={min_genes})")
    sc.pp.filter_genes(adata, min_cells=min_cells)
    if adata.n_vars == 0:
        raise VAEInputError(path, f"zero genes left after QC (min_cells={min_cells})")
    if n_top_genes is not None and n_top_genes < adata.n_vars:
        sc.pp.highly_variable_genes(
            adata, flavor="seurat_v3", n_top_genes=n_top_genes, batch_key=batch_key, subset=True
        )
    adata.obs["library_size"] = np.asarray(adata.X.sum(1)).ravel()
    stats |= {"n_cells": adata.n_obs, "n_genes": adata.n_vars}
    logger.info("counts %s: %s", path, stats)
    return adata, stats


def preprocess_obs_keys(adata: ad.AnnData) -> dict[str, str]:
    """Return the label and batch ``obs`` columns recorded in ``uns['preprocess']``."""
    settings = adata.uns.get("preprocess", {})
    return {k: settings[k] for k in ("label_key", "batch_key") if settings.get(k)}
