"""Our query training alone, per epoch, on a pancreas leave-one-batch-out fold (one thread).

Trains a reference on the other batch (10 latent, 128 hidden, ``--norm`` norm, as
``reference_mapping.py``, but ``--reference-steps`` steps only: the query training's
cost does not depend on how well the reference fits), then times
:func:`vae.model.map_query_model` for ``--epochs`` epochs ``--repeats`` times after a
5-epoch warm-up. Prints one JSON line per repeat: wall and CPU (process) milliseconds per
epoch, the best step and a checksum of the query latents (equal checksums: equal
results). CPU time is the steadier number on a shared machine.

Usage (the code before a change can be timed from a ``git archive`` copy of ``vae``)::

    .venv/bin/python benchmarks/query_training_speed.py --norm batch --epochs 200
    git archive HEAD vae | tar -x -C /tmp/old
    PYTHONPATH=/tmp/old .venv/bin/python benchmarks/query_training_speed.py --norm batch
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import torch

import vae
from vae.model import CountModel, QueryTraining, map_query_model
from vae.train import TrainConfig

DATA = Path(__file__).resolve().parents[2] / "shared/data/expression"
PANCREAS = DATA / "pancreas_baron_segerstolpe_subset_counts.h5ad"


def main() -> None:
    """Train the reference once, then time the query training."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--norm", choices=["batch", "layer"], default="batch")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--reference-steps", type=int, default=100)
    parser.add_argument("--fold", type=int, default=0, help="index of the left-out batch")
    args = parser.parse_args()
    torch.set_num_threads(1)

    cells = ad.read_h5ad(PANCREAS)
    batch = cells.obs["batch"].astype(str)
    left_out = sorted(batch.unique())[args.fold]
    ref, query = cells[batch != left_out].copy(), cells[batch == left_out].copy()
    torch.manual_seed(0)
    model = CountModel.from_anndata(
        ref,
        batch_key="batch",
        n_latent=10,
        n_hidden=128,
        encoder_norm=args.norm,
        decoder_norm=args.norm,
    )
    steps = args.reference_steps
    model.train(ref, TrainConfig(max_steps=steps, eval_every=max(steps // 2, 1), seed=0))
    map_query_model(model, query, QueryTraining(epochs=5, seed=0))  # warm-up
    for _ in range(args.repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        mapped, record = map_query_model(model, query, QueryTraining(epochs=args.epochs, seed=0))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        latent = mapped.get_latent(query)
        print(
            json.dumps(
                {
                    "code": str(Path(vae.__file__).parents[1]),
                    "norm": args.norm,
                    "left_out": left_out,
                    "query_cells": query.n_obs,
                    "epochs": args.epochs,
                    "wall_ms_per_epoch": round(1000 * wall / args.epochs, 2),
                    "cpu_ms_per_epoch": round(1000 * cpu / args.epochs, 2),
                    "best_step": record["best_step"],
                    "latent_abs_sum": round(float(np.abs(latent).sum()), 3),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
