"""Wall time and peak memory of ``vae map`` for a large query, in a child process.

Steps (outputs under ``--out``, reused when present):

1. a reference of ``--reference-cells`` cells from ``generate_counts.py`` (batches b0, b1),
   preprocessed and trained for ``--reference-steps`` steps (``vae.steps``);
2. a query of ``--n-cells`` cells with the reference's genes (``generate_counts.py``, same
   seed: the same cell-type profiles), its batches renamed q0, q1 so that both are new to
   the model (surgery: only their batch columns are trained);
3. ``vae map MODEL QUERY OUTPUT --epochs E --backed B`` in a child process (torch and BLAS
   on one thread), timed; its peak resident memory is the child's own ``ru_maxrss``
   (``os.wait4``).

Writes ``mapping_scale_<n>.json`` under ``--out`` (wall seconds, peak RSS, the query
training record of the manifest, the label-transfer metrics).

Usage::

    .venv/bin/python benchmarks/mapping_scale.py --n-cells 100000 --epochs 1
    .venv/bin/python benchmarks/mapping_scale.py --n-cells 1000000 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import h5py
import torch

from vae import steps

ROOT = Path(__file__).resolve().parents[1]
GENERATE = Path(__file__).with_name("generate_counts.py")
CHILD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def generate(path: Path, n_cells: int, n_genes: int, seed: int) -> None:
    """Write ``n_cells`` synthetic cells with ``generate_counts.py`` unless ``path`` exists."""
    if path.is_file():
        return
    command = [sys.executable, str(GENERATE), str(path), "--n-cells", str(n_cells)]
    command += ["--n-genes", str(n_genes), "--seed", str(seed)]
    subprocess.run(command, check=True)


def rename_batches(path: Path, prefix: str) -> None:
    """Rename the batch categories of an ``.h5ad`` in place (``b0`` -> ``q0``); X untouched."""
    with h5py.File(path, "r+") as handle:
        obs = ad.io.read_elem(handle["obs"])
        categories = obs["batch"].cat.categories
        if all(str(c).startswith(prefix) for c in categories):
            return
        obs["batch"] = obs["batch"].cat.rename_categories([f"{prefix}{c[1:]}" for c in categories])
        del handle["obs"]
        ad.io.write_elem(handle, "obs", obs)


def reference_model(out: Path, n_cells: int, n_genes: int, n_steps: int) -> Path:
    """Preprocess and train the reference (once); return its model folder."""
    model = out / "reference_model"
    if (model / "model.pt").is_file():
        return model
    raw = out / f"reference_{n_cells}.h5ad"
    generate(raw, n_cells, n_genes, seed=0)
    data = out / "reference_preprocessed.h5ad"
    steps.preprocess_expression(raw, data, label_key="cell_type", batch_key="batch")
    steps.train_model(
        data,
        model,
        out / "reference_history.tsv",
        domain="expression",
        model_kwargs={"n_latent": 10, "n_hidden": 128},
        train_kwargs={"max_steps": n_steps, "batch_size": 128, "eval_every": n_steps},
        device="cpu",
    )
    return model


def run_map(model: Path, query: Path, output: Path, epochs: int, backed: str) -> dict:
    """Run ``vae map`` in a child process; return its wall time, peak RSS and report."""
    command = [sys.executable, "-c", "from vae.cli import main; main()", "map"]
    command += [str(model), str(query), str(output), "--epochs", str(epochs)]
    command += ["--backed", backed, "--device", "cpu"]
    log = output.with_suffix(".log")
    started = time.perf_counter()
    with log.open("w") as err, output.with_suffix(".stdout").open("w") as out:
        child = subprocess.Popen(command, env=os.environ | CHILD_ENV, stdout=out, stderr=err)
        # wait4: the resource usage of this child alone (ru_maxrss in KiB on Linux)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        sys.exit(f"vae map failed (exit {child.returncode}):\n{log.read_text()[-3000:]}")
    report = json.loads(output.with_suffix(".stdout").read_text())
    return {"wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "report": report}


def main() -> None:
    """Generate the data, train the reference, map the query; write the JSON record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=100_000, help="query cells")
    parser.add_argument("--n-genes", type=int, default=2000)
    parser.add_argument("--reference-cells", type=int, default=20_000)
    parser.add_argument("--reference-steps", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=1, help="query training epochs")
    parser.add_argument("--backed", choices=["auto", "true", "false"], default="true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/mapping_scale")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    args.out.mkdir(parents=True, exist_ok=True)

    model = reference_model(args.out, args.reference_cells, args.n_genes, args.reference_steps)
    query = args.out / f"query_{args.n_cells}.h5ad"
    generate(query, args.n_cells, args.n_genes, seed=0)
    rename_batches(query, "q")
    output = args.out / f"mapped_{args.n_cells}_{args.backed}.h5ad"
    result = run_map(model, query, output, args.epochs, args.backed)
    manifest = json.loads(output.with_name(f"{output.stem}.manifest.json").read_text())
    record = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": f"{platform.processor() or platform.machine()}, nproc={os.cpu_count()}",
        "n_cells": args.n_cells,
        "n_genes": args.n_genes,
        "query_file_gb": query.stat().st_size / 1e9,
        "epochs": args.epochs,
        "backed": args.backed,
        "wall_seconds": result["wall_seconds"],
        "peak_rss_mb": result["peak_rss_mb"],
        "mapping": manifest["mapping"],
        "map_wall_seconds_in_manifest": manifest.get("wall_seconds"),
        "metrics": result["report"].get("metrics"),
        "load_average_1_5_15_at_end": os.getloadavg(),
    }
    path = args.out / f"mapping_scale_{args.n_cells}_{args.backed}.json"
    path.write_text(json.dumps(record, indent=2, default=str))
    print(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
