"""Leave-one-batch-out reference mapping: ours against scvi-tools and two baselines.

For each data set, seed and left-out batch: train a reference on the other batches, map the
left-out batch (the query) and transfer the reference's labels to it with the same weighted
kNN (:func:`vae.metrics.knn_label_transfer`); every row is scored by the same code
(:func:`vae.metrics.mapping_metrics` and :func:`batch_shift`). Rows (``method``):

- ``ours_batchnorm`` / ``ours_layernorm``: :class:`vae.model.CountModel` (10 latent,
  128 hidden, 1 layer, ZINB, dropout 0.1, the encoder sees the batch), encoder and decoder
  batch norm (the default) or layer norm; :func:`vae.model.map_query_model` trains only the
  query's new one-hot batch columns (zero start, no weight decay);
- ``scvi_arches``: scvi-tools' ``SCVI`` with its scArches tutorial settings
  (``encode_covariates=True``, ``use_layer_norm="both"``, ``use_batch_norm="none"``), same
  size, likelihood, dropout and epochs, mapped by ``prepare_query_anndata`` +
  ``load_query_data`` + ``train(plan_kwargs=dict(weight_decay=0.0))``, in its own
  environment (``scvi_mapping_worker.py``); its other settings are scvi-tools' defaults
  (notably a KL warm-up over 400 epochs in both trainings; ours has none);
- ``*_as_largest``: no surgery, the query's batch set to the largest reference batch and
  embedded by that reference model (ours batch norm, ours layer norm, scvi-tools);
- ``scvi_arches_before``: scvi-tools right after ``load_query_data`` (0 epochs; new columns
  at their random initialisation), to show what its query training changes; both
  ``scvi_arches`` rows use the query model's embedding of the reference cells too;
- ``pca``: PCA(10) fitted on the reference's log1p(CP10k) counts, the query projected.

``query_seconds`` is the wall time of the surgery plus the query training
(:func:`vae.model.map_query_model` here, ``load_query_data`` + ``train`` there).
``batch_shift`` measures how far the query's cell types sit from the same types of the
reference, relative to how far the reference's types are from each other.

    .venv/bin/python benchmarks/reference_mapping.py --scvi-python /work/scvi-venv/bin/python \
        --sets pancreas --seeds 0 1 --out benchmarks/out/reference_mapping
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from itertools import combinations
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch
from sklearn.decomposition import PCA

from vae.metrics import knn_label_transfer, mapping_metrics
from vae.model import CountModel, QueryTraining, map_query_model
from vae.model._mapping import default_query_epochs
from vae.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "expression"
SETS = {
    "cellbench": "cellbench_3cl_celseq2_dropseq_counts.h5ad",
    "pancreas": "pancreas_baron_segerstolpe_subset_counts.h5ad",
}
BATCH, LABEL = "batch", "cell_type"
N_LATENT, N_HIDDEN = 10, 128
SETTINGS = {
    "ours_batchnorm": "ours: encoder+decoder batch norm, encoder sees batch; new columns "
    "trained (zero start)",
    "ours_layernorm": "ours: encoder+decoder layer norm, encoder sees batch; new columns "
    "trained (zero start)",
    "scvi_arches": "scvi-tools SCVI: encode_covariates=True, use_layer_norm='both', "
    "use_batch_norm='none'; load_query_data defaults, weight_decay=0",
    "ours_batchnorm_as_largest": "no surgery: query called the largest reference batch "
    "(ours, batch norm)",
    "ours_layernorm_as_largest": "no surgery: query called the largest reference batch "
    "(ours, layer norm)",
    "scvi_arches_as_largest": "no surgery: query called the largest reference batch "
    "(scvi-tools, scArches settings)",
    "scvi_arches_before": "scvi-tools after load_query_data, 0 epochs (random new columns)",
    "pca": "PCA(10) of the reference's log1p(CP10k), query projected",
}


def batch_shift(
    reference: np.ndarray,
    reference_labels: np.ndarray,
    query: np.ndarray,
    query_labels: np.ndarray,
) -> float:
    """Distance from query to reference centroids of the same label, relative to the labels'.

    For every label present in both, the distance between the query's and the reference's
    centroid of that label; their mean is divided by the mean distance between the
    reference's label centroids. 0: the query's types land on the reference's; 1: the batch
    offset is as large as the difference between cell types.

    Parameters
    ----------
    reference, query
        Embeddings (cells x dimensions) in the same space.
    reference_labels, query_labels
        Cell labels of each.

    Returns
    -------
    float
        The relative shift (``nan`` with fewer than two reference labels or none shared).
    """
    reference_labels = np.asarray(reference_labels).astype(str)
    query_labels = np.asarray(query_labels).astype(str)
    centroids = {c: reference[reference_labels == c].mean(0) for c in np.unique(reference_labels)}
    shared = sorted(set(centroids) & set(query_labels))
    if len(centroids) < 2 or not shared:
        return float("nan")
    between = np.mean([np.linalg.norm(a - b) for a, b in combinations(centroids.values(), 2)])
    shift = np.mean(
        [np.linalg.norm(query[query_labels == c].mean(0) - centroids[c]) for c in shared]
    )
    return float(shift / between)


def score(
    method: str,
    reference: np.ndarray,
    query: np.ndarray,
    ref_labels: np.ndarray,
    query_labels: np.ndarray,
    seed: int,
) -> dict:
    """Transfer labels from ``reference`` to ``query`` and compute every mapping metric."""
    transfer = knn_label_transfer(reference, ref_labels, query)
    metrics = mapping_metrics(reference, ref_labels, query, query_labels, transfer, seed=seed)
    shift = batch_shift(reference, ref_labels, query, query_labels)
    return {"method": method, "settings": SETTINGS[method], "batch_shift": shift} | metrics


def log_normalised(counts: sp.spmatrix | np.ndarray) -> np.ndarray:
    """log1p of counts scaled to 10,000 per cell, dense."""
    x = sp.csr_matrix(counts, dtype=np.float64)
    totals = np.asarray(x.sum(1)).ravel().clip(min=1)
    return np.log1p(sp.diags(1e4 / totals) @ x).toarray()


def pca_rows(ref: ad.AnnData, query: ad.AnnData, seed: int) -> dict:
    """PCA(10) fitted on the reference's log1p(CP10k) counts, the query projected."""
    pca = PCA(n_components=N_LATENT, random_state=seed).fit(log_normalised(ref.X))
    return {"pca": (pca.transform(log_normalised(ref.X)), pca.transform(log_normalised(query.X)))}


