"""Out-of-core expression preprocessing against scanpy in memory, on a large raw ``.h5ad``.

Generates (once, with ``generate_counts.py``) a raw count matrix of ``--cells`` x
``--genes`` with a ``--batches``-batch ``obs["batch"]``, then runs the workflow's
``preprocess_expression`` (QC ``min_genes`` / ``min_cells``, ``seurat_v3`` HVGs with the
batch key) twice, each in a fresh spawned process so that each has its own peak memory:
``chunked=True`` (row blocks from disk) and ``chunked=False`` (scanpy in memory; skip it
with ``--skip-memory`` when the matrix does not fit). Records wall seconds and peak
resident memory (``ru_maxrss``; also the resident memory after the imports, before the
step) per route, and whether the two outputs hold the same cells, genes,
``highly_variable_rank`` and ``X``, in ``--out`` (JSON).

Usage::

    .venv/bin/python benchmarks/expression_preprocess_scale.py --cells 100000 --genes 33000
    .venv/bin/python benchmarks/expression_preprocess_scale.py --cells 1000000 --genes 33000 \\
        --skip-memory
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _rss_mb() -> float:
    """Current resident memory of this process (Linux ``/proc``), MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024**2


def _route(kwargs: dict, threads: int, queue: multiprocessing.Queue) -> None:
    """Run ``preprocess_expression`` in this (fresh) process; report seconds and peak RSS."""
    import numba
    import torch

    from vae.steps import preprocess_expression

    torch.set_num_threads(threads)
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    before = _rss_mb()
    started = time.perf_counter()
    stats = preprocess_expression(**kwargs)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"seconds": seconds, "peak_rss_mb": peak, "rss_after_imports_mb": before} | stats)


def run_route(kwargs: dict, threads: int) -> dict:
    """Run one route in a spawned process; its report."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_route, args=(kwargs, threads, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        sys.exit(f"preprocess_expression failed (exit {process.exitcode})")
    report = queue.get()
    print(json.dumps(report), flush=True)
    return report


def same_outputs(a: Path, b: Path, chunk: int = 1 << 24) -> dict:
    """Compare two preprocessed files: cells, genes, ranks, ``X`` (read in chunks)."""
    import anndata as ad
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        obs_a, obs_b = ad.io.read_elem(fa["obs"]), ad.io.read_elem(fb["obs"])
        var_a, var_b = ad.io.read_elem(fa["var"]), ad.io.read_elem(fb["var"])
        same_x = all(
            fa["X"][name].shape == fb["X"][name].shape for name in ("data", "indices", "indptr")
        )
        for name in ("indptr", "indices", "data"):
            size = fa["X"][name].shape[0] if same_x else 0
            for lo in range(0, size, chunk):
                hi = min(size, lo + chunk)
                same_x = same_x and np.array_equal(fa["X"][name][lo:hi], fb["X"][name][lo:hi])
    return {
        "same_cells": obs_a.index.equals(obs_b.index),
        "same_genes": var_a.index.equals(var_b.index),
        "same_highly_variable_rank": bool(
            np.array_equal(var_a["highly_variable_rank"], var_b["highly_variable_rank"])
        ),
        "same_var": bool(var_a.equals(var_b)),
        "same_obs": bool(obs_a.equals(obs_b)),
        "same_X": bool(same_x),
    }


def main() -> None:
    """Generate the data if needed, run both routes, compare, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=33_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--mean-log-library", type=float, default=round(math.log(2000), 2))
    parser.add_argument("--data", type=Path, help="raw .h5ad (default: generated under --work)")
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--min-genes", type=int, default=200)
    parser.add_argument("--min-cells", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true", help="only the chunked route")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/out/preprocess_scale"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    tag = f"{args.cells}x{args.genes}_b{args.batches}"
    data = args.data or args.work / f"raw_{tag}.h5ad"
    if not data.exists():
        subprocess.run(
            [
                sys.executable,
                str(HERE / "generate_counts.py"),
                str(data),
                f"--n-cells={args.cells}",
                f"--n-genes={args.genes}",
                f"--n-batches={args.batches}",
                "--batch-effect=0.5",
                f"--mean-log-library={args.mean_log_library}",
            ],
            check=True,
        )
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(args.threads)

    from vae.data._backed import stored_csr_bytes
    from vae.data._chunked import use_chunked

    settings = {
        "counts": str(data),
        "batch_key": "batch",
        "label_key": "cell_type",
        "min_genes": args.min_genes,
        "min_cells": args.min_cells,
        "n_top_genes": args.n_top_genes,
    }
    report = {
        "data": str(data),
        "data_gb_on_disk": data.stat().st_size / 1e9,
        "csr_gb_in_memory": stored_csr_bytes(data) / 1e9,
        "auto_route": "chunked" if use_chunked(data, "auto") else "in_memory",
        "settings": settings,
        "threads": args.threads,
        "machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs",
    }
    outputs = {}
    for route, chunked in (("chunked", True), ("in_memory", False)):
        if route == "in_memory" and args.skip_memory:
            continue
        outputs[route] = args.work / f"preprocessed_{tag}_{route}.h5ad"
        kwargs = settings | {"output": str(outputs[route]), "chunked": chunked}
        report[route] = run_route(kwargs, args.threads)
    if len(outputs) == 2:
        report["comparison"] = same_outputs(outputs["in_memory"], outputs["chunked"])
        print(json.dumps(report["comparison"]))
    out = args.out or args.work / f"report_{tag}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
