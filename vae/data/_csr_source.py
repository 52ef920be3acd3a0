"""Where a cells x genes CSR count matrix lives in an HDF5 file, and how its rows are read.

An ``.h5ad`` file holds it in ``X`` or a layer; a 10x Genomics ``.h5`` file holds it as
genes x cells CSC in ``/matrix`` (or ``/<genome>``, Cell Ranger v2), which is the same
arrays read as cells x genes CSR. A 10x file also holds features that are not gene
expression (antibody capture, CRISPR guides ...): :attr:`CSRSource.columns` keeps some
stored columns and renumbers them, so a row block holds only the kept genes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np


def csr_bytes(n_stored: int, n_rows: int) -> int:
    """Bytes a CSR count matrix takes in memory.

    12 bytes per stored value (float32 value, int64 column index) and 8 per row pointer.
    """
    return int(n_stored) * 12 + (int(n_rows) + 1) * 8


def stored_group_bytes(group: h5py.Group) -> int:
    """:func:`csr_bytes` of a CSR matrix stored as ``data`` / ``indptr`` datasets of a group."""
    return csr_bytes(group["data"].shape[0], group["indptr"].shape[0] - 1)


@dataclass
class CSRSource:
    """A CSR matrix stored as ``data``, ``indices`` and ``indptr`` datasets of a group.

    Parameters
    ----------
    group
        The HDF5 group holding ``data``, ``indices`` and ``indptr``.
    n_rows, n_stored_cols
        Rows (cells) and stored columns of the matrix.
    where
        The matrix named in messages, e.g. ``X`` or ``/matrix``.
    columns
        Stored columns kept, ascending (they become columns ``0..k-1``); ``None``: all.
    layers
        Layers of the file, suggested when the values look normalised.
    """

    group: h5py.Group
    n_rows: int
    n_stored_cols: int
    where: str
    columns: np.ndarray | None = None
    layers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._column_map = None
        if self.columns is not None:
            self._column_map = np.full(self.n_stored_cols, -1, dtype=np.int64)
            self._column_map[self.columns] = np.arange(self.columns.size)

    @property
    def n_cols(self) -> int:
        """Columns of the matrix read (the kept ones)."""
        return self.n_stored_cols if self.columns is None else int(self.columns.size)

    def indptr(self) -> np.ndarray:
        """Return the stored row pointers, as int64 (8 bytes per row)."""
        return self.group["indptr"][:].astype(np.int64)

    def read_rows(
        self, lo: int, hi: int, indptr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return float32 values, column indices and row pointers of rows ``lo:hi``.

        Parameters
        ----------
        lo, hi
            The rows read.
        indptr
            The stored row pointers (:meth:`indptr`).
        """
        start, stop = int(indptr[lo]), int(indptr[hi])
        data = np.asarray(self.group["data"][start:stop], dtype=np.float32)
        indices = np.asarray(self.group["indices"][start:stop])
        pointers = indptr[lo : hi + 1] - start
        if self._column_map is not None:
            indices = self._column_map[indices]
            keep = indices >= 0
            pointers = np.concatenate([[0], np.cumsum(keep)])[pointers]
            data, indices = data[keep], indices[keep]
        return data, indices, pointers