def ours_rows(
    ref: ad.AnnData,
    query: ad.AnnData,
    norm: str,
    epochs: int,
    query_epochs: int,
    seed: int,
    kl_warmup_epochs: int = 0,
    batch_key: str = BATCH,
) -> tuple[dict, dict]:
    """Train our reference with ``norm``; latents of the mapped and the no-surgery query.

    ``kl_warmup_epochs``: linear KL warm-up of the reference training, in epochs (scvi-tools'
    default is 400, i.e. its 200-epoch reference ends at KL weight 0.5).
    """
    model = CountModel.from_anndata(
        ref,
        batch_key=batch_key,
        n_latent=N_LATENT,
        n_hidden=N_HIDDEN,
        encoder_norm=norm,
        decoder_norm=norm,
    )
    per_epoch = int(np.ceil(0.9 * ref.n_obs / 128))
    steps = epochs * per_epoch
    config = TrainConfig(
        max_steps=steps,
        eval_every=max(steps // 10, 1),
        seed=seed,
        kl_warmup_steps=kl_warmup_epochs * per_epoch,
    )
    started = time.perf_counter()
    result = model.train(ref, config)
    reference_seconds = time.perf_counter() - started
    ref_latent = model.get_latent(ref)
    largest = str(ref.obs[batch_key].astype(str).value_counts().idxmax())
    pretend = query.copy()
    pretend.obs[batch_key] = largest
    started = time.perf_counter()
    mapped, record = map_query_model(model, query, QueryTraining(epochs=query_epochs, seed=seed))
    query_seconds = time.perf_counter() - started
    name = f"ours_{norm}norm"
    latents = {
        name: (ref_latent, mapped.get_latent(query)),
        f"{name}_as_largest": (ref_latent, model.get_latent(pretend)),
    }
    timing = {
        name: {
            "query_seconds": query_seconds,
            "query_loop_seconds": record.get("seconds", 0.0),
            "query_epochs": record.get("epochs", 0),
            "reference_seconds": reference_seconds,
            "reference_best_val_elbo": result.extra["best_elbo"],
            "query_best_heldout_elbo": record.get("best_heldout_elbo"),
        }
    }
    return latents, timing


def run_scvi(
    path: Path, left_out: list[str], out: Path, args, seed: int, query_epochs: int
) -> dict:
    """Run ``scvi_mapping_worker.py`` for all folds of one data set and seed."""
    worker = Path(__file__).with_name("scvi_mapping_worker.py")
    command = [args.scvi_python, str(worker), str(path), str(out), "--left-out", *left_out]
    command += ["--epochs", str(args.epochs), "--query-epochs", str(query_epochs)]
    command += ["--seed", str(seed), "--threads", "1", "--batch-key", args.batch_key]
    command += ["--n-latent", str(N_LATENT), "--n-hidden", str(N_HIDDEN)]
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    (out / "worker.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        sys.exit(f"scvi worker failed (exit {completed.returncode}); see {out}/worker.log")
    return json.loads((out / "result.json").read_text())


def run_set(name: str, seed: int, query_epochs: int, args) -> list[dict]:
    """Every fold of one data set and seed; one scored row per method and fold."""
    path = DATA / SETS[name]
    cells = ad.read_h5ad(path)
    batches = args.left_out or sorted(cells.obs[args.batch_key].astype(str).unique())
    scvi = None
    if args.scvi_python:
        out = args.out / name / f"seed{seed}" / "scvi"
        scvi = run_scvi(path, batches, out, args, seed, query_epochs)
    rows = []
    for i, left_out in enumerate(batches):
        is_query = (cells.obs[args.batch_key].astype(str) == left_out).to_numpy()
        ref, query = cells[~is_query].copy(), cells[is_query].copy()
        ref_labels = ref.obs[LABEL].astype(str).to_numpy()
        query_labels = query.obs[LABEL].astype(str).to_numpy()
        latents, timing = pca_rows(ref, query, seed), {}
        for norm in args.norms:
            more, times = ours_rows(
                ref,
                query,
                norm,
                args.epochs,
                query_epochs,
                seed,
                args.kl_warmup_epochs,
                args.batch_key,
            )
            latents |= more
            timing |= times
        if scvi is not None:
            fold = scvi["folds"][i]
            assert fold["left_out"] == left_out
            z = np.load(args.out / name / f"seed{seed}" / "scvi" / fold["latents"])
            latents |= {
                # the joint embedding of the query model, as the scArches tutorial computes it
                "scvi_arches": (z["reference_after"], z["query"]),
                "scvi_arches_as_largest": (z["reference"], z["query_as_largest"]),
                "scvi_arches_before": (z["reference_after"], z["query_before"]),
            }
            timing["scvi_arches"] = {
                k: fold[k]
                for k in (
                    "query_seconds",
                    "query_train_seconds",
                    "query_surgery_seconds",
                    "reference_seconds",
                )
            } | {
                "query_epochs": fold["query_epochs"],
                "reference_latent_max_change": float(
                    np.abs(z["reference"] - z["reference_after"]).max()
                ),
            }
        for method, (reference, query_latent) in latents.items():
            row = {"dataset": name, "seed": seed, "left_out": left_out, "fold": i}
            row |= score(method, reference, query_latent, ref_labels, query_labels, seed)
            row |= timing.get(method, {"query_seconds": 0.0, "query_epochs": 0})
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
    if scvi is not None:
        for row in rows:
            if row["method"].startswith("ours_") and "as_largest" not in row["method"]:
                other = next(
                    r
                    for r in rows
                    if r["method"] == "scvi_arches" and r["left_out"] == row["left_out"]
                )
                row["time_ratio_ours_over_scvi"] = row["query_seconds"] / other["query_seconds"]
    return rows


ORDER = list(SETTINGS)
COLUMNS = ("label_accuracy", "confident_share", "query_mixing", "kmeans_ari", "batch_shift")


def table(rows: list[dict]) -> str:
    """Markdown table: method x fold (mean over seeds), then the mean over folds per method."""
    lines = [
        "| data set | method | left out | label accuracy | confident share | query mixing "
        "| KMeans ARI | batch shift | query train s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        here = [r for r in rows if r["dataset"] == dataset]
        folds = list(dict.fromkeys(r["left_out"] for r in here))
        for method in [m for m in ORDER if any(r["method"] == m for r in here)]:
            for left_out in [*folds, "mean over folds"]:
                cells = [
                    r
                    for r in here
                    if r["method"] == method and left_out in (r["left_out"], "mean over folds")
                ]
                values = [f"{np.mean([float(r[c]) for r in cells]):.3f}" for c in COLUMNS]
                seconds = np.mean([r["query_seconds"] for r in cells])
                label = f"**{left_out}**" if left_out == "mean over folds" else left_out
                lines.append(
                    f"| {dataset} | {method} | {label} | {' | '.join(values)} | {seconds:.1f} |"
                )
    return "\n".join(lines)


def main() -> None:
    """Run every data set and seed; write ``results.json`` and ``summary.md`` under ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/reference_mapping")
    parser.add_argument("--epochs", type=int, default=200, help="Reference training epochs.")
    parser.add_argument(
        "--query-epochs",
        type=int,
        default=None,
        help="Query training epochs, both sides (default: scvi-tools' heuristic, 400 here).",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--batch-key",
        default=BATCH,
        help="obs column of the batches (pancreas: 'donor' gives a multi-batch reference)",
    )
    parser.add_argument(
        "--left-out", nargs="+", default=None, help="Batches left out in turn (default: all)."
    )
    parser.add_argument(
        "--norms", nargs="+", default=["batch", "layer"], choices=["batch", "layer"]
    )
    parser.add_argument(
        "--kl-warmup-epochs",
        type=int,
        default=0,
        help="Our reference's linear KL warm-up in epochs (scvi-tools' default: 400).",
    )
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument(
        "--scvi-python", default=None, help="python of the scvi-tools venv (omit: ours only)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    # scvi-tools imports torch._dynamo on import; the first torch.optim.Adam here would
    # import it inside the first timed training
    importlib.import_module("torch._dynamo")

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}",
        "torch_threads": torch.get_num_threads(),
        "epochs": args.epochs,
        "kl_warmup_epochs_ours": args.kl_warmup_epochs,
        "batch_key": args.batch_key,
        "left_out": args.left_out,
        "query_epochs": {},
        "seeds": args.seeds,
        "settings": SETTINGS,
    }
    rows = []
    for name in args.sets:
        query_epochs = args.query_epochs
        if query_epochs is None:
            # scvi-tools' heuristic for the smallest query of the set (both sides, all folds)
            cells = ad.read_h5ad(DATA / SETS[name], backed="r")
            sizes = cells.obs[args.batch_key].astype(str).value_counts()
            if args.left_out:
                sizes = sizes[args.left_out]
            query_epochs = default_query_epochs(int(sizes.min()))
        meta["query_epochs"][name] = query_epochs
        for seed in args.seeds:
            rows += run_set(name, seed, query_epochs, args)
            meta |= {
                "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "load_average_1_5_15_at_end": os.getloadavg(),
            }
            (args.out / "results.json").write_text(
                json.dumps({"meta": meta, "rows": rows}, indent=2, default=str)
            )
    summary = table(rows)
    (args.out / "summary.md").write_text(summary + "\n")
    print(summary)


if __name__ == "__main__":
    main()
