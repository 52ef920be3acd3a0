"""The workflow's expression steps after preprocessing on a large on-disk ``.h5ad``.

Runs, each in a fresh process so that each has its own peak memory, the step functions the
Snakemake rules call: ``train_model`` (backed, ``--steps`` optimiser steps),
``embed_preprocessed`` (every cell, read block by block), ``evaluate_expression``
(held-out ELBO on every validation cell; metrics and the PCA baseline on
``--max-cells`` cells) and the latent UMAP figure (``plot_latent``, same subsample
size). Records wall seconds and peak resident memory (``ru_maxrss``) per step, plus
``n_cells_evaluated``, in ``--out`` (JSON).

The input stands for a preprocessed dataset: ``benchmarks/generate_counts.py`` writes
``uns["preprocess"]`` naming its ``cell_type`` and ``batch`` columns, so the label and batch
metrics run.

Usage::

    .venv/bin/python benchmarks/generate_counts.py benchmarks/out/counts_1m.h5ad
    .venv/bin/python benchmarks/expression_pipeline_scale.py benchmarks/out/counts_1m.h5ad
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from pathlib import Path


def _stage(name: str, kwargs: dict, queue: multiprocessing.Queue) -> None:
    """Run one step function in this (fresh) process; report seconds and peak RSS."""
    import importlib

    import torch

    module, _, function = name.rpartition(".")
    torch.set_num_threads(kwargs.pop("threads"))
    started = time.perf_counter()
    result = getattr(importlib.import_module(module), function)(**kwargs)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if not isinstance(result, dict):
        result = {"returned": result}
    summary = {k: v for k, v in result.items() if not isinstance(v, dict | list)}
    queue.put({"step": name, "seconds": seconds, "peak_rss_mb": peak_mb, "result": summary})


def run_stage(name: str, **kwargs) -> dict:
    """Run the function ``name`` (``module.function``) in a spawned process; its report."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_stage, args=(name, kwargs, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        sys.exit(f"{name} failed (exit {process.exitcode})")
    report = queue.get()
    print(json.dumps(report), flush=True)
    return report


def main() -> None:
    """Train, embed and evaluate; write per-step seconds and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=800, help="optimiser steps (batch 128)")
    parser.add_argument("--max-cells", type=int, default=50_000, help="evaluate.max_cells")
    parser.add_argument(
        "--evidence-examples", type=int, default=10_000, help="evaluate.evidence_examples"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/out/pipeline_scale"))
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/out/expression_pipeline_scale.json")
    )
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    model, embedding = args.work / "model", args.work / "embedding.h5ad"
    common = {"threads": args.threads}
    reports = [
        run_stage(
            "vae.steps.train_model",
            data=args.data,
            model_dir=model,
            history=args.work / "history.tsv",
            domain="expression",
            model_kwargs={"n_latent": 10, "n_hidden": 128, "n_layers": 1, "likelihood": "zinb"},
            train_kwargs={
                "max_steps": args.steps,
                "batch_size": 128,
                "eval_every": args.steps,
                "validation_frac": 0.1,
                "backed": True,
            },
            device="cpu",
            **common,
        ),
        run_stage(
            "vae.steps.embed_preprocessed",
            model_dir=model,
            data=args.data,
            output=embedding,
            device="cpu",
            backed=True,
            **common,
        ),
        run_stage(
            "vae.steps.evaluate_expression",
            model_dir=model,
            data=args.data,
            embedding=embedding,
            output=args.work / "metrics.json",
            max_cells=args.max_cells,
            evidence_examples=args.evidence_examples,
            **common,
        ),
        run_stage(
            "vae.plotting.plot_latent",
            embedding=embedding,
            output=args.work / "latent_umap.png",
            max_cells=args.max_cells,
            **common,
        ),
    ]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}",
        "load_average_1_5_15_at_end": os.getloadavg(),
        "data": str(args.data),
        "file_gb": args.data.stat().st_size / 1e9,
        "threads": args.threads,
        "steps": reports,
        "metrics": json.loads((args.work / "metrics.json").read_text()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
