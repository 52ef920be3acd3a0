"""scanpy's ``seurat_v3`` highly variable genes from sums over row blocks.

``sc.pp.highly_variable_genes(flavor="seurat_v3", batch_key=...)`` (scanpy 1.11,
``_highly_variable_genes_seurat_v3``) needs, per batch, each gene's mean and variance
(pass 1), a loess fit of log10 variance on log10 mean (span 0.3, degree 2, skmisc), and the
sum and sum of squares of the counts clipped at ``mean + sqrt(n_cells) * fitted sd``
(pass 2). Both passes here accumulate those sums over consecutive row blocks; the loess
fit, the standardised variance and the ranking across batches are scanpy's own lines on
the same per-gene arrays.

Floating-point order, where it could differ from scanpy's:

* Pass 1 (:class:`BatchMoments`): scanpy (``sparse_mean_var_minor_axis``) adds each
  float32 count and its float32 square into float64 sums, split over numba threads. Raw
  counts are integers, and so are their float32 squares, so every partial sum is an
  integer and exact while a gene's sum of squares stays below 2**53 (9e15; e.g. a
  million cells with 1e4 reads of a gene each reach 1e14): then any order gives the
  same bits. Beyond that scanpy's own result depends on its thread count; the sums here
  follow the rows in file order, as scanpy with one numba thread does.
* Pass 2 (:class:`ClippedSums`): clipped values are not integers, so the order of the
  additions matters. scanpy's kernel (``_sum_and_sum_squares_clipped``) runs
  sequentially over the stored values in row order; the kernel here is the same loop,
  with its float64 accumulators kept from one block to the next, so each gene sees the
  same additions in the same order.
* Everything after the sums (means, variances, loess, ``norm_gene_var``, ranks, median,
  ``np.mean`` over batches, the final sort) runs scanpy's expressions on arrays of the
  same values, shapes and batch order (``np.unique`` of the kept cells' batch labels).

``tests/test_chunked_preprocess.py`` checks the genes, ranks and every ``var`` column
bit for bit against scanpy on pbmc68k, CellBench and the pancreas set (whose
Smart-seq2 read counts square past float32's exact integers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    import anndata as ad

#: scanpy's default loess span for ``seurat_v3``.
SPAN = 0.3


@numba.njit(cache=True)
def _add_moments(indptr, indices, data, codes, sums, squares):  # pragma: no cover - numba
    """Add each row's float32 counts and their float32 squares to its batch's sums."""
    for row in range(indptr.size - 1):
        batch = codes[row]
        if batch < 0:
            continue
        for j in range(indptr[row], indptr[row + 1]):
            gene = indices[j]
            value = data[j]
            sums[batch, gene] += value
            squares[batch, gene] += value * value


# the loop of scanpy's _sum_and_sum_squares_clipped (sequential: parallel=False there too)
@numba.njit(cache=True)
def _add_clipped(
    indptr, indices, data, codes, gene_map, clip_val, sums, squares
):  # pragma: no cover - numba
    """Add each row's counts, clipped per batch and gene, and their squares."""
    for row in range(indptr.size - 1):
        batch = codes[row]
        if batch < 0:
            continue
        for j in range(indptr[row], indptr[row + 1]):
            gene = gene_map[indices[j]]
            if gene < 0:
                continue
            element = min(np.float64(data[j]), clip_val[batch, gene])
            squares[batch, gene] += element**2
            sums[batch, gene] += element


