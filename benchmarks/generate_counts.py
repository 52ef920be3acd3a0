"""Write a large synthetic single-cell count matrix (.h5ad, CSR) chunk by chunk.

A pool of ``--pool`` cells is drawn from a negative binomial (gamma-Poisson) model with
``--n-types`` cell types, each with its own gene expression profile, per-gene inverse
dispersions and log-normal library sizes. Every output cell is a pool cell whose counts are
binomially thinned with its own keep fraction (uniform in 0.4-1), so depths and counts vary
from cell to cell; drawing all 2e9 gamma-Poisson entries directly would take an hour on two
cores. Only one chunk of cells is held in memory: ``X`` is appended to resizable HDF5
datasets with ``anndata.io.sparse_dataset(...).append``.
``obs`` has ``cell_type`` and ``batch`` (``--n-batches``, cell ``i`` in batch ``i mod
n``), named in ``uns["preprocess"]`` as the workflow's preprocessing would; ``var`` names
are ``gene_0000``... With ``--batch-effect s``, each batch keeps a gene's counts with a
factor ``exp(-|N(0, s)|)`` (drawn per batch and gene) on top of the cell's keep fraction.
Pool cells are drawn in chunks of at most 4e7 entries, so 33,000 genes fit in memory.

Usage::

    .venv/bin/python benchmarks/generate_counts.py benchmarks/out/counts_1m.h5ad \
        --n-cells 1000000 --n-genes 2000
    # atlas-like raw counts for preprocessing: 33,000 genes, four batches
    .venv/bin/python benchmarks/generate_counts.py benchmarks/out/raw_100k.h5ad \
        --n-cells 100000 --n-genes 33000 --n-batches 4 --batch-effect 0.5 \
        --mean-log-library 7.6
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

#: Dense entries drawn at a time for the pool (mean, gamma and Poisson arrays of this size).
POOL_ENTRIES = 40_000_000


def _profiles(n_types: int, n_genes: int, rng: np.random.Generator) -> np.ndarray:
    """Expression fractions per cell type ``(n_types, n_genes)``: shared base, type shifts."""
    base = rng.normal(0.0, 1.3, n_genes)
    shifts = rng.normal(0.0, 1.0, (n_types, n_genes)) * (rng.random((n_types, n_genes)) < 0.1)
    logits = base + shifts
    fractions = np.exp(logits)
    return fractions / fractions.sum(1, keepdims=True)


def _chunk(
    n: int,
    profiles: np.ndarray,
    theta: np.ndarray,
    mean_log_library: float,
    rng: np.random.Generator,
) -> tuple[sp.csr_matrix, np.ndarray]:
    types = rng.integers(0, profiles.shape[0], n)
    library = np.exp(rng.normal(mean_log_library, 0.4, n))
    mu = library[:, None] * profiles[types]
    rate = rng.gamma(theta, mu / theta)
    counts = rng.poisson(rate).astype(np.float32)
    return sp.csr_matrix(counts), types


def main() -> None:
    """Generate the file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--n-cells", type=int, default=1_000_000)
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--n-types", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=20_000, help="cells per chunk")
    parser.add_argument("--pool", type=int, default=50_000, help="NB-sampled pool cells")
    parser.add_argument("--mean-log-library", type=float, default=np.log(250.0))
    parser.add_argument("--n-batches", type=int, default=2, help="batch i mod n per cell")
    parser.add_argument(
        "--batch-effect", type=float, default=0.0, help="SD of log keep factors per batch+gene"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    profiles = _profiles(args.n_types, args.n_genes, rng)
    theta = np.exp(rng.normal(0.5, 0.7, args.n_genes))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    pool, pool_types = [], []
    pool_chunk = min(args.chunk, max(1, POOL_ENTRIES // args.n_genes))
    for start in range(0, args.pool, pool_chunk):
        counts, chunk_types = _chunk(
            min(pool_chunk, args.pool - start), profiles, theta, args.mean_log_library, rng
        )
        pool.append(counts)
        pool_types.append(chunk_types.astype(np.int8))
    pool, pool_types = sp.vstack(pool, format="csr"), np.concatenate(pool_types)
    batch_keep = None
    if args.batch_effect > 0:
        batch_keep = np.exp(
            -np.abs(rng.normal(0.0, args.batch_effect, (args.n_batches, args.n_genes)))
        )
    types = []
    nnz = 0
    with h5py.File(tmp, "w") as handle:
        matrix = None
        for start in range(0, args.n_cells, args.chunk):
            picked = rng.integers(0, args.pool, min(args.chunk, args.n_cells - start))
            counts = pool[picked]
            keep = rng.uniform(0.4, 1.0, picked.size)
            rows = np.repeat(np.arange(picked.size), np.diff(counts.indptr))
            chance = keep[rows]
            if batch_keep is not None:
                batch = (start + rows) % args.n_batches
                chance = chance * batch_keep[batch, counts.indices]
            counts.data = rng.binomial(counts.data.astype(np.int64), chance).astype(np.float32)
            counts.eliminate_zeros()
            types.append(pool_types[picked])
            nnz += counts.nnz
            if matrix is None:
                # resizable (maxshape None); 64-bit row pointers: 1e6 cells x 2,000+ genes
                # per cell pass 2**31 nonzeros
                kwargs = {"indptr_dtype": np.int64}
                ad.io.write_elem(handle, "X", counts, dataset_kwargs=kwargs)
                matrix = ad.io.sparse_dataset(handle["X"])
            else:
                matrix.append(counts)
        codes = np.concatenate(types)
        index = pd.Index([f"cell_{i:07d}" for i in range(args.n_cells)])
        obs = pd.DataFrame(
            {
                "cell_type": pd.Categorical.from_codes(
                    codes, [f"type_{t}" for t in range(args.n_types)]
                ),
                "batch": pd.Categorical.from_codes(
                    (np.arange(args.n_cells) % args.n_batches).astype(np.int16),
                    [f"b{b}" for b in range(args.n_batches)],
                ),
            },
            index=index,
        )
        width = max(4, len(str(args.n_genes - 1)))
        var = pd.DataFrame(index=[f"gene_{g:0{width}d}" for g in range(args.n_genes)])
        ad.io.write_elem(handle, "obs", obs)
        ad.io.write_elem(handle, "var", var)
        for key in ("obsm", "varm", "obsp", "varp", "layers"):
            ad.io.write_elem(handle, key, {})
        # stands for a preprocessed dataset: the workflow's metrics read these columns
        ad.io.write_elem(
            handle, "uns", {"preprocess": {"label_key": "cell_type", "batch_key": "batch"}}
        )
        handle.attrs["encoding-type"] = "anndata"
        handle.attrs["encoding-version"] = "0.1.0"
    tmp.rename(args.output)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"wrote {args.output}: {args.n_cells} cells x {args.n_genes} genes, nnz {nnz} "
        f"({nnz / (args.n_cells * args.n_genes):.1%}), {args.output.stat().st_size / 1e9:.2f} GB, "
        f"{time.perf_counter() - started:.0f} s, peak RSS {peak:.0f} MB"
    )


if __name__ == "__main__":
    main()
