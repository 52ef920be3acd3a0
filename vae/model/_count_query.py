"""New cells onto a trained count model's genes: matched by name or id, reordered, zero-filled."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vae.data import counts_matrix
from vae.errors import VAEInputError


def overlap_report(
    var_names: list[str], reference: list[str], *, min_overlap: float, source: str | Path
) -> tuple[np.ndarray, dict[str, Any]]:
    """Match ``var_names`` to the model's genes; fail below ``min_overlap``.

    Returns the index of each reference gene in ``var_names`` (-1 when missing) and a
    report of the overlap.
    """
    present = pd.Index(var_names).get_indexer(reference)
    found = present >= 0
    overlap = float(found.mean()) if len(reference) else 0.0
    report = {
        "n_reference_genes": len(reference),
        "n_input_genes": len(var_names),
        "n_shared_genes": int(found.sum()),
        "overlap": overlap,
        "min_overlap": min_overlap,
    }
    if not found.any():
        raise VAEInputError(source, f"none of the model's {len(reference)} genes is present")
    if overlap < min_overlap:
        raise VAEInputError(
            source,
            f"only {found.sum()} of {len(reference)} model genes present ({overlap:.0%} < "
            f"{min_overlap:.0%}); pass --allow-low-overlap to embed anyway",
        )
    return present, report


def align_genes(adata: ad.AnnData, present: np.ndarray, reference: list[str]) -> ad.AnnData:
    """Reorder genes to ``reference`` (indices from :func:`overlap_report`), zero-filling gaps.

    ``var["present"]`` marks the genes that were observed.
    """
    found = present >= 0
    # a 0/1 selection matrix maps input genes onto model columns; absent columns stay zero
    selection = sp.csr_matrix(
        (np.ones(found.sum(), dtype=np.float32), (present[found], np.flatnonzero(found))),
        shape=(adata.n_vars, len(reference)),
    )
    columns = sp.csr_matrix(adata.X, dtype=np.float32) @ selection
    aligned = ad.AnnData(X=columns, obs=adata.obs.copy(), var=pd.DataFrame(index=reference))
    aligned.var["present"] = found
    return aligned


@dataclass(frozen=True)
class GeneMatch:
    """Where each of a model's genes sits in a query dataset.

    Attributes
    ----------
    present
        Index of each model gene among the query's genes, ``-1`` when missing.
    genes
        The model's genes, in model order.
    report
        Overlap counts and how genes were matched (``var_names`` or a ``var`` column).
    """

    present: np.ndarray
    genes: list[str]
    report: dict[str, Any] = field(default_factory=dict)

    def apply(self, adata: ad.AnnData, *, layer: str | None, source: str | Path) -> ad.AnnData:
        """Raw counts of ``adata`` (``X`` or ``layer``) in model gene order, zero-filled."""
        counts = ad.AnnData(X=counts_matrix(adata, layer, source), obs=adata.obs)
        return align_genes(counts, self.present, self.genes)


def match_query_genes(
    query: ad.AnnData,
    *,
    genes: list[str],
    var_ids: dict[str, list[str]],
    var_key: str | None,
    min_overlap: float,
    source: str | Path,
) -> GeneMatch:
    """Match a query's genes to a model's, by name or by the ``var`` column ``var_key``.

    Parameters
    ----------
    query
        The new cells (may be backed: only ``var`` is read).
    genes, var_ids
        The model's gene names and its training ``var`` columns (e.g. Ensembl ids).
    var_key
        Match on this ``var`` column, present in both the query and the training data.
    min_overlap
        Smallest fraction of the model's genes that must be present.
    source
        The query's file, named in errors.
    """
    if var_key is None:
        query_ids, reference = list(query.var_names.astype(str)), genes
    else:
        if var_key not in query.var:
            raise VAEInputError(
                source, f"var column {var_key!r} not found; columns: {list(query.var)}"
            )
        reference = var_ids.get(var_key)
        if reference is None:
            raise VAEInputError(
                source, f"the model has no training var column {var_key!r} to match"
            )
        query_ids = list(query.var[var_key].astype(str))
    present, report = overlap_report(query_ids, reference, min_overlap=min_overlap, source=source)
    report["matched_by"] = var_key or "var_names"
    return GeneMatch(present, list(genes), report)
