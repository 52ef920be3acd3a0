"""Train the count VAE for one epoch from a large on-disk ``.h5ad`` read block by block.

Opens the file with ``anndata.read_h5ad(path, backed="r")`` (``obs``/``var`` in memory,
``X`` on disk), builds the model (library sizes from one chunked pass over the file) and
trains one epoch with :class:`vae.data._backed.BackedCounts` feeding minibatches. Prints
and writes (``--out``, JSON) cells per second of the training loop and the peak resident
memory of the process (``ru_maxrss``), which covers everything: reading, model, training.

Usage::

    .venv/bin/python benchmarks/generate_counts.py benchmarks/out/counts_1m.h5ad
    .venv/bin/python benchmarks/expression_scale.py benchmarks/out/counts_1m.h5ad
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sys
import time
from pathlib import Path

import anndata as ad
import torch

from vae._device import resolve_device
from vae.model import CountModel
from vae.train import TrainConfig


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    """Run one backed epoch and report throughput and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-key", default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/expression_scale.json"))
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    started = time.perf_counter()
    adata = ad.read_h5ad(args.data, backed="r")
    rss_open = _rss_mb()
    model = CountModel.from_anndata(adata, batch_key=args.batch_key).to(device)
    setup_seconds = time.perf_counter() - started
    steps = math.ceil(args.epochs * adata.n_obs / args.batch_size)
    config = TrainConfig(
        max_steps=steps,
        batch_size=args.batch_size,
        validation_frac=0.0,
        eval_every=max(1, steps // 10),
        kl_warmup_steps=400,
    )
    result = model.train(adata, config)
    cells = steps * args.batch_size
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "file_gb": args.data.stat().st_size / 1e9,
        "steps": result.steps,
        "cells_trained": cells,
        "setup_seconds": setup_seconds,
        "train_seconds": result.seconds,
        "cells_per_second": cells / result.seconds,
        "rss_after_open_mb": rss_open,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_train_elbo": float(result.history["train_elbo"].iloc[-1]),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
