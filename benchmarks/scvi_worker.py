"""scvi-tools side of ``expression_vs_scvi.py``; runs in a separate environment with scvi-tools.

Never imported by the ``vae`` package. Trains ``scvi.model.SCVI`` with its defaults on the
training cells of a split written by the driver, times ``model.train``, and writes the
latent means of all cells plus the held-out ELBO and reconstruction error.

Usage (called by the driver)::

    /path/to/scvi-venv/bin/python benchmarks/scvi_worker.py DATA SPLIT OUT_DIR \
        --epochs 100 --threads 1 --seed 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import torch


def main() -> None:
    """Train SCVI on the split's training cells and write its outputs to ``OUT_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("split")
    parser.add_argument("out_dir")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--elbo-repeats", type=int, default=5)
    parser.add_argument("--marginal-samples", type=int, default=100)
    args = parser.parse_args()

    import scvi

    torch.set_num_threads(args.threads)
    scvi.settings.seed = args.seed
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    adata = ad.read_h5ad(args.data)
    split = np.load(args.split)
    train = adata[split["train"]].copy()
    heldout = adata[split["heldout"]].copy()

    scvi.model.SCVI.setup_anndata(train)
    model = scvi.model.SCVI(train)  # defaults: 10 latent, 128 hidden, 1 layer, zinb
    started = time.perf_counter()
    model.train(max_epochs=args.epochs, enable_progress_bar=False)
    train_seconds = time.perf_counter() - started

    full = adata.copy()
    np.save(out / "latent.npy", model.get_latent_representation(full))
    # get_elbo and get_reconstruction_error draw z from q(z|x): average several draws
    torch.manual_seed(args.seed)
    elbo = [float(model.get_elbo(heldout)) for _ in range(args.elbo_repeats)]
    recon = [
        float(model.get_reconstruction_error(heldout)["reconstruction_loss"])
        for _ in range(args.elbo_repeats)
    ]
    # get_marginal_ll: importance-sampled log p(x) per cell (higher is better), draws from q
    torch.manual_seed(args.seed)
    marginal = model.get_marginal_ll(
        heldout, n_mc_samples=args.marginal_samples, return_mean=False
    )
    result = {
        "heldout_log_evidence_per_cell": float(np.mean(np.asarray(marginal))),
        "scvi_version": scvi.__version__,
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "n_train_cells": int(train.n_obs),
        "n_heldout_cells": int(heldout.n_obs),
        "train_seconds": train_seconds,
        "init_params": model.init_params_,
        "heldout_elbo_per_cell_sampled_z": float(np.mean(elbo)),
        "heldout_reconstruction_per_cell_sampled_z": float(np.mean(recon)),
    }
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
