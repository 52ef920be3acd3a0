"""Leave-one-batch-out reference mapping on the labelled two-batch sets (ours only so far).

For each data set and left-out batch: train the reference on the other batches, map the
left-out batch (scArches surgery, :func:`vae.model.map_query_model`) and transfer labels
(:func:`vae.metrics.knn_label_transfer`). Rows: encoder/decoder batch norm vs layer norm,
and the query embedded without surgery (``epochs=0``: with zero-initialised new columns the
query is decoded as a batch-free cell of the reference, the same as "pretend it is the
reference batch" for a one-batch reference). The scvi-tools side (``load_query_data``) is
not run yet.

    .venv/bin/python benchmarks/reference_mapping.py --out benchmarks/out/reference_mapping
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import numpy as np
import torch

from vae.metrics import knn_label_transfer, mapping_metrics
from vae.model import CountModel, QueryTraining, map_query_model
from vae.train import TrainConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "expression"
SETS = {
    "cellbench": "cellbench_3cl_celseq2_dropseq_counts.h5ad",
    "pancreas": "pancreas_baron_segerstolpe_subset_counts.h5ad",
}


def run_fold(cells: ad.AnnData, left_out: str, norm: str, epochs: int, seed: int) -> list[dict]:
    """Train a reference without ``left_out`` and map it; one row per query setting."""
    ref = cells[cells.obs["batch"] != left_out].copy()
    query = cells[cells.obs["batch"] == left_out].copy()
    model = CountModel.from_anndata(
        ref, batch_key="batch", n_latent=10, n_hidden=128, encoder_norm=norm, decoder_norm=norm
    )
    steps = epochs * int(np.ceil(0.9 * ref.n_obs / 128))
    started = time.perf_counter()
    result = model.train(
        ref, TrainConfig(max_steps=steps, eval_every=max(steps // 10, 1), seed=seed)
    )
    ref_seconds = time.perf_counter() - started
    ref_latent = model.get_latent(ref)
    labels = ref.obs["cell_type"].astype(str).to_numpy()
    rows = []
    for query_epochs in (0, None):
        mapped, record = map_query_model(
            model, query, QueryTraining(epochs=query_epochs, seed=seed)
        )
        latent = mapped.get_latent(query)
        transfer = knn_label_transfer(ref_latent, labels, latent)
        metrics = mapping_metrics(
            ref_latent, labels, latent, query.obs["cell_type"].astype(str).to_numpy(), transfer
        )
        rows.append(
            {
                "left_out": left_out,
                "norm": norm,
                "query_epochs": record.get("epochs", 0),
                "query_seconds": record.get("seconds", 0.0),
                "reference_seconds": ref_seconds,
                "reference_best_val_elbo": result.extra["best_elbo"],
            }
            | metrics
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/reference_mapping"))
    parser.add_argument("--epochs", type=int, default=200, help="Reference training epochs.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.sets:
        cells = ad.read_h5ad(DATA / SETS[name])
        for left_out in sorted(cells.obs["batch"].astype(str).unique()):
            for norm in ("batch", "layer"):
                for row in run_fold(cells, left_out, norm, args.epochs, args.seed):
                    rows.append({"dataset": name} | row)
                    print(json.dumps(rows[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
