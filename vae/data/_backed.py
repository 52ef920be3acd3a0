"""Counts read from an ``.h5ad`` file block by block, for training without loading them whole.

:class:`BackedCounts` stands in for :class:`~vae.data._csr.CSRCounts` in the trainer's row
store (an :class:`~vae.train.EpochOrderedRows`: it orders an epoch itself). It keeps only
the CSR row pointers in memory (8 bytes per cell) and an LRU cache of row blocks. An
epoch visits the training cells in shuffled blocks of ``block_size`` rows, and cells are
shuffled within a buffer of ``buffer_blocks`` blocks (:meth:`BackedCounts.epoch_order`),
so every block is read from disk once per epoch.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
import torch

from vae._heap import bound_heap_growth
from vae._sparse import CountBatch
from vae.data._count_blocks import stored_matrix
from vae.data._csr_source import stored_group_bytes
from vae.data._tenx_h5 import is_tenx_h5, tenx_group
from vae.errors import VAEInputError

#: In-memory CSR of the whole matrix above this many bytes: read it backed (``backed: auto``).
BACKED_AUTO_BYTES = 2 * 1024**3


#: What the error on a non-CSR matrix says to do, for backed reading.
_BACKED_REMEDY = (
    "backed reading needs CSR rows (rewrite it with X as scipy.sparse.csr_matrix, "
    "or set backed: false)"
)


def stored_csr_bytes(path: str | Path, layer: str | None = None) -> int | None:
    """Bytes the CSR count matrix would take in memory (``None`` when it is not CSR).

    A 10x Genomics ``.h5`` file counts as CSR (cells x genes; all its features).
    """
    try:
        with h5py.File(path, "r") as handle:
            if is_tenx_h5(path):
                group = tenx_group(handle, path) if layer is None else None
            else:
                group = handle.get("X" if layer is None else f"layers/{layer}")
                if not isinstance(group, h5py.Group) or group.attrs.get("encoding-type") != (
                    "csr_matrix"
                ):
                    group = None
            return None if group is None else stored_group_bytes(group)
    except (OSError, VAEInputError):
        return None


class BackedCounts:
    """Rows of a CSR count matrix in an ``.h5ad`` file; ``store[rows]`` is a ``CountBatch``.

    Values are checked block by block as they are read (finite, non-negative integers).

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    layer
        Layer holding the counts; ``X`` when ``None``.
    block_size
        Rows per block read from disk.
    buffer_blocks
        Blocks whose rows are shuffled together within an epoch.
    device
        Where minibatches are placed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        layer: str | None = None,
        block_size: int = 1024,
        buffer_blocks: int = 64,
        device: torch.device | str = "cpu",
    ) -> None:
        self.path, self.layer = Path(path), layer
        self.block_size, self.buffer_blocks = int(block_size), int(buffer_blocks)
        bound_heap_growth()  # freed blocks go back to the system (vae._heap)
        self._device = torch.device(device)
        try:
            self._handle = h5py.File(self.path, "r")
        except OSError as err:
            raise VAEInputError(self.path, f"cannot open as HDF5/.h5ad ({err})") from err
        self._group = stored_matrix(self._handle, layer, self.path, _BACKED_REMEDY)
        self.n_rows, self.n_cols = (int(v) for v in self._group.attrs["shape"])
        self.indptr = self._group["indptr"][:].astype(np.int64)
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_blocks = 2 * self.buffer_blocks + 2

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)``."""
        return self.n_rows, self.n_cols

    @property
    def device(self) -> torch.device:
        """Where minibatches are placed."""
        return self._device

    def __len__(self) -> int:
        return self.n_rows

    def to(self, device: torch.device | str) -> BackedCounts:
        """Place future minibatches on ``device`` (the data stay on disk)."""
        self._device = torch.device(device)
        return self

    def _read_block(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Values and column indices of a block's rows (cached, least recently used out)."""
        cached = self._cache.get(block)
        if cached is not None:
            self._cache.move_to_end(block)
            return cached
        lo, hi = block * self.block_size, min(self.n_rows, (block + 1) * self.block_size)
        start, stop = self.indptr[lo], self.indptr[hi]
        data = np.asarray(self._group["data"][start:stop], dtype=np.float32)
        where = "X" if self.layer is None else f"layer {self.layer!r}"
        if not np.isfinite(data).all():
            raise VAEInputError(self.path, f"{where} holds NaN or inf values (rows {lo}-{hi})")
        if (data < 0).any() or not np.array_equal(data, np.round(data)):
            raise VAEInputError(
                self.path,
                f"{where} holds negative or non-integer values (rows {lo}-{hi}); count "
                "likelihoods need raw counts: set layer to the raw-count layer",
            )
        entry = (data, np.asarray(self._group["indices"][start:stop], dtype=np.int64))
        self._cache[block] = entry
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return entry

    def rows(self, rows: np.ndarray) -> sp.csr_matrix:
        """Rows ``rows`` (in that order) as a scipy CSR matrix."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, stops = self.indptr[rows], self.indptr[rows + 1]
        data_parts, index_parts = [], []
        for row, start, stop in zip(rows.tolist(), starts.tolist(), stops.tolist(), strict=True):
            block = row // self.block_size
            data, indices = self._read_block(block)
            base = self.indptr[block * self.block_size]
            data_parts.append(data[start - base : stop - base])
            index_parts.append(indices[start - base : stop - base])
        indptr = np.concatenate([[0], np.cumsum(stops - starts)])
        if not data_parts:
            return sp.csr_matrix((0, self.n_cols), dtype=np.float32)
        return sp.csr_matrix(
            (np.concatenate(data_parts), np.concatenate(index_parts), indptr),
            shape=(rows.size, self.n_cols),
        )

    def __getitem__(self, rows: torch.Tensor | slice) -> CountBatch:
        """Read ``rows`` (index tensor or slice) as a :class:`CountBatch` on the device."""
        if isinstance(rows, slice):
            index = np.arange(*rows.indices(self.n_rows))
        else:
            index = rows.detach().cpu().numpy()
        matrix = self.rows(index)
        cell = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        return CountBatch(
            torch.from_numpy(cell).to(self._device),
            torch.from_numpy(matrix.indices.astype(np.int64)).to(self._device),
            torch.from_numpy(matrix.data.astype(np.float32)).to(self._device),
            matrix.shape[0],
            self.n_cols,
        )

    def epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Return a permutation of ``range(n)``: shuffled blocks, rows shuffled within buffers.

        ``n`` positions index the sorted training rows, so consecutive positions are
        neighbouring rows on disk.
        """
        device = generator.device
        n_blocks = math.ceil(n / self.block_size)
        blocks = torch.randperm(n_blocks, generator=generator, device=device)
        parts = []
        for first in range(0, n_blocks, self.buffer_blocks):
            group = blocks[first : first + self.buffer_blocks]
            positions = torch.cat(
                [
                    torch.arange(
                        int(b) * self.block_size,
                        min(n, (int(b) + 1) * self.block_size),
                        device=device,
                    )
                    for b in group
                ]
            )
            perm = torch.randperm(positions.numel(), generator=generator, device=device)
            parts.append(positions[perm])
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long, device=device)

    def row_sums(self, chunk_rows: int = 65_536) -> np.ndarray:
        """Total counts per row, read in chunks of rows."""
        out = np.zeros(self.n_rows, dtype=np.float64)
        for lo in range(0, self.n_rows, chunk_rows):
            hi = min(self.n_rows, lo + chunk_rows)
            start, stop = self.indptr[lo], self.indptr[hi]
            data = np.asarray(self._group["data"][start:stop], dtype=np.float64)
            bounds = self.indptr[lo:hi] - start
            lengths = np.diff(self.indptr[lo : hi + 1])
            if data.size:
                sums = np.add.reduceat(data, np.minimum(bounds, data.size - 1))
                out[lo:hi] = np.where(lengths > 0, sums, 0.0)
        return out

    def close(self) -> None:
        """Close the file."""
        self._handle.close()


