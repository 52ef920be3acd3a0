"""Count rows of a new dataset put in a trained model's gene order as they are read.

:class:`GeneMappedCounts` wraps a row store of counts in the file's gene order (usually a
:class:`~vae.data._backed.BackedCounts` reading an ``.h5ad`` block by block) and returns
minibatches in the model's gene order: genes the model does not have are dropped, model
genes missing from the file stay zero. It is what :meth:`GeneMatch.apply
<vae.model._count_query.GeneMatch.apply>` does to a whole matrix in memory, done per
minibatch, so a query of any size is mapped without loading it.
"""

from __future__ import annotations

import numpy as np
import torch

from vae._sparse import CountBatch
from vae.train._rows import EpochOrderedRows, Rows


def column_map(present: np.ndarray, n_file_genes: int) -> np.ndarray:
    """Model column of each file column (``-1``: not a model gene).

    Parameters
    ----------
    present
        Index of each model gene among the file's genes, ``-1`` when missing (as
        :class:`~vae.model._count_query.GeneMatch` holds it).
    n_file_genes
        Number of genes (columns) in the file.
    """
    present = np.asarray(present, dtype=np.int64)
    found = present >= 0
    columns = np.full(n_file_genes, -1, dtype=np.int64)
    columns[present[found]] = np.flatnonzero(found)
    return columns


class GeneMappedCounts:
    """Rows of ``counts`` with their genes renumbered to a model's genes.

    A :class:`~vae.train.Rows` (and an :class:`~vae.train.EpochOrderedRows` when
    ``counts`` is one): ``store[rows]`` is a :class:`~vae._sparse.CountBatch` with
    ``n_genes`` columns, its entries in row-major, gene-sorted order.

    Parameters
    ----------
    counts
        Rows in the file's gene order (``store[rows]`` is a ``CountBatch``).
    columns
        Model column of each file column, ``-1`` to drop it (:func:`column_map`).
    n_genes
        Number of model genes.
    """

    def __init__(self, counts: Rows, columns: np.ndarray, n_genes: int) -> None:
        self.counts, self.n_genes = counts, int(n_genes)
        self.n_cols = self.n_genes
        columns = np.asarray(columns, dtype=np.int64)
        kept = columns[columns >= 0]
        # file order already model order: the entries need no sorting within rows
        self._sorted = bool(np.all(np.diff(kept) > 0))
        self._all_kept = kept.size == columns.size
        self._identity = self._all_kept and np.array_equal(columns, np.arange(self.n_genes))
        self._columns = torch.from_numpy(columns)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_genes)``."""
        return len(self), self.n_genes

    def __len__(self) -> int:
        return len(self.counts)

    def to(self, device: torch.device | str) -> GeneMappedCounts:
        """Place future minibatches on ``device``."""
        self.counts = self.counts.to(device)
        self._columns = self._columns.to(device)
        return self

    def __getitem__(self, rows: torch.Tensor | slice) -> CountBatch:
        """Read ``rows`` (index tensor or slice) in the model's gene order."""
        batch = self.counts[rows]
        if self._identity:
            return batch
        columns = self._columns.to(batch.gene.device)
        cell, gene, value = batch.cell, columns.index_select(0, batch.gene), batch.value
        if not self._all_kept:
            keep = gene >= 0
            cell, gene, value = cell[keep], gene[keep], value[keep]
        if not self._sorted:
            order = torch.argsort(cell * self.n_genes + gene)
            cell, gene, value = cell[order], gene[order], value[order]
        return CountBatch(cell, gene, value, batch.n_cells, self.n_genes)

    def epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Return the wrapped store's epoch order (e.g. shuffled disk blocks), else ``None``."""
        if isinstance(self.counts, EpochOrderedRows):
            return self.counts.epoch_order(n, generator)
        return None

    def close(self) -> None:
        """Close the wrapped store's file, if it reads one."""
        close = getattr(self.counts, "close", None)
        if close is not None:
            close()
