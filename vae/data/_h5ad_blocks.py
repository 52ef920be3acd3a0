"""Write an ``.h5ad`` file whose CSR ``X`` arrives in row blocks.

``X`` is appended block by block to resizable gzip datasets (anndata's
``sparse_dataset(...).append``, 64-bit row pointers), so only one block is in memory; the
annotations (``obs``, ``var``, ``uns``) follow once the blocks are written, with the same
gzip compression as :func:`~vae._io.write_h5ad_atomic`. The file reads back with
``anndata.read_h5ad`` like one written whole.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import scipy.sparse as sp

_GZIP = {"compression": "gzip"}


class H5adBlockWriter:
    """An ``.h5ad`` file written as CSR row blocks of ``X``, then its annotations.

    Parameters
    ----------
    path
        File to create (use a temporary path, e.g. :func:`~vae._io.atomic_path`).
    n_cols
        Columns of ``X``.
    """

    def __init__(self, path: str | Path, n_cols: int) -> None:
        self._handle = h5py.File(path, "w")
        self._n_cols = int(n_cols)
        self._matrix = None

    def __enter__(self) -> H5adBlockWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def append(self, rows: sp.csr_matrix) -> None:
        """Append ``rows`` (CSR, ``n_cols`` columns) below the rows written so far."""
        if self._matrix is None:
            kwargs = _GZIP | {"indptr_dtype": np.int64}
            ad.io.write_elem(self._handle, "X", sp.csr_matrix(rows), dataset_kwargs=kwargs)
            self._matrix = ad.io.sparse_dataset(self._handle["X"])
        else:
            self._matrix.append(sp.csr_matrix(rows))

    def finish(self, annotations: ad.AnnData) -> None:
        """Write ``obs``, ``var`` and ``uns`` of ``annotations`` (an AnnData without ``X``).

        String columns with repeated values become categorical, as ``write_h5ad`` does.
        """
        annotations.strings_to_categoricals()
        if self._matrix is None:
            self.append(sp.csr_matrix((0, self._n_cols), dtype=np.float32))
        if tuple(self._matrix.shape) != annotations.shape:
            raise ValueError(f"wrote X {self._matrix.shape}, annotations {annotations.shape}")
        handle = self._handle
        ad.io.write_elem(handle, "obs", annotations.obs, dataset_kwargs=_GZIP)
        ad.io.write_elem(handle, "var", annotations.var, dataset_kwargs=_GZIP)
        ad.io.write_elem(handle, "uns", dict(annotations.uns), dataset_kwargs=_GZIP)
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            ad.io.write_elem(handle, key, {})
        handle.attrs["encoding-type"] = "anndata"
        handle.attrs["encoding-version"] = "0.1.0"
