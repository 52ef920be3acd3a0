"""How close the held-out sequences are to the training ones, and what that does to the ELBO.

Trains a protein model (``model.protein`` / ``train.protein`` of ``--preset``) and, at
every evaluation, prints the scan's Spearman ρ (4 draws) next to the held-out ELBO of the
validation sequences far from every training sequence (lowest quartile of identity to
their nearest training sequence) and of those near one (highest quartile). A random
validation split of a family alignment is mostly near-duplicates of training sequences,
so its ELBO rewards reconstructing a sequence's neighbourhood. ``--cluster-split`` trains
with ``validation_split: cluster`` (:func:`vae.data._split.cluster_split`; since it moved
into the library the focus and its neighbourhood always train and a cluster may not take
the held-out part past twice ``validation_frac``, so its splits differ from the ad hoc
version behind the first cluster-split figures in BENCHMARKS.md).

Example (paths relative to the repository root)::

    .venv/bin/python benchmarks/protein_split_identity.py --name DYR_ECOLI \\
        --alignment ../shared/data/protein/DYR_ECOLI.a2m \\
        --dms ../shared/data/protein/DYR_ECOLI_dms.csv --steps 1500
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from vae._alphabet import PROTEIN_ALPHABET
from vae._io import read_h5ad
from vae.data import encode_variants, read_scan
from vae.metrics import scan_spearman
from vae.model import SequenceModel
from vae.steps import preprocess_protein
from vae.train import TrainConfig

GAP = PROTEIN_ALPHABET.index("-")


def nearest_identity(codes: np.ndarray, queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """For each query row, the identity (over its non-gap columns) to its closest reference row."""
    out = np.zeros(len(queries))
    for i, row in enumerate(queries):
        kept = codes[row] != GAP
        out[i] = (codes[reference][:, kept] == codes[row][kept]).mean(1).max()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--alignment", required=True)
    parser.add_argument("--dms", required=True)
    parser.add_argument("--preset", default="config/real-data.yaml")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/out/protein_split_identity")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--cluster-split",
        type=float,
        default=None,
        metavar="IDENTITY",
        help="validate on held-out clusters at this identity instead of a random split "
        "(train.validation_split: cluster)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.out) / f"{args.name}.h5ad"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        preprocess_protein(args.alignment, data, device="cpu")
    adata = read_h5ad(data)
    preset = yaml.safe_load(Path(args.preset).read_text())
    train_kwargs = dict(preset["train"]["protein"])
    train_kwargs.pop("monitor_draws", None)
    train_kwargs |= {"max_steps": args.steps, "eval_every": args.eval_every}
    train_kwargs |= {"checkpoint_every": 0, "seed": args.seed}
    if args.cluster_split is not None:
        train_kwargs |= {"validation_split": "cluster", "validation_identity": args.cluster_split}
    config = TrainConfig(**train_kwargs)
    model = SequenceModel.from_anndata(adata, **preset["model"]["protein"])
    scan, _ = read_scan(args.dms)
    info = model.info
    variants = encode_variants(
        list(scan["mutant"]), info["positions"], info["focus_residues"], source=args.dms
    )
    fitness = scan.set_index("mutant").loc[variants.names, "fitness"].to_numpy()
    codes = np.asarray(adata.X)
    train, val = (t.numpy() for t in model.validation_split(adata, config))
    identity = nearest_identity(codes, val, train)
    low, high = np.quantile(identity, [0.25, 0.75])
    far, near = val[identity < low], val[identity >= high]
    print(
        json.dumps(
            {
                "identity_quartiles": np.quantile(identity, [0.25, 0.5, 0.75]).round(3).tolist(),
                "n_far": len(far),
                "n_near": len(near),
            }
        ),
        flush=True,
    )
    rows = []
    val_all = val

    def monitor() -> dict[str, float]:
        row = {
            "step": (len(rows) + 1) * args.eval_every,
            "rho": scan_spearman(model.score_variants(variants.codes, n_samples=4), fitness),
            "elbo_far": float(model.elbo(adata[far]).mean()),
            "elbo_near": float(model.elbo(adata[near]).mean()),
            "elbo_val": float(model.elbo(adata[val_all]).mean()),
        }
        rows.append(row)
        print(json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
        return {}

    model.train(adata, config, monitor=monitor)
    pd.DataFrame(rows).to_csv(Path(args.out) / f"{args.name}.tsv", sep="\t", index=False)


if __name__ == "__main__":
    main()
