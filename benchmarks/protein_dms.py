"""Learning curves of the protein VAE on deep mutational scans, next to the site-independent model.

For each seed: preprocess the alignment (cached), train with the given model and training
settings, and at every evaluation score the scan's variants (Spearman ρ, few draws) and,
with labels, the ClinVar AUC; at the end score them with ``--draws`` draws by the ELBO and
by the importance-weighted evidence. The site-independent model is fit on the same
training split and scored on the same variants. Writes ``curve.tsv`` and ``summary.json``.
``--train '{"validation_split": "cluster"}'`` validates on held-out clusters (the split
the model chooses, :meth:`~vae.model.SequenceModel.validation_split`).

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
from _variant_targets import VariantTargets, add_target_arguments
from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

from vae._io import read_h5ad
from vae.data._mutants import focus_codes
from vae.metrics import scan_spearman
from vae.model import SequenceModel
from vae.model._site_independent import SiteIndependentModel
from vae.provenance import cpu_capability
from vae.steps import preprocess_protein
from vae.train import TrainConfig


def latent_probe(model: SequenceModel, codes: np.ndarray, fitness: np.ndarray) -> dict:
    """ρ of single-mutant scores read off the decoder at shrunken wild-type latents.

    The profile scoring of the workflow (``score.estimator: profile``) at
    ``latent_shrink`` 0, 0.25, 0.5 and 1.
    """
    wild_type = focus_codes(model.info["focus_residues"])
    single = (codes != wild_type).sum(1) == 1
    return {
        f"latent_probe_{shrink}": scan_spearman(
            model.score_variants(codes[single], estimator="profile", latent_shrink=shrink),
            fitness[single],
        )
        for shrink in (0.0, 0.25, 0.5, 1.0)
    }


def subsample_alignment(path: Path, fraction: float, seed: int, out: Path) -> Path:
    """Write the focus (first record) and a seeded ``fraction`` of the other records."""
    from vae.data._msa import read_records

    records = read_records(path)
    rng = np.random.default_rng(seed)
    keep = np.flatnonzero(rng.random(len(records) - 1) < fraction) + 1
    out.parent.mkdir(parents=True, exist_ok=True)
    target = out.with_name(f"{out.name}.a2m")
    chosen = [records[0]] + [records[i] for i in keep]
    SeqIO.write(
        (SeqRecord(Seq(seq), id=rid, description="") for rid, seq in chosen), target, "fasta-2line"
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
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
    parser.add_argument(
        "--subsample",
        type=float,
        default=None,
        metavar="FRACTION",
        help="keep the focus and this fraction of the alignment's other records (a shallower "
        "alignment of the same family), drawn with --subsample-seed",
    )
    parser.add_argument("--subsample-seed", type=int, default=0)
    parser.add_argument(
        "--probe-latent",
        action="store_true",
        help="also score the scan's singles by the decoder at z = s * E[z | wild type], "
        "s in 0, 0.25, 0.5, 1 (s = 0: the family-average decoder; 1: the wild type's)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    out = Path(args.out) / args.name / Path(args.preset).stem
    out.mkdir(parents=True, exist_ok=True)
    alignment, tag = Path(args.alignment), f"theta{args.theta}"
    if args.subsample is not None:
        tag += f"_sub{args.subsample}_{args.subsample_seed}"
        alignment = subsample_alignment(
            alignment, args.subsample, args.subsample_seed, Path(args.out) / args.name / tag
        )
        out = out.with_name(f"{out.name}_{tag}")
        out.mkdir(parents=True, exist_ok=True)
    data = Path(args.out) / args.name / f"preprocessed_{tag}.h5ad"
    if not data.exists():
        preprocess_protein(alignment, data, theta=args.theta, device="cpu")
    adata = read_h5ad(data)
    preset = yaml.safe_load(Path(args.preset).read_text())
    model_kwargs = preset["model"]["protein"] | json.loads(args.model)
    train_kwargs = preset["train"]["protein"] | json.loads(args.train)
    preset_draws = train_kwargs.pop("monitor_draws", 4)
    monitor_draws = args.monitor_draws if args.monitor_draws is not None else preset_draws

    info_model = SequenceModel.from_anndata(adata, **model_kwargs)
    positions, residues = info_model.info["positions"], info_model.info["focus_residues"]
    targets = VariantTargets.load(args, positions, residues)
    raw, from_raw, metrics = targets.scores, targets.measure, targets.metrics

    rows, finals, members = [], [], []
    for seed in args.seeds:
        config = TrainConfig(**train_kwargs | {"seed": seed})
        model = SequenceModel.from_anndata(adata, **model_kwargs)
        started = time.perf_counter()
        train_index, val_index = (t.numpy() for t in model.validation_split(adata, config))
        split_seconds = time.perf_counter() - started
        site = SiteIndependentModel(positions, residues).fit(
            np.asarray(adata.X)[train_index], adata.obs["weight"].to_numpy()[train_index]
        )
        site_metrics = metrics(site.score_variants)
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
        final |= {
            "n_train": int(train_index.size),
            "n_val": int(val_index.size),
            "n_dropped": model.info["train"]["n_dropped"],
            "split_seconds": split_seconds,
        }
        for estimator in ("elbo", "evidence"):
            started = time.perf_counter()
            values = raw(
                lambda c, e=estimator, m=model: m.score_variants(
                    c, n_samples=args.draws, estimator=e
                )
            )
            if estimator == "elbo":
                members.append(values)
            final |= {f"{estimator}_{k}": v for k, v in from_raw(values).items()}
            final[f"{estimator}_score_seconds"] = time.perf_counter() - started
        final |= {f"site_independent_{k}": v for k, v in site_metrics.items()}
        if args.probe_latent and targets.scan is not None:
            final |= latent_probe(model, targets.scan.codes, targets.fitness)
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
        "ensemble_of_seeds": {
            f"elbo_{k}": v
            for k, v in from_raw(
                {key: np.mean([m[key] for m in members], 0) for key in members[0]}
            ).items()
        },
        "mean": frame.mean(numeric_only=True).to_dict(),
        "sd": frame.std(numeric_only=True).to_dict(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("mean", "sd", "ensemble_of_seeds")}, indent=1))


if __name__ == "__main__":
    main()
