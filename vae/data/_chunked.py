"""Preprocess raw counts out of core: QC filters, seurat_v3 HVGs and the output, in row blocks.

The chunked route gives the same file as the in-memory one (:func:`~vae.data.prepare_counts`
then :func:`~vae._io.write_h5ad_atomic`): same kept cells and genes, same ``X``, same
``obs`` / ``var`` columns (scanpy's ``n_genes``, ``n_cells`` and ``seurat_v3`` columns,
``library_size``) and ``uns``. It reads the CSR counts of an ``.h5ad`` file or the gene
expression counts of a 10x Genomics ``.h5`` file
(:class:`~vae.data._count_blocks.CountBlocks`) in row blocks, holding only per-cell and
per-gene arrays and one block in memory. A 10x matrix folder is first streamed into a
temporary CSR ``.h5ad`` beside the output (:func:`~vae.data._tenx_mtx.staged_10x_folder`):

1. QC (:mod:`vae.data._chunked_qc`) and, with ``n_top_genes``, each batch's per-gene sums
   of counts and squared counts (pass 1 of :mod:`vae.data._chunked_hvg`);
2. with ``n_top_genes``, the per-batch loess fits, then the clipped sums (pass 2) and
   scanpy's ranking;
3. the kept cells and genes, written block by block (:mod:`vae.data._h5ad_blocks`).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from vae._io import atomic_path
from vae.data._backed import BACKED_AUTO_BYTES, stored_csr_bytes
from vae.data._chunked_hvg import (
    BatchMoments,
    ClippedSums,
    annotate_hvg,
    clip_values,
    normalized_variance,
    rank_genes,
)
from vae.data._chunked_qc import CellGeneCounts
from vae.data._count_blocks import CountBlocks
from vae.data._h5ad_blocks import H5adBlockWriter
from vae.data._tenx_h5 import is_tenx_h5, tenx_annotations
from vae.data._tenx_mtx import MTX_CHUNK_ENTRIES, mtx_csr_bytes, staged_10x_folder
from vae.errors import VAEInputError, unreadable

logger = logging.getLogger(__name__)

#: ``chunked: auto`` preprocesses out of core above this many bytes of in-memory CSR counts
#: (as ``train.expression.backed: auto``); the in-memory route peaks at several times that.
CHUNKED_AUTO_BYTES = BACKED_AUTO_BYTES

ROUTE_CHUNKED, ROUTE_IN_MEMORY = "chunked", "in_memory"


def use_chunked(path: str | Path, chunked: bool | str, layer: str | None = None) -> bool:
    """Decide whether counts are preprocessed out of core (``chunked``) or loaded.

    ``"auto"``: chunked when ``path`` is an ``.h5ad`` file whose counts (``X`` or
    ``layer``) are CSR, a 10x ``.h5`` file or a 10x matrix folder (its ``matrix.mtx``
    header's entries), and they would take more than :data:`CHUNKED_AUTO_BYTES` in memory
    as CSR. ``True`` needs such an input (checked when it is read).
    """
    if chunked == "auto":
        if Path(path).is_dir():
            size = mtx_csr_bytes(path) if layer is None else None
        else:
            size = stored_csr_bytes(path, layer)
        return size is not None and size > CHUNKED_AUTO_BYTES
    if not isinstance(chunked, bool):
        raise VAEInputError(
            "preprocess.expression.chunked", f"must be auto, true or false, not {chunked!r}"
        )
    return chunked


def _annotations(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``obs`` and ``var`` of an ``.h5ad`` or 10x ``.h5`` file, without reading its matrices."""
    try:
        with h5py.File(path, "r") as handle:
            if is_tenx_h5(path):
                return tenx_annotations(handle, path)
            return ad.io.read_elem(handle["obs"]), ad.io.read_elem(handle["var"])
    except VAEInputError:
        raise
    except KeyError as err:
        raise VAEInputError(path, "obs or var is missing: not an AnnData file") from err
    except Exception as err:  # readers raise many types for corrupt or foreign files
        raise VAEInputError(path, unreadable(err, "AnnData/count")) from err


def _batch_codes(obs: pd.DataFrame, batch_key: str | None, path: Path) -> tuple[np.ndarray, int]:
    """Each cell's batch as an index into the sorted batch labels (scanpy's ``np.unique``)."""
    if batch_key is None:
        return np.zeros(len(obs), dtype=np.int64), 1
    try:
        batches, codes = np.unique(obs[batch_key].to_numpy(), return_inverse=True)
    except TypeError as err:
        raise VAEInputError(
            path, f"batch column {batch_key!r} holds missing or mixed-type values"
        ) from err
    return codes.astype(np.int64).ravel(), len(batches)


def _select_genes(
    blocks: CountBlocks,
    adata: ad.AnnData,
    *,
    genes: np.ndarray,
    keep_cells: np.ndarray,
    codes: np.ndarray,
    moments: BatchMoments,
    total: BatchMoments,
    n_top_genes: int,
) -> pd.DataFrame:
    """Return scanpy's ``seurat_v3`` table of the kept ``genes`` (column indices of the file)."""
    means, variances = total.mean_var(0, genes)
    present = np.flatnonzero(moments.n_obs > 0)  # batches with kept cells, sorted
    fits = []
    for batch in present:
        mean, var = moments.mean_var(batch, genes)
        n_obs = int(moments.n_obs[batch])
        fits.append((n_obs, mean, *clip_values(mean, var, n_obs)))
    gene_map = np.full(blocks.n_cols, -1, dtype=np.int64)
    gene_map[genes] = np.arange(genes.size)
    batch_map = np.full(moments.n_obs.size, -1, dtype=np.int64)
    batch_map[present] = np.arange(present.size)
    clipped = ClippedSums(np.stack([fit[3] for fit in fits]), gene_map)
    for lo, hi, block in blocks.blocks("HVG pass 2: clipped sums"):
        clipped.add(block, np.where(keep_cells[lo:hi], batch_map[codes[lo:hi]], -1))
    norm_gene_vars = np.stack(
        [
            normalized_variance(n_obs, mean, reg_std, clipped.squares[i], clipped.sums[i])
            for i, (n_obs, mean, reg_std, _) in enumerate(fits)
        ]
    )
    return rank_genes(norm_gene_vars, n_top_genes, adata.var_names, means, variances)


def preprocess_counts_chunked(
    path: str | Path,
    output: str | Path,
    *,
    layer: str | None = None,
    label_key: str | None = None,
    batch_key: str | None = None,
    min_genes: int = 1,
    min_cells: int = 1,
    n_top_genes: int | None = None,
    record: dict[str, Any] | None = None,
    block_rows: int | None = None,
    mtx_chunk_entries: int = MTX_CHUNK_ENTRIES,
) -> dict[str, int]:
    """Check, QC-filter and select HVGs of raw counts on disk; write the result block by block.

    Same settings and result as :func:`~vae.data.prepare_counts` (scanpy
    ``filter_cells``, ``filter_genes`` and ``highly_variable_genes(flavor="seurat_v3")``),
    for an ``.h5ad`` file whose counts are CSR, a 10x ``.h5`` file or a 10x matrix folder
    whose ``matrix.mtx`` is ordered by cell, without loading them.

    Parameters
    ----------
    path
        Input ``.h5ad`` or 10x ``.h5`` file, or 10x matrix folder.
    output
        The preprocessed ``.h5ad`` to write (atomically).
    layer, label_key, batch_key, min_genes, min_cells, n_top_genes
        As :func:`~vae.data.prepare_counts`.
    record
        Written to ``uns["preprocess"]`` with the returned stats.
    block_rows
        Rows per block read (default: about 16 million stored values per block).
    mtx_chunk_entries
        Entries of a folder's ``matrix.mtx`` read at a time.

    Returns
    -------
    dict
        ``n_cells_read``, ``n_genes_read``, ``n_cells``, ``n_genes``.
    """
    path = Path(path)
    with contextlib.ExitStack() as stack:
        if path.is_dir():  # a 10x folder: stream matrix.mtx into a CSR .h5ad beside the output
            folder = staged_10x_folder(path, Path(output).parent, mtx_chunk_entries)
            path = stack.enter_context(folder)
        elif not path.is_file():
            raise VAEInputError(path, "file does not exist")
        blocks = stack.enter_context(CountBlocks(path, layer=layer, block_rows=block_rows))
        obs, var = _annotations(path)
        for key, what in ((label_key, "label"), (batch_key, "batch")):
            if key is not None and key not in obs:
                raise VAEInputError(path, f"{what} key {key!r} not in obs columns {list(obs)}")
        if (len(obs), len(var)) != (blocks.n_rows, blocks.n_cols):
            raise VAEInputError(
                path,
                f"{blocks.where} is {blocks.n_rows} x {blocks.n_cols} but obs x var is "
                f"{len(obs)} x {len(var)}",
            )
        adata = ad.AnnData(obs=obs.copy(), var=var.copy())  # the annotations, as scanpy edits them
        adata.obs_names, adata.var_names = obs.index.astype(str), var.index.astype(str)
        stats = {"n_cells_read": adata.n_obs, "n_genes_read": adata.n_vars}
        codes, n_batches = _batch_codes(adata.obs, batch_key, path)

        qc = CellGeneCounts(*adata.shape, min_genes=min_genes, min_cells=min_cells)
        moments, total = BatchMoments(n_batches, adata.n_vars), BatchMoments(1, adata.n_vars)
        hvg = n_top_genes is not None
        for lo, hi, block in blocks.blocks("QC and HVG pass 1" if hvg else "QC"):
            keep = qc.add(lo, block)
            if hvg:
                moments.add(block, np.where(keep, codes[lo:hi], -1))
                if n_batches > 1:
                    total.add(block, np.where(keep, 0, -1))
        if hvg and n_batches == 1:
            total = moments
        adata.obs["n_genes"] = qc.n_genes
        adata = adata[qc.keep_cells].copy()
        if adata.n_obs == 0:
            raise VAEInputError(path, f"zero cells left after QC (min_genes={min_genes})")
        adata.var["n_cells"] = qc.n_cells
        adata = adata[:, qc.keep_genes].copy()
        if adata.n_vars == 0:
            raise VAEInputError(path, f"zero genes left after QC (min_cells={min_cells})")
        genes = np.flatnonzero(qc.keep_genes)
        if hvg and n_top_genes < genes.size:
            table = _select_genes(
                blocks,
                adata,
                genes=genes,
                keep_cells=qc.keep_cells,
                codes=codes,
                moments=moments,
                total=total,
                n_top_genes=n_top_genes,
            )
            adata = annotate_hvg(adata, table, batch_key)
            genes = genes[table["highly_variable"].to_numpy()]

        stats |= {"n_cells": adata.n_obs, "n_genes": adata.n_vars}
        library = []
        with atomic_path(output) as tmp, H5adBlockWriter(tmp, genes.size) as writer:
            for lo, hi, block in blocks.blocks("write kept cells and genes"):
                rows = block[qc.keep_cells[lo:hi]][:, genes]
                library.append(np.asarray(rows.sum(1)).ravel())
                writer.append(rows)
            adata.obs["library_size"] = np.concatenate(library)
            adata.uns["preprocess"] = stats | dict(record or {})
            writer.finish(adata)
    logger.info("counts %s (chunked): %s", path, stats)
    return stats
