"""A trained protein model and the site-independent model on a scan with multiple mutants.

Scores every genotype of the scan that lies in the model's columns (the same route as the
workflow's ``dms`` evaluation, :func:`vae.metrics.evaluate_scan`) and prints Spearman ρ of
both models overall, for singles, for multiples and by number of mutations, with the wall
time. Example (after the workflow trained GFP_AEQVI with ``config/real-data.yaml``)::

    .venv/bin/python benchmarks/protein_multi_mutants.py results/protein/GFP_AEQVI \\
        ../shared/data/protein/GFP_AEQVI_all_variants.csv --score-column fitness
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from vae._io import read_h5ad
from vae.metrics import evaluate_scan, scan_spearman
from vae.model import load_model
from vae.provenance import cpu_capability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "dataset", help="results/protein/{dataset} with model/ and preprocessed.h5ad"
    )
    parser.add_argument("scan")
    parser.add_argument("--score-column", default="score")
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/out/protein_multi_mutants.csv")
    args = parser.parse_args()
    folder = Path(args.dataset)
    model = load_model(folder / "model")
    adata = read_h5ad(folder / "preprocessed.h5ad")
    site = model.site_independent_baseline(adata)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    metrics = evaluate_scan(
        model,
        site,
        args.scan,
        args.out,
        score_column=args.score_column,
        score_settings={"n_samples": args.draws},
    )
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    table = pd.read_csv(args.out)
    by_count = {}
    for k, group in table.groupby(np.minimum(table["n_mutations"], 4)):
        by_count[f"{k}{'+' if k == 4 else ''}"] = {
            "n": len(group),
            "vae": scan_spearman(group["evol_index"].to_numpy(), group["fitness"].to_numpy()),
            "site_independent": scan_spearman(
                group["site_independent"].to_numpy(), group["fitness"].to_numpy()
            ),
        }
    metrics["by_n_mutations"] = by_count
    metrics["compute"] = cpu_capability()
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
