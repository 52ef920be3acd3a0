"""scvi-tools side of ``reference_mapping.py``; runs in a separate environment with scvi-tools.

Never imported by the ``vae`` package. For each left-out batch: trains ``scvi.model.SCVI``
on the other batches with the settings of scvi-tools' scArches tutorial
(``encode_covariates=True``, ``use_layer_norm="both"``, ``use_batch_norm="none"``; otherwise
the driver's 10 latent, 128 hidden, 1 layer, ZINB, dropout 0.1), then maps the left-out
batch with ``SCVI.prepare_query_anndata`` + ``SCVI.load_query_data`` (default freezing) +
``train(max_epochs=..., plan_kwargs=dict(weight_decay=0.0))``. Writes per fold the latent
means (``fold{i}.npz``) and the timings (``result.json``); the driver scores them with the
project's metric code.

Latents written per fold:

- ``reference``: reference cells, reference model;
- ``reference_after``: reference cells, query model (the joint embedding of scvi-tools'
  scArches tutorial). Reference weights are frozen, but a one-batch reference had no one-hot
  input, so its own batch column is new too (random, never trained): the latent moves a
  little; the driver records by how much;
- ``query``: query cells after query training;
- ``query_before``: query cells right after ``load_query_data`` (new columns at their
  random initialisation, 0 epochs);
- ``query_as_largest``: query cells labelled as the largest reference batch and embedded by
  the reference model (no surgery).

Usage (called by the driver)::

    /path/to/scvi-venv/bin/python benchmarks/scvi_mapping_worker.py DATA OUT_DIR \
        --left-out BATCH [BATCH ...] --epochs 200 --query-epochs 400 --seed 0 --threads 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import torch

ARCHES = {"encode_covariates": True, "use_layer_norm": "both", "use_batch_norm": "none"}


def map_fold(cells: ad.AnnData, left_out: str, args: argparse.Namespace) -> tuple[dict, dict]:
    """Train the reference without ``left_out``, map ``left_out``; return timings and latents.

    Parameters
    ----------
    cells
        All cells (raw counts in ``X``, batch in ``obs[args.batch_key]``).
    left_out
        The batch that becomes the query.
    args
        The parsed command line.

    Returns
    -------
    tuple of dict
        The fold's record (settings, seconds) and its latent means by name.
    """
    import scvi

    key = args.batch_key
    is_query = (cells.obs[key].astype(str) == left_out).to_numpy()
    ref = cells[~is_query].copy()
    query = cells[is_query].copy()
    largest = str(ref.obs[key].astype(str).value_counts().idxmax())

    scvi.settings.seed = args.seed
    scvi.model.SCVI.setup_anndata(ref, batch_key=key)
    model = scvi.model.SCVI(
        ref,
        n_latent=args.n_latent,
        n_hidden=args.n_hidden,
        n_layers=1,
        dropout_rate=0.1,
        gene_likelihood="zinb",
        **ARCHES,
    )
    started = time.perf_counter()
    model.train(max_epochs=args.epochs, enable_progress_bar=False)
    reference_seconds = time.perf_counter() - started
    latents = {"reference": model.get_latent_representation(ref)}

    pretend = query.copy()
    pretend.obs[key] = largest
    latents["query_as_largest"] = model.get_latent_representation(pretend)

    started = time.perf_counter()
    scvi.model.SCVI.prepare_query_anndata(query, model)
    mapped = scvi.model.SCVI.load_query_data(query, model)
    surgery_seconds = time.perf_counter() - started
    mapped.is_trained_ = True  # get_latent_representation refuses an untrained model
    latents["query_before"] = mapped.get_latent_representation(query)
    mapped.is_trained_ = False
    started = time.perf_counter()
    mapped.train(
        max_epochs=args.query_epochs,
        plan_kwargs={"weight_decay": 0.0},
        enable_progress_bar=False,
    )
    train_seconds = time.perf_counter() - started
    latents["query"] = mapped.get_latent_representation(query)
    latents["reference_after"] = mapped.get_latent_representation(cells[~is_query].copy())
    record = {
        "left_out": left_out,
        "largest_reference_batch": largest,
        "n_reference": int(ref.n_obs),
        "n_query": int(query.n_obs),
        "epochs": args.epochs,
        "query_epochs": args.query_epochs,
        "reference_seconds": reference_seconds,
        "query_surgery_seconds": surgery_seconds,
        "query_train_seconds": train_seconds,
        "query_seconds": surgery_seconds + train_seconds,
        "init_params": model.init_params_,
        "query_train": {"max_epochs": args.query_epochs, "plan_kwargs": {"weight_decay": 0.0}},
    }
    return record, latents


def main() -> None:
    """Map every ``--left-out`` batch and write ``fold{i}.npz`` and ``result.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("out_dir")
    parser.add_argument("--left-out", nargs="+", required=True)
    parser.add_argument("--batch-key", default="batch")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--query-epochs", type=int, default=400)
    parser.add_argument("--n-latent", type=int, default=10)
    parser.add_argument("--n-hidden", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import scvi

    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = ad.read_h5ad(args.data)
    folds = []
    for i, left_out in enumerate(args.left_out):
        record, latents = map_fold(cells, left_out, args)
        np.savez(out / f"fold{i}.npz", **latents)
        folds.append(record | {"latents": f"fold{i}.npz"})
        print(json.dumps(folds[-1], default=str), flush=True)
    result = {
        "scvi_version": scvi.__version__,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "settings": ARCHES,
        "folds": folds,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
