"""A device-resident CSR count matrix whose rows are gathered as count minibatches.

Minibatches are :class:`~vae._sparse.CountBatch` objects: the nonzero entries of the
rows, gathered from a CSR matrix that lives on the training device. ``CountBatch`` is
re-exported here for existing imports.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from vae._sparse import CountBatch

__all__ = ["CSRCounts", "CountBatch"]


class CSRCounts:
    """A CSR count matrix held as tensors; indexing rows returns a :class:`CountBatch`.

    It is one named input of the trainer's row store (a :class:`~vae.train.Rows`, like
    a dense tensor): ``len``, ``to(device)`` and ``store[rows]`` (a tensor of row
    indices or a slice).

    Parameters
    ----------
    indptr, indices, data
        The CSR arrays (``indptr`` has ``n_rows + 1`` entries, column indices sorted
        within each row).
    n_cols
        Number of columns (genes).
    """

    def __init__(
        self, indptr: torch.Tensor, indices: torch.Tensor, data: torch.Tensor, n_cols: int
    ) -> None:
        self.indptr, self.indices, self.data = indptr.long(), indices.long(), data.float()
        self.n_cols = int(n_cols)

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix | np.ndarray) -> CSRCounts:
        """Build from a scipy sparse matrix or a dense array (copied as CSR float32)."""
        csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        csr.eliminate_zeros()
        csr.sort_indices()
        return cls(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data),
            csr.shape[1],
        )

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``."""
        return self.indptr.numel() - 1, self.n_cols

    @property
    def device(self) -> torch.device:
        """Where the arrays live."""
        return self.data.device

    def to(self, device: torch.device | str) -> CSRCounts:
        """Return a copy on ``device``."""
        return CSRCounts(
            self.indptr.to(device), self.indices.to(device), self.data.to(device), self.n_cols
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: torch.Tensor | slice) -> CountBatch:
        """Gather ``rows`` (index tensor or slice) as a :class:`CountBatch`."""
        if isinstance(rows, slice):
            rows = torch.arange(*rows.indices(len(self)), device=self.device)
        rows = rows.to(self.device)
        start = self.indptr.index_select(0, rows)
        length = self.indptr.index_select(0, rows + 1) - start
        first = torch.cumsum(length, 0) - length  # first entry of each row in the batch
        cell = torch.repeat_interleave(torch.arange(rows.numel(), device=self.device), length)
        # position in the CSR arrays: the row's start plus the entry's rank within the row
        position = torch.arange(cell.numel(), device=self.device)
        position += (start - first).index_select(0, cell)
        return CountBatch(
            cell,
            self.indices.index_select(0, position),
            self.data.index_select(0, position),
            rows.numel(),
            self.n_cols,
        )
