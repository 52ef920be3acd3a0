"""scanpy's cell and gene QC filters, counted over row blocks of a count matrix.

The in-memory route runs ``sc.pp.filter_cells(min_genes=...)`` and then
``sc.pp.filter_genes(min_cells=...)``: a cell's number of detected genes counts every
stored value above zero, and a gene's number of cells counts only the cells that passed
the cell filter. A cell's verdict depends on its own row alone, so one pass over the
rows gives both: each block's kept rows add to the gene counts. The counts are integers,
so nothing depends on the order of the blocks.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class CellGeneCounts:
    """``obs["n_genes"]`` and ``var["n_cells"]`` as scanpy's filters compute them.

    Parameters
    ----------
    n_rows, n_cols
        Shape of the whole matrix (cells x genes).
    min_genes, min_cells
        The thresholds of ``sc.pp.filter_cells`` and ``sc.pp.filter_genes``.
    """

    def __init__(self, n_rows: int, n_cols: int, *, min_genes: int, min_cells: int) -> None:
        self.min_genes, self.min_cells = min_genes, min_cells
        self.n_genes = np.zeros(n_rows, dtype=np.int64)
        self.n_cells = np.zeros(n_cols, dtype=np.int64)

    def add(self, lo: int, block: sp.csr_matrix) -> np.ndarray:
        """Count the rows ``lo:lo + block.shape[0]``; return which of them pass the cell filter."""
        positive = block.data > 0
        before = np.concatenate([[0], np.cumsum(positive, dtype=np.int64)])
        number = before[block.indptr[1:]] - before[block.indptr[:-1]]
        self.n_genes[lo : lo + block.shape[0]] = number
        keep = number >= self.min_genes
        seen = np.repeat(keep, np.diff(block.indptr)) & positive
        self.n_cells += np.bincount(block.indices[seen], minlength=self.n_cells.size)
        return keep

    @property
    def keep_cells(self) -> np.ndarray:
        """Cells with at least ``min_genes`` detected genes."""
        return self.n_genes >= self.min_genes

    @property
    def keep_genes(self) -> np.ndarray:
        """Genes detected in at least ``min_cells`` of the kept cells."""
        return self.n_cells >= self.min_cells
