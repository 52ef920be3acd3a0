"""10x Genomics matrix folders (``matrix.mtx[.gz]``, barcodes, features), streamed to CSR.

A folder holds ``matrix.mtx[.gz]`` (MatrixMarket coordinates, genes x cells, 1-based),
``barcodes.tsv[.gz]`` and ``features.tsv[.gz]`` (v3: id, name, type) or ``genes.tsv``
(v2: id, name). Cell Ranger writes the entries ordered by cell (column), so
:func:`staged_10x_folder` reads them in chunks (``pandas.read_csv``) and writes the
complete cells of each chunk as CSR rows of a temporary ``.h5ad`` file
(:class:`~vae.data._h5ad_blocks.H5adBlockWriter`): memory stays bounded by the chunk,
not the matrix. The annotations follow :func:`~vae.data._anndata.read_10x_folder`: barcodes
are ``obs_names``, gene names ``var_names`` (made unique), ids ``var["gene_ids"]``, and
only "Gene Expression" features are kept.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from vae.data._csr_source import csr_bytes
from vae.data._h5ad_blocks import H5adBlockWriter
from vae.data._tenx_h5 import gene_expression_rows
from vae.errors import VAEInputError

logger = logging.getLogger(__name__)

#: Entries of ``matrix.mtx`` read per chunk: about 100 MB of parsed values.
MTX_CHUNK_ENTRIES = 1 << 22

_IN_MEMORY = "set preprocess.expression.chunked: false to load it in memory"


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def tenx_folder_files(path: str | Path) -> tuple[Path, Path, Path]:
    """Return the ``matrix.mtx``, barcodes and features (or genes) files of a 10x folder."""
    path = Path(path)
    matrix, barcodes = _find(path, "matrix.mtx"), _find(path, "barcodes.tsv")
    features = _find(path, "features.tsv") or _find(path, "genes.tsv")
    if matrix is None or barcodes is None or features is None:
        raise VAEInputError(
            path,
            "not a 10x matrix folder: needs matrix.mtx[.gz], barcodes.tsv[.gz] and "
            "features.tsv[.gz] (or genes.tsv)",
        )
    return matrix, barcodes, features


def tenx_folder_annotations(barcodes: Path, features: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``obs`` (barcodes) and ``var`` of all features (unique names, ``gene_ids``, types)."""
    genes = pd.read_csv(features, sep="\t", header=None, dtype=str)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str)
    var = pd.DataFrame({"gene_ids": genes[0].to_numpy()})
    var.index = ad.utils.make_index_unique(pd.Index(genes[min(1, genes.shape[1] - 1)].to_numpy()))
    if genes.shape[1] > 2:
        var["feature_types"] = genes[2].to_numpy()
    return pd.DataFrame(index=cells[0].to_numpy()), var


def check_shape(
    folder: Path, n_genes: int, n_cells: int, obs: pd.DataFrame, var: pd.DataFrame
) -> None:
    """Raise unless ``matrix.mtx`` is ``len(var)`` genes x ``len(obs)`` cells."""
    if (n_cells, n_genes) != (len(obs), len(var)):
        raise VAEInputError(
            folder,
            f"matrix.mtx is {n_genes} genes x {n_cells} cells but there are "
            f"{len(var)} features and {len(obs)} barcodes",
        )


class MtxHeader(NamedTuple):
    """The banner and size line of a MatrixMarket file."""

    n_rows: int
    n_cols: int
    nnz: int
    field: str
    lines: int  # lines before the first entry


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)


def mtx_header(path: Path) -> MtxHeader:
    """Read the banner (``%%MatrixMarket matrix coordinate <field> general``) and sizes."""
    try:
        with _open_text(path) as handle:
            banner = handle.readline().split()
            lines = 1
            for line in handle:
                lines += 1
                if not line.startswith("%") and line.strip():
                    break
            else:
                line = ""
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise VAEInputError(path, f"cannot read the MatrixMarket header ({err})") from err
    if len(banner) != 5 or banner[0].lower() != "%%matrixmarket":
        raise VAEInputError(path, "not a MatrixMarket file (no %%MatrixMarket banner)")
    kind = [word.lower() for word in banner[1:]]
    if kind[:2] != ["matrix", "coordinate"] or kind[2:] not in (
        ["integer", "general"],
        ["real", "general"],
    ):
        raise VAEInputError(
            path,
            f"is a MatrixMarket {' '.join(kind[1:])} matrix; streaming reads 'coordinate "
            f"integer|real general' only: {_IN_MEMORY}",
        )
    try:
        n_rows, n_cols, nnz = (int(word) for word in line.split())
    except ValueError as err:
        raise VAEInputError(path, "MatrixMarket size line 'rows cols entries' is missing") from err
    return MtxHeader(n_rows, n_cols, nnz, kind[2], lines)


def mtx_csr_bytes(folder: str | Path) -> int | None:
    """Bytes the folder's matrix would take in memory as CSR (``None``: no readable header)."""
    try:
        header = mtx_header(tenx_folder_files(folder)[0])
    except (OSError, EOFError, VAEInputError):
        return None
    return csr_bytes(header.nnz, header.n_cols)


