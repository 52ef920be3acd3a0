"""New cells ready for a count model: counts in the model's gene order, and their ``obs``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from vae.data._backed import BackedCounts
from vae.data._csr import CSRCounts
from vae.model._gene_map import GeneMappedCounts


@dataclass
class QueryCells:
    """Cells to map: a count store in the model's gene order and one ``obs`` row per cell.

    Stands in for an AnnData wherever a :class:`~vae.model.CountModel` reads cells
    (:meth:`~vae.model.CountModel.tensors`, ``get_latent``, query mapping), so a query read
    from disk block by block (:class:`~vae.model._gene_map.GeneMappedCounts` over
    :class:`~vae.data._backed.BackedCounts`) is never held in memory whole.

    Attributes
    ----------
    counts
        Rows of raw counts in the model's gene order (``counts[rows]`` is a ``CountBatch``).
    obs
        Cell annotations, with the model's batch column when it has one.
    overlap
        The gene-overlap report of the match to the model's genes.
    gene_present
        Which model genes the input has.
    """

    counts: CSRCounts | BackedCounts | GeneMappedCounts
    obs: pd.DataFrame
    overlap: dict[str, Any] = field(default_factory=dict)
    gene_present: np.ndarray | None = None

    @property
    def n_obs(self) -> int:
        """Number of cells."""
        return len(self.obs)

    @property
    def backed(self) -> bool:
        """Whether the counts are read from disk."""
        return not isinstance(self.counts, CSRCounts)

    def close(self) -> None:
        """Close the file the counts are read from (nothing for counts in memory)."""
        close = getattr(self.counts, "close", None)
        if close is not None:
            close()

    @classmethod
    def from_anndata(cls, adata: ad.AnnData) -> QueryCells:
        """Cells of an AnnData already in the model's gene order (raw counts in ``X``)."""
        counts = BackedCounts(adata.filename) if adata.isbacked else CSRCounts.from_scipy(adata.X)
        present = adata.var["present"].to_numpy() if "present" in adata.var else None
        return cls(counts, adata.obs, dict(adata.uns.get("overlap", {})), present)
