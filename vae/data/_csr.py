"""Count minibatches as their nonzero entries, and a device-resident CSR store.

Single-cell count matrices are about 90 % zeros. The count VAE's likelihood needs the
nonzero entries only (the ``lgamma`` terms and every term with a factor ``x`` vanish at
zero), so minibatches are gathered from a CSR matrix that lives on the training device
and are never densified except for the encoder's input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch


@dataclass
class CountBatch:
    """A minibatch of counts given by its nonzero entries (row-major order).

    Attributes
    ----------
    cell, gene, value
        Row, column and value (float32) of each nonzero entry.
    n_cells, n_genes
        Shape of the dense minibatch.
    """

    cell: torch.Tensor
    gene: torch.Tensor
    value: torch.Tensor
    n_cells: int
    n_genes: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_cells, n_genes)``."""
        return self.n_cells, self.n_genes

    @property
    def flat(self) -> torch.Tensor:
        """Index of each nonzero entry in the flattened ``(cells, genes)`` matrix."""
        return self.cell * self.n_genes + self.gene

    def dense(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """Dense ``(cells, genes)`` matrix holding ``values`` (default: the counts)."""
        out = torch.zeros(self.n_cells * self.n_genes, device=self.value.device)
        out.index_copy_(0, self.flat, self.value if values is None else values)
        return out.view(self.n_cells, self.n_genes)

    def library(self) -> torch.Tensor:
        """Total counts per cell."""
        out = torch.zeros(self.n_cells, device=self.value.device)
        return out.index_add_(0, self.cell, self.value)

    def to(self, device: torch.device | str) -> CountBatch:
        """Move the entries to ``device``."""
        return CountBatch(
            self.cell.to(device),
            self.gene.to(device),
            self.value.to(device),
            self.n_cells,
            self.n_genes,
        )

    @classmethod
    def from_dense(cls, x: torch.Tensor) -> CountBatch:
        """Collect the nonzero entries of dense counts ``x``."""
        cell, gene = torch.nonzero(x, as_tuple=True)
        value = x.reshape(-1).index_select(0, cell * x.shape[1] + gene).float()
        return cls(cell, gene, value, x.shape[0], x.shape[1])


class CSRCounts:
    """A CSR count matrix held as tensors; indexing rows returns a :class:`CountBatch`.

    It stands in for a dense tensor in the trainer's data dictionary: ``shape``,
    ``to(device)`` and ``store[rows]`` (a tensor of row indices or a slice).

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
