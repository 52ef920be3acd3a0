"""Row blocks of a CSR count matrix in an ``.h5ad`` file, checked as they are read.

Out-of-core preprocessing (:mod:`vae.data._chunked`) reads the counts (``X`` or a layer)
as consecutive row blocks: only the row pointers (8 bytes per cell) and one block stay in
memory. Every block is cast to float32, as the in-memory route
(:func:`~vae.data.counts_matrix`) casts the whole matrix, and checked for raw counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from vae._progress import chunk_ranges
from vae.errors import VAEInputError, unreadable

#: Stored entries (values + column indices) read per block by default: about 128 MB.
BLOCK_NNZ = 1 << 24


def check_count_values(
    values: np.ndarray, where: str, source: str | Path, *, layers: list[str] | None = None
) -> None:
    """Raise :class:`~vae.errors.VAEInputError` unless ``values`` are raw counts.

    Parameters
    ----------
    values
        Stored values of a count matrix (or of some of its rows).
    where
        The matrix named in the message, e.g. ``X`` or ``layer 'counts' (rows 0-99)``.
    source
        The file named in the message.
    layers
        Layers of the file, suggested when the values look normalised.
    """
    if not np.isfinite(values).all():
        raise VAEInputError(source, f"{where} holds NaN or infinite values")
    if (values < 0).any():
        raise VAEInputError(source, f"{where} holds negative values; raw counts are required")
    if not np.array_equal(values, np.round(values)):
        hint = f" (layers present: {layers})" if layers else ""
        raise VAEInputError(
            source,
            f"{where} holds non-integer values, looks normalised; count likelihoods need raw "
            f"counts: set layer to the raw-count layer{hint}",
        )


def stored_matrix(
    handle: h5py.File,
    layer: str | None,
    path: str | Path,
    remedy: str = "chunked preprocessing reads CSR rows (rewrite it as "
    "scipy.sparse.csr_matrix, or set preprocess.expression.chunked: false)",
) -> h5py.Group:
    """Return the CSR group of ``X`` or ``layers/<layer>`` (error if absent or not CSR).

    Parameters
    ----------
    handle
        The open ``.h5ad`` file.
    layer
        The layer holding the counts; None: ``X``.
    path
        The file, named in the error.
    remedy
        What the error says to do about a matrix that is not CSR.
    """
    key = "X" if layer is None else f"layers/{layer}"
    where = "X" if layer is None else f"layer {layer!r}"
    if key not in handle:
        layers = list(handle["layers"]) if "layers" in handle else []
        raise VAEInputError(path, f"{where} not found; layers: {layers}")
    group = handle[key]
    encoding = group.attrs.get("encoding-type") if isinstance(group, h5py.Group) else None
    if encoding != "csr_matrix":
        raise VAEInputError(
            path, f"{where} is {encoding or 'a dense array'}, not a CSR matrix; {remedy}"
        )
    return group


class CountBlocks:
    """Consecutive row blocks of the CSR counts of an ``.h5ad`` file.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    layer
        Layer holding the counts; ``X`` when ``None``.
    block_nnz
        Stored entries per block (the number of rows follows from the mean row length).
    block_rows
        Rows per block instead, when given (tests use small blocks).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        layer: str | None = None,
        block_nnz: int = BLOCK_NNZ,
        block_rows: int | None = None,
    ) -> None:
        self.path, self.layer = Path(path), layer
        self.where = "X" if layer is None else f"layer {layer!r}"
        try:
            self._handle = h5py.File(self.path, "r")
        except OSError as err:
            raise VAEInputError(self.path, unreadable(err, "AnnData/count")) from err
        self._layers = list(self._handle["layers"]) if "layers" in self._handle else []
        self._group = stored_matrix(self._handle, layer, self.path)
        self.n_rows, self.n_cols = (int(v) for v in self._group.attrs["shape"])
        self.indptr = self._group["indptr"][:].astype(np.int64)
        mean_nnz = max(1, int(self.indptr[-1]) // max(1, self.n_rows))
        self.block_rows = max(1, block_rows or block_nnz // mean_nnz)

    def __enter__(self) -> CountBlocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, lo: int, hi: int) -> sp.csr_matrix:
        """Rows ``lo:hi`` as a float32 CSR matrix, checked for raw counts."""
        start, stop = int(self.indptr[lo]), int(self.indptr[hi])
        data = np.asarray(self._group["data"][start:stop], dtype=np.float32)
        check_count_values(
            data, f"{self.where} (rows {lo}-{hi - 1})", self.path, layers=self._layers
        )
        indices = np.asarray(self._group["indices"][start:stop])
        return sp.csr_matrix(
            (data, indices, self.indptr[lo : hi + 1] - start), shape=(hi - lo, self.n_cols)
        )

    def blocks(self, what: str) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """Yield ``(lo, hi, rows lo:hi)`` over the whole matrix; ``what`` labels the progress."""
        for lo, hi in chunk_ranges(self.n_rows, self.block_rows, what):
            yield lo, hi, self.read(lo, hi)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()
