"""10x Genomics HDF5 count files (Cell Ranger ``filtered_feature_bc_matrix.h5``), read lazily.

Cell Ranger v3+ writes ``/matrix/{data,indices,indptr,shape,barcodes}`` and
``/matrix/features/{id,name,feature_type,genome,...}``; v2 writes one group per genome,
``/<genome>/{data,indices,indptr,shape,barcodes,genes,gene_names}``. The matrix is genes x
cells CSC (``indptr`` runs over barcodes), i.e. cells x genes CSR. This module gives the
annotations and the matrix's place (:class:`~vae.data._csr_source.CSRSource`) without
reading the matrix; they follow the in-memory reader (:func:`~vae.data._anndata.read_10x_h5`,
scanpy's ``read_10x_h5``): barcodes are ``obs_names``, gene names ``var_names`` (made
unique over all features, as for a 10x folder), ids ``var["gene_ids"]``, and only
"Gene Expression" features are kept.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vae.data._csr_source import CSRSource
from vae.errors import VAEInputError

_MATRIX = ("data", "indices", "indptr", "shape", "barcodes")
_V2 = (*_MATRIX, "genes", "gene_names")
#: Feature datasets that scanpy reads into named columns, not as further ``var`` columns.
_NAMED_FEATURES = ("name", "feature_type", "id", "gene_id", "_all_tag_keys")
GENE_EXPRESSION = "Gene Expression"
NOT_10X = (
    "not a 10x Genomics HDF5 file: expected /matrix (Cell Ranger v3+) or one /<genome> group "
    "(v2) with data, indices, indptr, shape and barcodes"
)


def is_tenx_h5(path: str | Path) -> bool:
    """Whether ``path`` is read as a 10x Genomics HDF5 file: its suffix is ``.h5``."""
    return Path(path).suffix.lower() == ".h5"


def _has(group: object, names: tuple[str, ...]) -> bool:
    return isinstance(group, h5py.Group) and all(name in group for name in names)


def tenx_group(handle: h5py.File, path: str | Path) -> h5py.Group | None:
    """Return the matrix group of a 10x ``.h5`` file, or ``None`` for another HDF5 file.

    Raises :class:`~vae.errors.VAEInputError` for a v2 file with several genomes.
    """
    if "matrix" in handle:
        return handle["matrix"] if _has(handle["matrix"], _MATRIX) else None
    genomes = [name for name, group in handle.items() if _has(group, _V2)]
    if len(genomes) > 1:
        raise VAEInputError(
            path, f"10x v2 file with several genomes {genomes}; split it into one file per genome"
        )
    return handle[genomes[0]] if genomes and len(handle) == 1 else None


def require_tenx_group(handle: h5py.File, path: str | Path) -> h5py.Group:
    """:func:`tenx_group`, with an error for an HDF5 file that is not a 10x file."""
    group = tenx_group(handle, path)
    if group is None:
        raise VAEInputError(path, NOT_10X)
    return group


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    return dataset[()].astype(str)


def _frames(obs: dict, var: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``obs`` and ``var`` as scanpy's ``AnnData(matrix, obs=obs, var=var)`` makes them."""
    shape = (len(obs["obs_names"]), len(var["var_names"]))
    with warnings.catch_warnings():  # names are made unique by gene_expression
        warnings.filterwarnings("ignore", "Variable names are not unique", UserWarning)
        annotations = ad.AnnData(sp.csr_matrix(shape, dtype=np.float32), obs=obs, var=var)
    return annotations.obs, annotations.var


def _all_annotations(group: h5py.Group) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``obs`` and ``var`` of all features, as scanpy's ``read_10x_h5(gex_only=False)``."""
    obs: dict[str, np.ndarray] = {"obs_names": _strings(group["barcodes"])}
    if "features" not in group:  # v2
        var = {"var_names": _strings(group["gene_names"]), "gene_ids": _strings(group["genes"])}
        return _frames(obs, var)
    features = group["features"]
    var = {"var_names": _strings(features["name"])}
    if "gene_id" in features:  # a probe-barcode matrix
        var |= {"gene_ids": _strings(features["gene_id"]), "probe_ids": _strings(features["id"])}
    else:
        var["gene_ids"] = _strings(features["id"])
    var["feature_types"] = _strings(features["feature_type"])
    if "filtered_barcodes" in group:
        obs["filtered_barcodes"] = group["filtered_barcodes"][()].astype(bool)
    for name, item in features.items():
        if isinstance(item, h5py.Dataset) and name not in _NAMED_FEATURES:
            var[name] = item[()].astype(bool if item.dtype.kind == "b" else str)
    return _frames(obs, var)


def gene_expression_rows(var: pd.DataFrame) -> np.ndarray | None:
    """Mask of the "Gene Expression" features (``None``: no ``feature_types``, keep all)."""
    if "feature_types" not in var:
        return None
    return var["feature_types"].to_numpy() == GENE_EXPRESSION


def gene_expression(var: pd.DataFrame) -> pd.DataFrame:
    """``var`` with unique names (over all features), "Gene Expression" rows only."""
    var = var.copy()
    var.index = ad.utils.make_index_unique(var.index.astype(str))
    rows = gene_expression_rows(var)
    return var if rows is None else var[rows]


def keep_gene_expression(adata: ad.AnnData) -> ad.AnnData:
    """``adata`` with only its "Gene Expression" features (as read: names already unique)."""
    rows = gene_expression_rows(adata.var)
    return adata if rows is None else adata[:, rows].copy()


def tenx_annotations(handle: h5py.File, path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``obs`` and ``var`` (gene expression features) of a 10x ``.h5`` file."""
    try:
        obs, var = _all_annotations(require_tenx_group(handle, path))
    except KeyError as err:
        raise VAEInputError(path, f"10x HDF5 file lacks a dataset ({err})") from err
    return obs, gene_expression(var)


def tenx_source(handle: h5py.File, path: str | Path) -> CSRSource:
    """Return where the gene expression counts of a 10x ``.h5`` file lie (cells x genes)."""
    group = require_tenx_group(handle, path)
    n_features, n_cells = (int(v) for v in group["shape"][()])
    if group["indptr"].shape[0] != n_cells + 1:
        size = group["indptr"].shape[0]
        raise VAEInputError(path, f"{group.name}: indptr has {size} entries for {n_cells} cells")
    columns = None
    if "features" in group:
        try:
            types = _strings(group["features"]["feature_type"])
        except KeyError as err:
            raise VAEInputError(path, f"10x HDF5 file lacks a dataset ({err})") from err
        columns = np.flatnonzero(types == GENE_EXPRESSION)
    return CSRSource(group, n_cells, n_features, group.name, columns)
