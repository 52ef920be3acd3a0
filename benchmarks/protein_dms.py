"""Learning curves of the protein VAE on deep mutational scans, next to the site-independent model.

For each seed: preprocess the alignment (cached), train with the given model and training
settings, and at every evaluation score the scan's variants (Spearman ρ, few draws) and,
with labels, the ClinVar AUC; at the end score them with ``--draws`` draws by the ELBO and
by the importance-weighted evidence. The site-independent model is fit on the same
training split and scored on the same variants. Writes ``curve.tsv`` and ``summary.json``.

Example (paths relative to the repository root)::

    .venv/bin/python benchmarks/protein_dms.py --name DYR_ECOLI \\
        --alignment ../shared/data/protein/DYR_ECOLI.a2m \\
        --dms ../shared/data/protein/DYR_ECOLI_dms.csv \\
        --preset config/real-data.yaml --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from scipy.stats import spearmanr

from vae.data import read_variant_labels
from vae.data._mutants import encode_variants
from vae.metrics import variant_auc
from vae.model import SequenceModel
from vae.model._site_independent import SiteIndependentModel
from vae.provenance import cpu_capability
from vae.steps import preprocess_protein, read_h5ad
from vae.train import TrainConfig
from vae.train._trainer import split_indices


def _rho(evol_index: np.ndarray, fitness: np.ndarray) -> float:
    # evol_index: higher = more damaging; fitness: higher = fitter
    return float(spearmanr(-evol_index, fitness).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--alignment", required=True)
    parser.add_argument("--dms", help="CSV with mutant and a fitness column (higher = fitter)")
    parser.add_argument("--score-column", default="score")
    parser.add_argument("--labels", help="ClinVar-style label CSV")
    parser.add_argument(
        "--preset",
        default="config/real-data.yaml",
        help="config file whose model.protein and train.protein are used",
    )
    parser.add_argument("--model", default="{}", help="JSON of model settings over the preset")
    parser.add_argument("--train", default="{}", help="JSON of training settings over the preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--monitor-draws", type=int, default=None, help="default: the preset's")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/out/protein_dms")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--theta", type=float, default=0.2, help="sequence-weight identity")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    out = Path(args.out) / args.name / Path(args.preset).stem
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.out) / args.name / f"preprocessed_theta{args.theta}.h5ad"
    if not data.exists():
        preprocess_protein(args.alignment, data, theta=args.theta, device="cpu")
    adata = read_h5ad(data)
    preset = yaml.safe_load(Path(args.preset).read_text())
    model_kwargs = preset["model"]["protein"] | json.loads(args.model)
    train_kwargs = preset["train"]["protein"] | json.loads(args.train)
    preset_draws = train_kwargs.pop("monitor_draws", 4)
    monitor_draws = args.monitor_draws if args.monitor_draws is not None else preset_draws

    info_model = SequenceModel.from_anndata(adata, **model_kwargs)
    positions, residues = info_model.info["positions"], info_model.info["focus_residues"]
    scan = labels = None
    if args.dms:
        table = pd.read_csv(args.dms)
        scan = encode_variants(list(table["mutant"]), positions, residues, source=args.dms)
        fitness = table.set_index("mutant").loc[scan.names, args.score_column].to_numpy()
    if args.labels:
        label_table = read_variant_labels(args.labels, args.name)
        labels = encode_variants(
            list(label_table["mutant"]), positions, residues, source=args.labels
        )

    def metrics(score) -> dict[str, float]:
        row = {}
        if scan is not None:
            row["spearman"] = _rho(score(scan.codes), fitness)
        if labels is not None:
            values = pd.DataFrame({"mutant": labels.names, "evol_index": score(labels.codes)})
            row["roc_auc"] = variant_auc(values, label_table).get("roc_auc", float("nan"))
        return row

    rows, finals = [], []
    for seed in args.seeds:
        config = TrainConfig(**train_kwargs | {"seed": seed})
        train_index = split_indices(adata.n_obs, config.validation_frac, seed)[0].numpy()
        site = SiteIndependentModel(positions, residues).fit(
            np.asarray(adata.X)[train_index], adata.obs["weight"].to_numpy()[train_index]
        )
        site_metrics = metrics(site.score_variants)
        model = SequenceModel.from_anndata(adata, **model_kwargs)
        clock = {"start": time.perf_counter(), "monitor": 0.0}

        def monitor(model=model, clock=clock) -> dict[str, float]:
            started = time.perf_counter()
            row = metrics(lambda c: model.score_variants(c, n_samples=monitor_draws))
            clock["monitor"] += time.perf_counter() - started
            train_seconds = time.perf_counter() - clock["start"] - clock["monitor"]
            return {f"monitor_{k}": v for k, v in row.items()} | {"train_seconds": train_seconds}

        result = model.train(adata, config, monitor=monitor)
        history = result.history.assign(seed=seed)
        for key, value in site_metrics.items():
            history[f"site_independent_{key}"] = value
        rows.append(history)
        final = {"seed": seed, "best_step": result.extra["best_step"], "steps": result.steps}
        for estimator in ("elbo", "evidence"):
            started = time.perf_counter()
            scored = metrics(
                lambda c, e=estimator, m=model: m.score_variants(
                    c, n_samples=args.draws, estimator=e
                )
            )
            final |= {f"{estimator}_{k}": v for k, v in scored.items()}
            final[f"{estimator}_score_seconds"] = time.perf_counter() - started
        final |= {f"site_independent_{k}": v for k, v in site_metrics.items()}
        final["train_seconds"] = float(history["train_seconds"].iloc[-1])
        final["best_val_elbo"] = result.extra["best_elbo"]
        finals.append(final)
        print(json.dumps(final), flush=True)
        pd.concat(rows).to_csv(out / "curve.tsv", sep="\t", index=False)
    frame = pd.DataFrame(finals)
    summary = {
        "name": args.name,
        "preset": args.preset,
        "model": model_kwargs,
        "train": train_kwargs,
        "draws": args.draws,
        "machine": {"cpu": cpu_capability(), "threads": args.threads, "node": platform.node()},
        "torch": torch.__version__,
        "per_seed": finals,
        "mean": frame.mean(numeric_only=True).to_dict(),
        "sd": frame.std(numeric_only=True).to_dict(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({"mean": summary["mean"], "sd": summary["sd"]}, indent=1))


if __name__ == "__main__":
    main()