def _cell_rows(
    cells: np.ndarray, genes: np.ndarray, values: np.ndarray, lo: int, hi: int, n_genes: int
) -> sp.csr_matrix:
    """Cells ``lo:hi`` (0-based entries) as float32 CSR, duplicates summed, indices sorted."""
    coo = sp.coo_matrix((values, (cells - lo, genes)), shape=(hi - lo, n_genes))
    return coo.tocsr().astype(np.float32)  # as scipy's mmread, then csr_matrix(dtype=float32)


def _entries(
    matrix: Path, header: MtxHeader, value_type: type, chunk: int
) -> Iterator[pd.DataFrame]:
    """Yield the entries (``gene``, ``cell``, ``value``; 1-based) ``chunk`` at a time."""
    if header.nnz == 0:
        return
    try:
        yield from pd.read_csv(
            matrix,
            sep=r"\s+",
            header=None,
            names=["gene", "cell", "value"],
            usecols=[0, 1, 2],
            skiprows=header.lines,
            dtype={"gene": np.int64, "cell": np.int64, "value": value_type},
            chunksize=chunk,
            engine="c",
        )
    except (ValueError, EOFError, OSError) as err:  # parser, gzip and decoding errors
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise VAEInputError(matrix, f"malformed MatrixMarket entries ({why})") from err


def _stream(
    matrix: Path, header: MtxHeader, gene_map: np.ndarray, writer: H5adBlockWriter, chunk: int
) -> None:
    """Write the kept genes of every cell of ``matrix`` as CSR rows, chunk by chunk."""
    n_kept = int((gene_map >= 0).sum())
    value_type = np.int64 if header.field == "integer" else np.float64
    done, seen = 0, 0  # cells written, entries read
    carry = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, value_type))
    for part in _entries(matrix, header, value_type, chunk):
        genes, cells = part["gene"].to_numpy() - 1, part["cell"].to_numpy() - 1
        values = part["value"].to_numpy()
        seen += len(part)
        inside = (genes >= 0) & (genes < header.n_rows) & (cells >= 0) & (cells < header.n_cols)
        if not inside.all():
            raise VAEInputError(
                matrix, f"an entry lies outside its {header.n_rows} x {header.n_cols} header size"
            )
        if cells[0] < done or (np.diff(cells) < 0).any():
            raise VAEInputError(
                matrix,
                "entries are not ordered by cell (column), so it cannot be streamed in "
                f"chunks: {_IN_MEMORY}",
            )
        genes = gene_map[genes]
        keep = genes >= 0
        cells = np.concatenate([carry[0], cells[keep]])
        genes = np.concatenate([carry[1], genes[keep]])
        values = np.concatenate([carry[2], values[keep]])
        last = int(part["cell"].iloc[-1]) - 1  # may continue in the next chunk
        split = int(np.searchsorted(cells, last))
        if last > done:
            rows = _cell_rows(cells[:split], genes[:split], values[:split], done, last, n_kept)
            writer.append(rows)
            done = last
        carry = (cells[split:], genes[split:], values[split:])
    if seen != header.nnz:
        raise VAEInputError(
            matrix, f"holds {seen} entries but its header says {header.nnz} (truncated?)"
        )
    if header.n_cols > done:
        writer.append(_cell_rows(*carry, done, header.n_cols, n_kept))


@contextlib.contextmanager
def staged_10x_folder(
    folder: str | Path, directory: str | Path, chunk_entries: int = MTX_CHUNK_ENTRIES
) -> Iterator[Path]:
    """Yield a temporary CSR ``.h5ad`` in ``directory`` holding a 10x folder's counts.

    The file holds the gene expression features of every cell (``obs`` and ``var`` as
    :func:`~vae.data._anndata.read_10x_folder` gives them) and is removed on exit, also on
    an error. A :class:`~vae.errors.VAEInputError` of the body that names the temporary
    file is raised again naming ``folder``.

    Parameters
    ----------
    folder
        The 10x matrix folder.
    directory
        Where the temporary file is written (e.g. the output's folder).
    chunk_entries
        Entries of ``matrix.mtx`` read at a time.
    """
    folder = Path(folder)
    matrix, barcodes, features = tenx_folder_files(folder)
    header = mtx_header(matrix)
    try:
        obs, var = tenx_folder_annotations(barcodes, features)
    except (ValueError, OSError, EOFError) as err:  # pandas, gzip and decoding errors
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise VAEInputError(folder, f"cannot read the barcodes or features ({why})") from err
    check_shape(folder, header.n_rows, header.n_cols, obs, var)
    kept = gene_expression_rows(var)
    if kept is None:
        kept = np.ones(len(var), dtype=bool)
    gene_map = np.full(len(var), -1, dtype=np.int64)
    gene_map[kept] = np.arange(int(kept.sum()))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{folder.name}.", suffix=".10x.h5ad", dir=directory)
    os.close(fd)
    staged = Path(name)
    try:
        logger.info("streaming %s into %s", matrix, staged)
        with H5adBlockWriter(staged, int(kept.sum())) as writer:
            _stream(matrix, header, gene_map, writer, max(1, int(chunk_entries)))
            writer.finish(ad.AnnData(obs=obs, var=var[kept]))
        try:
            yield staged
        except VAEInputError as err:
            if err.source != str(staged):
                raise
            raise VAEInputError(folder, err.problem) from err
    finally:
        staged.unlink(missing_ok=True)
