"""Side-by-side: our CountVAE vs scvi-tools' SCVI on the same cells, split, architecture, epochs.

One run does everything:

1. reads the counts (default: pbmc3k, 2638 cells x 2000 HVGs, labels ``cell_type``) and
   draws one split: ``--heldout-frac`` (10 %) of the cells are held out, never trained on;
2. trains our model (``vae.model.CountModel``, settings of ``config/real-data.yaml``:
   ZINB, 10 latent, 128 hidden, 1 layer, batch 128, lr 1e-3, its own 10 % validation
   part of the training cells) for ``--epochs`` epochs, timing ``model.train``;
3. trains ``scvi.model.SCVI`` with scvi-tools' defaults (ZINB, 10 latent, 128 hidden,
   1 layer, batch 128, lr 1e-3, ``train_size=0.9`` of the training cells) for the same
   epochs on the same training cells, in a subprocess with the scvi-tools environment
   (``--scvi-python``; scvi-tools is never a dependency of ``vae``), timing ``model.train``;
4. computes every metric with the project's own code (:mod:`vae.metrics`) for our latent
   means, scvi's latent means and PCA(10) of log1p-CP10k counts, all cells;
5. writes ``result.json`` and ``result.md`` under ``--out/seedS`` and prints the table and the
   ratio of training wall times; after all ``--seeds``, the summary over seeds.

Held-out ELBO per cell: ``ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z))`` in nats per cell,
higher is better, with the full ZINB log-likelihood (including ``-log x!``) on the held-out
cells, KL weight 1. ``*_sampled_z`` is the single-draw estimator scvi-tools' ``get_elbo``
uses (one z from q per cell), averaged over 5 draws, for both models; ``*_mean_z`` (ours
only) puts z at the posterior mean, as ``metrics.json`` of the workflow does.
Reconstruction is ``-log p(x|z)`` per cell (lower is better), as scvi-tools'
``get_reconstruction_error``.

Usage::

    .venv/bin/python benchmarks/expression_vs_scvi.py --scvi-python /work/scvi-venv/bin/python \
        --seeds 0 1 2 3 4 5 6 7 8 9

Each seed writes ``OUT/seedS/result.json`` and ``result.md``; ``OUT/summary.json`` and
``summary.md`` give the mean and SD of every quantity per side and the paired differences
ours - scvi-tools and ours - PCA (mean, standard error, seeds where ours is at least as
good): single runs differ by several hundredths of ARI from seed to seed, so one seed
cannot decide a comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import numpy as np
import torch
import yaml

from vae.metrics import embedding_metrics, pca_baseline
from vae.model import CountModel
from vae.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/expression/pbmc3k_hvg2000_counts.h5ad"
METRICS = ("kmeans_ari", "leiden_ari", "leiden_nmi", "knn_accuracy", "silhouette_label")
DEFINITIONS = {
    "heldout_elbo_per_cell": "mean over held-out cells of log p(x|z) - KL(q(z|x)||p(z)) "
    "in nats, KL weight 1, full ZINB likelihood including -log x!; higher is better",
    "sampled_z": "z drawn once from q(z|x) per cell (scvi-tools get_elbo), mean of 5 draws",
    "heldout_log_evidence_per_cell": "importance-weighted log p(x) with --marginal-samples "
    "draws from q(z|x): ours vae.model.BaseModel.log_evidence, scvi-tools get_marginal_ll "
    "(the same estimator, both averaged over held-out cells)",
    "mean_z": "z at the posterior mean (ours only; the workflow's metrics.json)",
    "heldout_reconstruction_per_cell": "-log p(x|z) per held-out cell; lower is better",
    "train_seconds": "wall time of model.train(...) on each side (setup included; "
    "torch._dynamo, which torch.optim imports on first use, is imported beforehand on "
    "both sides: by `import scvi` there, explicitly here)",
    "metrics": "vae.metrics.embedding_metrics on all cells' latent means; kmeans_ari is "
    "KMeans(k = number of labels) averaged over 5 seeds; knn_accuracy is 5-fold "
    "cross-validated kNN(15)",
    "summary": "per quantity: mean and SD over seeds of each side, and the paired difference "
    "ours - other (mean, SE = SD / sqrt(n), number of seeds where ours is at least as good)",
}


def _project_settings() -> tuple[dict, dict]:
    config = yaml.safe_load((ROOT / "config/real-data.yaml").read_text())
    return dict(config["model"]["expression"]), dict(config["train"]["expression"])


@torch.no_grad()
def _heldout_terms(model: CountModel, adata: ad.AnnData, *, sample: bool, repeats: int, seed: int):
    """Mean held-out ELBO and reconstruction (-log p(x|z)) per cell."""
    model.module.eval()
    tensors = model.tensors(adata)
    inputs = {"x": tensors["x"][0 : adata.n_obs], "batch": tensors["batch"]}
    torch.manual_seed(seed)
    elbo, recon = [], []
    for _ in range(repeats if sample else 1):
        out = model.module(**inputs, sample=sample)
        elbo.append(float(-out.neg_elbo().mean()))
        recon.append(float(out.reconstruction.mean()))
    return float(np.mean(elbo)), float(np.mean(recon))


def train_ours(train: ad.AnnData, heldout: ad.AnnData, full: ad.AnnData, args) -> dict:
    """Train our model on ``train``; return timings, held-out terms and the latent of ``full``."""
    model_kwargs, train_kwargs = _project_settings()
    model_kwargs |= json.loads(args.model)
    n_inner = train.n_obs - int(round(train.n_obs * train_kwargs["validation_frac"]))
    steps_per_epoch = math.ceil(n_inner / train_kwargs["batch_size"])
    train_kwargs.pop("backed", None)  # pbmc3k is held in memory
    train_kwargs |= {"max_steps": args.epochs * steps_per_epoch, "checkpoint_every": 0}
    train_kwargs["seed"] = args.seed
    train_kwargs |= json.loads(args.train)
    config = TrainConfig(**train_kwargs)
    model = CountModel.from_anndata(train, **model_kwargs)
    # scvi-tools imports torch._dynamo when it is imported, before its timer starts; here the
    # first torch.optim.Adam would import it inside the timer (3.3 s on the 2-core VM)
    import torch._dynamo  # noqa: F401

    started = time.perf_counter()
    result = model.train(train, config)
    wall = time.perf_counter() - started
    elbo_s, recon_s = _heldout_terms(model, heldout, sample=True, repeats=5, seed=args.seed)
    elbo_m, recon_m = _heldout_terms(model, heldout, sample=False, repeats=1, seed=args.seed)
    evidence, _ = model.log_evidence(heldout, n_samples=args.marginal_samples, seed=args.seed)
    return {
        "heldout_log_evidence_per_cell": float(evidence.mean()),
        "train_seconds": wall,
        "loop_seconds": result.seconds,
        "steps": result.steps,
        "epochs": result.steps / steps_per_epoch,
        "best_step": result.extra["best_step"],
        "model": model_kwargs,
        "train": {k: v for k, v in train_kwargs.items()},
        "heldout_elbo_per_cell_sampled_z": elbo_s,
        "heldout_reconstruction_per_cell_sampled_z": recon_s,
        "heldout_elbo_per_cell_mean_z": elbo_m,
        "heldout_reconstruction_per_cell_mean_z": recon_m,
        "latent": model.get_latent(full),
    }


def train_scvi(data: Path, split: Path, out: Path, args) -> dict:
    """Run ``scvi_worker.py`` with the scvi-tools interpreter; return its result and latent."""
    worker = Path(__file__).with_name("scvi_worker.py")
    command = [args.scvi_python, str(worker), str(data), str(split), str(out / "scvi")]
    command += ["--epochs", str(args.epochs), "--threads", str(args.threads)]
    command += ["--seed", str(args.seed), "--marginal-samples", str(args.marginal_samples)]
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    completed = subprocess.run(command, capture_output=True, text=True, env=env)
    (out / "scvi_worker.log").write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        sys.exit(f"scvi worker failed (exit {completed.returncode}); see {out}/scvi_worker.log")
    result = json.loads((out / "scvi/result.json").read_text())
    result["latent"] = np.load(out / "scvi/latent.npy")
    return result


def _table(result: dict) -> str:
    ours, scvi, pca = result["ours"], result["scvi"], result["pca"]
    rows = [
        "| metric | ours (CountVAE) | scvi-tools SCVI | PCA(10) |",
        "| --- | --- | --- | --- |",
    ]
    for name in METRICS:
        rows.append(
            f"| {name} | {ours['metrics'][name]:.3f} | {scvi['metrics'][name]:.3f} "
            f"| {pca['metrics'][name]:.3f} |"
        )
    rows.append(
        f"| held-out ELBO per cell, z ~ q (nats, higher better) | "
        f"{ours['heldout_elbo_per_cell_sampled_z']:.2f} | "
        f"{scvi['heldout_elbo_per_cell_sampled_z']:.2f} | - |"
    )
    rows.append(
        f"| held-out -log p(x\\|z) per cell, z ~ q (lower better) | "
        f"{ours['heldout_reconstruction_per_cell_sampled_z']:.2f} | "
        f"{scvi['heldout_reconstruction_per_cell_sampled_z']:.2f} | - |"
    )
    rows.append(
        f"| held-out log-evidence per cell, {result['marginal_samples']} importance samples | "
        f"{ours['heldout_log_evidence_per_cell']:.2f} | "
        f"{scvi['heldout_log_evidence_per_cell']:.2f} | - |"
    )
    rows.append(
        f"| held-out ELBO per cell, z = posterior mean | "
        f"{ours['heldout_elbo_per_cell_mean_z']:.2f} | - | - |"
    )
    rows.append(
        f"| training wall time, {result['epochs']} epochs (s) | {ours['train_seconds']:.1f} | "
        f"{scvi['train_seconds']:.1f} | - |"
    )
    rows.append(
        f"| seconds per epoch | {ours['train_seconds'] / result['epochs']:.3f} | "
        f"{scvi['train_seconds'] / result['epochs']:.3f} | - |"
    )
    return "\n".join(rows)


def _goals(result: dict) -> dict:
    ours, scvi, pca = result["ours"], result["scvi"], result["pca"]
    goals = {f"{m} >= scvi": ours["metrics"][m] >= scvi["metrics"][m] for m in METRICS}
    goals["heldout ELBO >= scvi"] = (
        ours["heldout_elbo_per_cell_sampled_z"] >= scvi["heldout_elbo_per_cell_sampled_z"]
    )
    goals["knn_accuracy >= PCA"] = (
        ours["metrics"]["knn_accuracy"] >= pca["metrics"]["knn_accuracy"]
    )
    goals["time ratio <= 0.5"] = result["time_ratio_ours_over_scvi"] <= 0.5
    return goals


_EXTRA = ("heldout_elbo", "heldout_log_evidence", "train_seconds")


def _quantities(result: dict) -> dict[str, dict[str, float]]:
    """Per side, the quantities the summary compares (higher is better for all)."""
    sides = {}
    for side in ("ours", "scvi", "pca"):
        values = dict(result[side]["metrics"])
        if side != "pca":
            values["heldout_elbo"] = result[side]["heldout_elbo_per_cell_sampled_z"]
            if "heldout_log_evidence_per_cell" in result[side]:
                values["heldout_log_evidence"] = result[side]["heldout_log_evidence_per_cell"]
            values["train_seconds"] = result[side]["train_seconds"]
        sides[side] = {k: float(v) for k, v in values.items() if k in (*METRICS, *_EXTRA)}
    return sides


def summarize(results: list[dict]) -> dict:
    """Means over seeds and paired differences ours - scvi-tools and ours - PCA.

    Parameters
    ----------
    results
        One ``run_seed`` result per seed.

    Returns
    -------
    dict
        ``seeds``; ``sides``: mean and SD per side and quantity; ``paired``: per
        comparison and quantity the mean difference, its standard error and the number of
        seeds where ours is at least as good (for ``train_seconds``: the time ratio instead).
    """
    per_seed = [_quantities(r) for r in results]
    n = len(per_seed)
    sides: dict[str, dict] = {}
    for side in ("ours", "scvi", "pca"):
        sides[side] = {}
        for name in per_seed[0][side]:
            values = np.array([q[side][name] for q in per_seed])
            sides[side][name] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if n > 1 else 0.0,
            }
    paired: dict[str, dict] = {}
    for other in ("scvi", "pca"):
        paired[other] = {}
        for name in per_seed[0][other]:
            if name == "train_seconds":
                ratio = np.array([q["ours"][name] / q[other][name] for q in per_seed])
                paired[other]["time_ratio"] = {
                    "mean": float(ratio.mean()),
                    "max": float(ratio.max()),
                    "per_seed": ratio.tolist(),
                }
                continue
            diff = np.array([q["ours"][name] - q[other][name] for q in per_seed])
            paired[other][name] = {
                "mean_difference": float(diff.mean()),
                "se": float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
                "ours_at_least_as_good": int((diff >= 0).sum()),
                "per_seed": diff.tolist(),
            }
    return {"seeds": [r["seed"] for r in results], "n": n, "sides": sides, "paired": paired}


def summary_table(summary: dict) -> str:
    """Markdown table of :func:`summarize`: means (SD) per side and paired differences."""
    n, sides, paired = summary["n"], summary["sides"], summary["paired"]
    rows = [
        f"Seeds {summary['seeds']} (n = {n}); mean (SD) per side; paired difference "
        "ours - other: mean +/- SE [seeds where ours is at least as good]",
        "",
        "| quantity | ours | scvi-tools | PCA(10) | ours - scvi-tools | ours - PCA |",
        "| --- | --- | --- | --- | --- | --- |",
    ]

    def cell(side: str, name: str) -> str:
        if name not in sides[side]:
            return "-"
        return f"{sides[side][name]['mean']:.3f} ({sides[side][name]['sd']:.3f})"

    def diff(other: str, name: str) -> str:
        if name not in paired[other]:
            return "-"
        d = paired[other][name]
        return f"{d['mean_difference']:+.3f} +/- {d['se']:.3f} [{d['ours_at_least_as_good']}/{n}]"

    for name in (*METRICS, "heldout_elbo", "heldout_log_evidence"):
        rows.append(
            f"| {name} | {cell('ours', name)} | {cell('scvi', name)} | {cell('pca', name)} "
            f"| {diff('scvi', name)} | {diff('pca', name)} |"
        )
    ratio = paired["scvi"]["time_ratio"]
    rows.append(
        f"| train seconds | {cell('ours', 'train_seconds')} | {cell('scvi', 'train_seconds')} "
        f"| - | ratio ours/scvi {ratio['mean']:.3f} (max {ratio['max']:.3f}) | - |"
    )
    return "\n".join(rows)


def run_seed(adata: ad.AnnData, seed: int, args) -> dict:
    """One side-by-side run: split by ``seed``, train both sides, score all three latents."""
    out = args.out / f"seed{seed}"
    out.mkdir(parents=True, exist_ok=True)
    args.seed = seed
    rng = np.random.default_rng(seed)
    order = rng.permutation(adata.n_obs)
    n_heldout = int(round(adata.n_obs * args.heldout_frac))
    split = {"train": np.sort(order[n_heldout:]), "heldout": np.sort(order[:n_heldout])}
    np.savez(out / "split.npz", **split)
    train, heldout = adata[split["train"]].copy(), adata[split["heldout"]].copy()
    labels = adata.obs[args.label_key].to_numpy()

    ours = train_ours(train, heldout, adata, args)
    scvi = train_scvi(args.data, out / "split.npz", out, args)
    pca = {"latent": pca_baseline(adata.X, 10, seed=seed)}
    for side in (ours, scvi, pca):
        side["metrics"] = embedding_metrics(side.pop("latent"), labels, seed=seed)

    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}",
        "load_average_1_5_15_at_end": os.getloadavg(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "seed": seed,
        "data": str(args.data),
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "n_train_cells": int(train.n_obs),
        "n_heldout_cells": int(heldout.n_obs),
        "epochs": args.epochs,
        "marginal_samples": args.marginal_samples,
        "threads": args.threads,
        "torch_version": torch.__version__,
        "ours": ours,
        "scvi": scvi,
        "pca": pca,
        "time_ratio_ours_over_scvi": ours["train_seconds"] / scvi["train_seconds"],
        "definitions": DEFINITIONS,
    }
    result["goals_met"] = _goals(result)
    (out / "result.json").write_text(json.dumps(result, indent=2, default=str))
    table = _table(result)
    (out / "result.md").write_text(table + "\n")
    print(f"## seed {seed}\n{table}")
    print(f"time ratio ours/scvi: {result['time_ratio_ours_over_scvi']:.3f}", flush=True)
    return result


def main() -> None:
    """Run the comparison for every seed; write per-seed results and ``summary.json``/``.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scvi-python", required=True, help="python of the scvi-tools venv")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--heldout-frac", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    parser.add_argument(
        "--marginal-samples", type=int, default=100, help="importance samples of log p(x)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="one run per seed (split and models)"
    )
    parser.add_argument(
        "--model",
        default="{}",
        help='JSON overriding our model settings, e.g. \'{"encoder_norm": "layer"}\'',
    )
    parser.add_argument(
        "--train",
        default="{}",
        help="JSON overriding our training settings, e.g. '{\"adam_eps\": 1e-8}'",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/expression_vs_scvi")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    adata = ad.read_h5ad(args.data)
    results = [run_seed(adata, seed, args) for seed in args.seeds]
    summary = summarize(results)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    (args.out / "summary.md").write_text(summary_table(summary) + "\n")
    print(summary_table(summary))


if __name__ == "__main__":
    main()
