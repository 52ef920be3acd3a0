"""Count minibatches given by their nonzero entries.

Single-cell count matrices are about 90 % zeros. The count VAE's likelihood needs the
nonzero entries only (the ``lgamma`` terms and every term with a factor ``x`` vanish at
zero), so minibatches carry those entries and are never densified except for the
encoder's input. The data layer builds them (:mod:`vae.data._csr`,
:mod:`vae.data._backed`) and the module layer reads them (:class:`vae.module.CountVAE`);
this module sits below both.
"""

from __future__ import annotations

from dataclasses import dataclass

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
