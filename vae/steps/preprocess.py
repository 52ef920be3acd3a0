"""Preprocess a dataset: alignment filters and weights, or count checks, QC and HVGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vae._device import resolve_device
from vae._io import write_h5ad_atomic
from vae.data import alignment_to_anndata, prepare_counts, read_alignment
from vae.data._chunked import (
    ROUTE_CHUNKED,
    ROUTE_IN_MEMORY,
    preprocess_counts_chunked,
    use_chunked,
)
from vae.steps.align import read_search_summary


def preprocess_protein(
    alignment: str | Path,
    output: str | Path,
    *,
    focus_id: str | None = None,
    max_seq_gap_frac: float = 0.5,
    max_col_gap_frac: float = 0.3,
    theta: float = 0.2,
    device: str = "auto",
) -> dict[str, Any]:
    """Filter, encode and weight an alignment; write it as ``.h5ad``. Returns the stats."""
    msa = read_alignment(
        alignment,
        focus_id=focus_id,
        max_seq_gap_frac=max_seq_gap_frac,
        max_col_gap_frac=max_col_gap_frac,
    )
    adata = alignment_to_anndata(msa, theta=theta, device=resolve_device(device))
    adata.uns["preprocess"] |= {
        "source": str(alignment),
        "max_seq_gap_frac": max_seq_gap_frac,
        "max_col_gap_frac": max_col_gap_frac,
    }
    search = read_search_summary(alignment)  # an alignment built by align_family
    if search is not None:
        adata.uns["preprocess"]["search"] = search
    write_h5ad_atomic(adata, output)
    return dict(adata.uns["preprocess"])


def preprocess_expression(
    counts: str | Path,
    output: str | Path,
    *,
    layer: str | None = None,
    label_key: str | None = None,
    batch_key: str | None = None,
    min_genes: int = 1,
    min_cells: int = 1,
    n_top_genes: int | None = None,
    chunked: bool | str = "auto",
) -> dict[str, Any]:
    """Check raw counts, QC-filter, optionally select HVGs; write ``.h5ad``. Returns the stats.

    ``chunked``: ``True`` reads the CSR counts of an ``.h5ad`` file, or a 10x ``.h5``
    file or matrix folder, in row blocks and writes the result block by block
    (:func:`~vae.data._chunked.preprocess_counts_chunked`, the same cells, genes and
    values as scanpy in memory); ``False`` loads them
    (:func:`~vae.data.prepare_counts`); ``"auto"`` chunks above 2 GiB of CSR counts
    (:func:`~vae.data._chunked.use_chunked`). ``uns["preprocess"]["route"]`` records
    the route taken (``chunked`` or ``in_memory``).
    """
    settings = {
        "source": str(counts),
        "layer": layer,
        "label_key": label_key,
        "batch_key": batch_key,
        "min_genes": min_genes,
        "min_cells": min_cells,
        "n_top_genes": n_top_genes,
        "chunked": chunked,
    }
    options = {k: v for k, v in settings.items() if k not in ("source", "chunked")}
    if use_chunked(counts, chunked, layer):
        settings["route"] = ROUTE_CHUNKED
        stats = preprocess_counts_chunked(counts, output, **options, record=settings)
        return stats | {"route": ROUTE_CHUNKED}
    adata, stats = prepare_counts(counts, **options)
    adata.uns["preprocess"] = stats | settings | {"route": ROUTE_IN_MEMORY}
    write_h5ad_atomic(adata, output)
    return stats | {"route": ROUTE_IN_MEMORY}
