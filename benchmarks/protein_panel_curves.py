"""Score trajectories of the protein VAE over the development panel, for choosing defaults.

For every protein dataset of a sheet with a scan (``dms``) or ClinVar labels and every seed:
preprocess the alignment (cached), train with the preset's settings (overridden by
``--model`` / ``--train``) to ``--max-steps``, and at every evaluation score the
variants with ``--draws`` common draws. Each run writes
``<out>/<dataset>/seed<k>.npz`` with the scores at every evaluation (``steps`` x
variants), the site-independent scores fitted on the same training split, the targets
(scan fitness or 0/1 labels), the history (ELBO, KL) and the family's size (N, Neff, L).
``protein_panel_select.py`` chooses settings from these files by leave-one-family-out.

Example (paths relative to the repository root; one process per core)::

    .venv/bin/python benchmarks/protein_panel_curves.py --sheet config/datasets-panel.tsv \\
        --data-dir ../shared/data --seeds 0 1 2 --max-steps 800 --eval-every 25 \\
        --out benchmarks/out/protein_panel/default
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
from _variant_targets import VariantTargets
from protein_dms import subsample_alignment

from vae._io import read_h5ad
from vae.model import SequenceModel
from vae.provenance import cpu_capability
from vae.steps import preprocess_protein
from vae.train import TrainConfig


def panel_rows(sheet: Path, data_dir: Path, names: list[str] | None) -> list[dict]:
    """Protein rows of ``sheet`` with a scan or labels, paths resolved under ``data_dir``."""
    table = pd.read_csv(sheet, sep="\t", dtype=str).fillna("")
    rows = []
    for row in table.to_dict("records"):
        if row["domain"] != "protein" or not (row.get("dms") or row.get("labels")):
            continue
        if names and row["dataset"] not in names:
            continue
        rows.append(
            {
                "name": row["dataset"],
                "alignment": str(data_dir / row["source"]),
                "dms": str(data_dir / row["dms"]) if row.get("dms") else None,
                "labels": str(data_dir / row["labels"]) if row.get("labels") else None,
            }
        )
    if names:  # in the order asked for
        rows.sort(key=lambda row: names.index(row["name"]))
    return rows


def target_arrays(targets: VariantTargets) -> dict[str, np.ndarray]:
    """What each target is measured against: scan fitness, or 0/1 labels (NaN: unlabelled)."""
    out = {}
    if targets.scan is not None:
        out["target_scan"] = np.asarray(targets.fitness, dtype=float)
    if targets.labels is not None:
        table = targets.label_table.drop_duplicates("mutant").set_index("mutant")["label"]
        out["target_labels"] = table.reindex(targets.labels.names).to_numpy(dtype=float)
    return out


def run_one(row: dict, seed: int, args: argparse.Namespace, out: Path) -> None:
    """Train one model of one family and write its score trajectory."""
    target = out / row["name"] / f"seed{seed}.npz"
    if target.exists():
        logging.info("%s exists, skipped", target)
        return
    tag = "" if args.subsample is None else f"_sub{args.subsample}"
    cache = Path(args.cache) / f"{row['name']}{tag}.h5ad"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        alignment = Path(row["alignment"])
        if args.subsample is not None:  # a shallower alignment of the same family
            alignment = subsample_alignment(
                alignment, args.subsample, 0, cache.with_name(f"{row['name']}{tag}")
            )
        preprocess_protein(alignment, cache, theta=0.2, device="cpu")
    adata = read_h5ad(cache)
    preset = yaml.safe_load(Path(args.preset).read_text())
    model_kwargs = preset["model"]["protein"] | json.loads(args.model)
    train_kwargs = preset["train"]["protein"] | json.loads(args.train)
    train_kwargs.pop("monitor_draws", None)
    train_kwargs |= {"max_steps": args.max_steps, "eval_every": args.eval_every}
    train_kwargs |= {"checkpoint_every": 0, "seed": seed}
    model = SequenceModel.from_anndata(adata, **model_kwargs)
    targets = VariantTargets.load(
        argparse.Namespace(
            name=row["name"], dms=row["dms"], labels=row["labels"], score_column="score"
        ),
        model.info["positions"],
        model.info["focus_residues"],
    )
    config = TrainConfig(**train_kwargs)
    trajectory: dict[str, list[np.ndarray]] = {key: [] for key in targets.codes()}
    probes: dict[str, list[np.ndarray]] = {}
    clock = {"start": time.perf_counter(), "monitor": 0.0}

    def monitor() -> dict[str, float]:
        started = time.perf_counter()
        values = targets.scores(lambda c: model.score_variants(c, n_samples=args.draws))
        for key, value in values.items():
            trajectory[key].append(value.astype(np.float32))
        for key, codes in targets.codes().items():
            for shrink in args.probe:  # the workflow's profile scoring at this shrinkage
                value = model.score_variants(codes, estimator="profile", latent_shrink=shrink)
                probes.setdefault(f"probe{shrink}_{key}", []).append(value.astype(np.float32))
        row_metrics = targets.measure(values)
        clock["monitor"] += time.perf_counter() - started
        seconds = time.perf_counter() - clock["start"] - clock["monitor"]
        return {f"monitor_{k}": v for k, v in row_metrics.items()} | {"train_seconds": seconds}

    result = model.train(adata, config, monitor=monitor)
    history = result.history
    site = model.site_independent_baseline(adata)  # on the same training split
    arrays = {f"vae_{key}": np.stack(value) for key, value in trajectory.items()}
    arrays |= {key: np.stack(value) for key, value in probes.items()}
    arrays |= {f"si_{key}": site.score_variants(c) for key, c in targets.codes().items()}
    arrays |= target_arrays(targets)
    meta = {
        "name": row["name"],
        "seed": seed,
        "subsample": args.subsample,
        "n_sequences": int(adata.n_obs),
        "neff": float(adata.obs["weight"].sum()),
        "length": int(adata.n_vars),
        "model": model_kwargs,
        "train": train_kwargs,
        "draws": args.draws,
        "machine": {"cpu": cpu_capability(), "threads": args.threads, "node": platform.node()},
        "torch": torch.__version__,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        target,
        steps=history["step"].to_numpy(),
        history=history.to_json(orient="records"),
        meta=json.dumps(meta),
        **arrays,
    )
    logging.info(
        "%s seed %d: %d steps in %.0f s; last %s",
        row["name"],
        seed,
        result.steps,
        float(history["train_seconds"].iloc[-1]),
        {k: round(v, 3) for k, v in history.filter(like="monitor_").iloc[-1].items()},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sheet", default="config/datasets-panel.tsv")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument(
        "--names", nargs="*", help="only these datasets of the sheet, in this order"
    )
    parser.add_argument("--preset", default="config/real-data.yaml")
    parser.add_argument("--model", default="{}", help="JSON of model settings over the preset")
    parser.add_argument("--train", default="{}", help="JSON of training settings over the preset")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-steps", type=int, default=800)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--draws", type=int, default=8, help="common draws per evaluation")
    parser.add_argument("--out", default="benchmarks/out/protein_panel/default")
    parser.add_argument("--cache", default="benchmarks/out/protein_panel/preprocessed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--subsample",
        type=float,
        default=None,
        metavar="FRACTION",
        help="keep the focus and this seeded fraction of each alignment's other records",
    )
    parser.add_argument(
        "--probe",
        type=float,
        nargs="*",
        default=[],
        metavar="S",
        help="also save the profile scores at latent_shrink S (the decoder read at "
        "z = S * E[z | wild type], score.estimator: profile)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    rows = panel_rows(Path(args.sheet), Path(args.data_dir), args.names)
    for row in rows:
        for seed in args.seeds:
            run_one(row, seed, args, Path(args.out))


if __name__ == "__main__":
    main()