class BatchMoments:
    """Per-batch sums of counts and squared counts over row blocks (pass 1).

    Parameters
    ----------
    n_batches, n_genes
        Accumulator shape.
    """

    def __init__(self, n_batches: int, n_genes: int) -> None:
        self.sums = np.zeros((n_batches, n_genes))
        self.squares = np.zeros((n_batches, n_genes))
        self.n_obs = np.zeros(n_batches, dtype=np.int64)

    def add(self, block: sp.csr_matrix, codes: np.ndarray) -> None:
        """Add the rows of ``block``; ``codes`` is each row's batch, -1 to skip it."""
        codes = np.asarray(codes, dtype=np.int64)
        _add_moments(
            block.indptr.astype(np.int64),
            block.indices,
            block.data,
            codes,
            self.sums,
            self.squares,
        )
        self.n_obs += np.bincount(codes[codes >= 0], minlength=self.n_obs.size)

    def mean_var(self, batch: int, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return scanpy's ``_get_mean_var`` of one batch's kept cells, restricted to ``genes``."""
        n = int(self.n_obs[batch])
        total, squares = self.sums[batch, genes], self.squares[batch, genes]
        mean = total / n
        var = squares / n - (total / n) ** 2
        if n != 1:  # R's unbiased variance, as scanpy
            var *= n / (n - 1)
        return mean, var


class ClippedSums:
    """Per-batch sums of clipped counts and of their squares over row blocks (pass 2).

    Parameters
    ----------
    clip_val
        ``(n_batches, n_kept_genes)`` clipping values.
    gene_map
        For every column of the file, its kept gene's index, or -1.
    """

    def __init__(self, clip_val: np.ndarray, gene_map: np.ndarray) -> None:
        self.clip_val = np.ascontiguousarray(clip_val, dtype=np.float64)
        self.gene_map = np.asarray(gene_map, dtype=np.int64)
        self.sums = np.zeros_like(self.clip_val)
        self.squares = np.zeros_like(self.clip_val)

    def add(self, block: sp.csr_matrix, codes: np.ndarray) -> None:
        """Add the rows of ``block``; ``codes`` is each row's batch, -1 to skip it."""
        _add_clipped(
            block.indptr.astype(np.int64),
            block.indices,
            block.data,
            np.asarray(codes, dtype=np.int64),
            self.gene_map,
            self.clip_val,
            self.sums,
            self.squares,
        )


def clip_values(mean: np.ndarray, var: np.ndarray, n_obs: int, span: float = SPAN) -> tuple:
    """Fit scanpy's loess of one batch: ``(reg_std, clip_val)``."""
    from skmisc.loess import loess

    not_const = var > 0
    estimat_var = np.zeros(mean.size, dtype=np.float64)
    y = np.log10(var[not_const])
    x = np.log10(mean[not_const])
    model = loess(x, y, span=span, degree=2)
    model.fit()
    estimat_var[not_const] = model.outputs.fitted_values
    reg_std = np.sqrt(10**estimat_var)
    vmax = np.sqrt(n_obs)
    clip_val = reg_std * vmax + mean
    return reg_std, clip_val


def normalized_variance(
    n_obs: int,
    mean: np.ndarray,
    reg_std: np.ndarray,
    squared_batch_counts_sum: np.ndarray,
    batch_counts_sum: np.ndarray,
) -> np.ndarray:
    """Return scanpy's ``norm_gene_var`` of one batch, from the clipped sums."""
    return (1 / ((n_obs - 1) * np.square(reg_std))) * (
        (n_obs * np.square(mean)) + squared_batch_counts_sum - 2 * batch_counts_sum * mean
    )


def rank_genes(
    norm_gene_vars: np.ndarray,
    n_top_genes: int,
    var_names: pd.Index,
    means: np.ndarray,
    variances: np.ndarray,
) -> pd.DataFrame:
    """Build scanpy's ``seurat_v3`` table from the ``(n_batches, n_genes)`` standardised variances.

    Ranks within each batch by ``np.argsort`` twice (ties broken as numpy's default sort
    breaks them, as in scanpy), the median rank over the batches where a gene is in the
    top ``n_top_genes``, and the top genes by median rank, then by number of batches.
    """
    df = pd.DataFrame(index=var_names)
    df["means"], df["variances"] = means, variances
    ranked_norm_gene_vars = np.argsort(np.argsort(-norm_gene_vars, axis=1), axis=1)
    ranked_norm_gene_vars = ranked_norm_gene_vars.astype(np.float32)
    num_batches_high_var = np.sum((ranked_norm_gene_vars < n_top_genes).astype(int), axis=0)
    ranked_norm_gene_vars[ranked_norm_gene_vars >= n_top_genes] = np.nan
    ma_ranked = np.ma.masked_invalid(ranked_norm_gene_vars)
    median_ranked = np.ma.median(ma_ranked, axis=0).filled(np.nan)
    df["gene_name"] = df.index
    df["highly_variable_nbatches"] = num_batches_high_var
    df["highly_variable_rank"] = median_ranked
    df["variances_norm"] = np.mean(norm_gene_vars, axis=0)
    sort_cols = ["highly_variable_rank", "highly_variable_nbatches"]
    sorted_index = (
        df[sort_cols].sort_values(sort_cols, ascending=[True, False], na_position="last").index
    )
    df["highly_variable"] = False
    df.loc[sorted_index[: int(n_top_genes)], "highly_variable"] = True
    return df


def annotate_hvg(adata: ad.AnnData, table: pd.DataFrame, batch_key: str | None) -> ad.AnnData:
    """Add the ``var`` columns and ``uns["hvg"]`` as scanpy's ``inplace=True``; keep the HVGs.

    Returns the AnnData restricted to the highly variable genes (scanpy's ``subset=True``).
    """
    adata.uns["hvg"] = {"flavor": "seurat_v3"}
    adata.var["highly_variable"] = table["highly_variable"].to_numpy()
    adata.var["highly_variable_rank"] = table["highly_variable_rank"].to_numpy()
    adata.var["means"] = table["means"].to_numpy()
    adata.var["variances"] = table["variances"].to_numpy()
    adata.var["variances_norm"] = table["variances_norm"].to_numpy().astype("float64", copy=False)
    if batch_key is not None:
        adata.var["highly_variable_nbatches"] = table["highly_variable_nbatches"].to_numpy()
    return adata[:, table["highly_variable"].to_numpy()].copy()
