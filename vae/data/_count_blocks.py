"""Row blocks of a CSR count matrix in an ``.h5ad`` or 10x ``.h5`` file, checked as read.

Out-of-core preprocessing (:mod:`vae.data._chunked`) reads the counts (``X`` or a layer
of an ``.h5ad`` file, the gene expression features of a 10x ``.h5`` file: a
:class:`~vae.data._csr_source.CSRSource`) as consecutive row blocks: only the row
pointers (8 bytes per cell) and one block stay in memory. Every block is cast to float32,
as the in-memory route (:func:`~vae.data.counts_matrix`) casts the whole matrix, and
checked for raw counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp

from vae._heap import bound_heap_growth
from vae._progress import chunk_ranges
from vae.data._csr_source import CSRSource
from vae.data._tenx_h5 import is_tenx_h5, tenx_source
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


def csr_source(handle: h5py.File, layer: str | None, path: str | Path) -> CSRSource:
    """Return where the counts of an ``.h5ad`` file (``X`` or ``layer``) or 10x ``.h5`` lie.

    A file ending in ``.h5`` is read as a 10x Genomics file (gene expression features).
    """
    if is_tenx_h5(path):
        if layer is not None:
            raise VAEInputError(path, f"layer {layer!r} not found; layers: []")
        return tenx_source(handle, path)
    group = stored_matrix(handle, layer, path)
    n_rows, n_cols = (int(v) for v in group.attrs["shape"])
    layers = list(handle["layers"]) if "layers" in handle else []
    where = "X" if layer is None else f"layer {layer!r}"
    return CSRSource(group, n_rows, n_cols, where, layers=layers)


class CountBlocks:
    """Consecutive row blocks of the CSR counts of an ``.h5ad`` or 10x ``.h5`` file.

    Parameters
    ----------
    path
        The ``.h5ad`` file, or a 10x Genomics ``.h5`` file (see :func:`csr_source`).
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
        bound_heap_growth()  # freed blocks go back to the system (vae._heap)
        try:
            self._handle = h5py.File(self.path, "r")
        except OSError as err:
            raise VAEInputError(self.path, unreadable(err, "AnnData/count")) from err
        try:
            self.source = csr_source(self._handle, layer, self.path)
        except BaseException:
            self._handle.close()
            raise
        self.where = self.source.where
        self.n_rows, self.n_cols = self.source.n_rows, self.source.n_cols
        self.indptr = self.source.indptr()
        mean_nnz = max(1, int(self.indptr[-1]) // max(1, self.n_rows))
        self.block_rows = max(1, block_rows or block_nnz // mean_nnz)

    def __enter__(self) -> CountBlocks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, lo: int, hi: int) -> sp.csr_matrix:
        """Rows ``lo:hi`` as a float32 CSR matrix, checked for raw counts."""
        data, indices, indptr = self.source.read_rows(lo, hi, self.indptr)
        check_count_values(
            data, f"{self.where} (rows {lo}-{hi - 1})", self.path, layers=self.source.layers
        )
        return sp.csr_matrix((data, indices, indptr), shape=(hi - lo, self.n_cols))

    def blocks(self, what: str) -> Iterator[tuple[int, int, sp.csr_matrix]]:
        """Yield ``(lo, hi, rows lo:hi)`` over the whole matrix; ``what`` labels the progress."""
        for lo, hi in chunk_ranges(self.n_rows, self.block_rows, what):
            yield lo, hi, self.read(lo, hi)

    def close(self) -> None:
        """Close the file."""
        self._handle.close()
