"""What ``vae map`` reads: the query's cells (in memory or block by block) and the reference's.

A query ``.h5ad`` whose counts are a CSR matrix larger than :data:`BACKED_QUERY_BYTES` in
memory is never loaded: its rows are read from disk in blocks and put in the model's
gene order per minibatch (:class:`~vae.model._gene_map.GeneMappedCounts`). Smaller
queries, and CSV or 10x inputs, are read whole.
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np

from vae._constants import KEYS
from vae._io import read_h5ad
from vae.data._backed import BackedCounts, stored_csr_bytes, use_backed
from vae.data._csr import CSRCounts
from vae.errors import VAEInputError
from vae.model import CountModel
from vae.model._count_query import match_query_genes
from vae.model._gene_map import GeneMappedCounts, column_map
from vae.model._query_cells import QueryCells
from vae.steps.embed import _open_cells

#: ``backed="auto"``: a query CSR above this many bytes in memory is read block by block.
#: In memory the mapping holds about four copies of it (file, gene order, training store).
BACKED_QUERY_BYTES = 512 * 1024**2

_SEQUENCE_SUFFIXES = {".fasta", ".fa", ".a2m", ".a3m", ".sto", ".stockholm"}


def _query_backed(path: Path, layer: str | None, backed: bool | str) -> bool:
    """Whether to read the query block by block (``backed``: ``auto``, true or false)."""
    is_h5ad = path.suffix.lower() == ".h5ad"
    if backed == "auto":
        size = stored_csr_bytes(path, layer) if is_h5ad else None
        return size is not None and size > BACKED_QUERY_BYTES
    if not isinstance(backed, bool):
        raise VAEInputError("backed", f"must be auto, true or false, not {backed!r}")
    if backed and not is_h5ad:
        raise VAEInputError(path, "reading block by block (backed) needs an .h5ad file")
    return backed


def read_query(
    model: CountModel,
    path: Path,
    *,
    batch_key: str | None,
    layer: str | None,
    var_key: str | None,
    min_overlap: float,
    backed: bool | str = "auto",
) -> QueryCells:
    """Open the query in the model's gene order, its batch column under the model's name.

    Parameters
    ----------
    model
        The reference model.
    path
        ``.h5ad``, a 10x folder or a CSV/TSV of raw counts.
    batch_key
        The query's batch column (default: the model's batch column name).
    layer, var_key, min_overlap
        Raw-count layer, ``var`` column to match genes by, smallest gene overlap.
    backed
        Read the counts from disk block by block: ``"auto"`` (above
        :data:`BACKED_QUERY_BYTES`), ``True`` (needs a CSR ``.h5ad``) or ``False``.
    """
    if not path.exists():
        raise VAEInputError(path, "file does not exist")
    if path.suffix.lower() in _SEQUENCE_SUFFIXES:
        raise VAEInputError(path, "is a sequence file; `vae map` maps cells (.h5ad, 10x, CSV)")
    read_backed = _query_backed(path, layer, backed)
    source = _open_cells(path)
    obs = source.obs.copy()
    obs.index = obs.index.astype(str)
    model_key = model.info.get("batch_key")
    if model_key and batch_key and batch_key != model_key:
        if batch_key not in obs:
            raise VAEInputError(path, f"batch column {batch_key!r} is not an obs column")
        obs[model_key] = obs[batch_key]
    elif model_key and model_key not in obs:
        raise VAEInputError(
            path,
            f"batch column {model_key!r} of the model is not an obs column; "
            "name the query's batch column with --batch-key",
        )
    match = match_query_genes(
        source,
        genes=model.var_names,
        var_ids=model.info.get("var_ids", {}),
        var_key=var_key,
        min_overlap=min_overlap,
        source=path,
    )
    if read_backed:
        counts = GeneMappedCounts(
            BackedCounts(path, layer=layer),
            column_map(match.present, source.n_vars),
            len(model.var_names),
        )
    else:
        cells = source.to_memory() if source.isbacked else source
        counts = CSRCounts.from_scipy(match.apply(cells, layer=layer, source=path).X)
    return QueryCells(counts, obs, dict(match.report), match.present >= 0)


def reference_cells(
    model: CountModel, path: Path, label_key: str | None, min_overlap: float
) -> ad.AnnData:
    """Return the reference's cells: ``obs`` (labels, batch), latents in ``obsm["X_vae"]``.

    Counts above :data:`~vae.data._backed.BACKED_AUTO_BYTES` in the model's genes are
    read block by block.
    """
    adata = read_h5ad(path, backed=use_backed(path, "auto"))
    if label_key and label_key not in adata.obs:
        raise VAEInputError(path, f"label key {label_key!r} is not an obs column of the reference")
    if list(adata.var_names) != model.var_names:
        memory = adata.to_memory() if adata.isbacked else adata
        adata = model.prepare_query(memory, min_overlap=min_overlap, source=path)
    keep = [k for k in (label_key, model.info.get("batch_key")) if k and k in adata.obs]
    obs = adata.obs[keep].astype(str)
    obs.index = obs.index.astype(str)
    cells = ad.AnnData(obs=obs)
    cells.obsm[KEYS.X_VAE] = np.asarray(model.get_latent(adata))
    return cells