def use_backed(path: str | Path, backed: bool | str) -> bool:
    """Decide whether counts are read from disk block by block (``backed``) or loaded.

    ``"auto"``: backed when ``X`` is CSR and would take more than
    :data:`BACKED_AUTO_BYTES` in memory. ``True`` needs a CSR ``X``.
    """
    if backed == "auto":
        size = stored_csr_bytes(path)
        return size is not None and size > BACKED_AUTO_BYTES
    if not isinstance(backed, bool):
        raise VAEInputError("backed", f"must be auto, true or false, not {backed!r}")
    return backed


class BackedRowSubset:
    """Some rows of a :class:`BackedCounts`, in a given order: ``store[i]`` is ``rows[i]``.

    What a view of a backed AnnData (``adata[index]``) reads, e.g. the validation cells of
    the held-out ELBO: minibatches of consecutive positions read only the blocks that hold
    their rows, so sorted ``rows`` stream through the file once.

    Parameters
    ----------
    counts
        The whole matrix on disk (a small block cache suffices for sorted rows).
    rows
        Row indices of the file.
    """

    def __init__(self, counts: BackedCounts, rows: np.ndarray) -> None:
        self.counts = counts
        self.index = torch.as_tensor(np.asarray(rows, dtype=np.int64))

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)`` of the subset."""
        return self.index.numel(), self.counts.n_cols

    @property
    def device(self) -> torch.device:
        """Where minibatches are placed."""
        return self.counts.device

    def __len__(self) -> int:
        return self.index.numel()

    def to(self, device: torch.device | str) -> BackedRowSubset:
        """Place future minibatches on ``device`` (the data stay on disk)."""
        self.counts.to(device)
        return self

    def __getitem__(self, rows: torch.Tensor | slice) -> CountBatch:
        """Read positions ``rows`` (index tensor or slice) of the subset as a ``CountBatch``."""
        picked = self.index[rows] if isinstance(rows, slice) else self.index[rows.cpu()]
        return self.counts[picked]

    def close(self) -> None:
        """Close the file."""
        self.counts.close()
