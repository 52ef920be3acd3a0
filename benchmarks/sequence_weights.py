"""Benchmark: sequence weights (theta 0.2) on a generated 100,000 x 500 alignment.

Each measurement runs in its own process so that its peak memory (ru_maxrss) is its own.
Ours (``vae.data.sequence_weights`` on the CPU) runs on the full alignment; the peers run
on a subset, side by side with ours on the same subset, and the ratio is reported:

* ``eve-numpy``: EVE's original weights (one-hot rows, one ``np.dot`` per sequence;
  ``compute_sequence_weights`` in EVE's ``utils/weights.py``);
* ``eve-numba``: EVE's EVCouplings-derived numba kernel
  (``calc_num_cluster_members_nogaps_parallel``).

Both peers are imported from a scratch copy of EVE's code (``--eve-src``), never from
this project. Without ``--eve-src`` only our figures are measured.

Usage::

    python benchmarks/sequence_weights.py --eve-src /work/eve_scratch --out benchmarks/out
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GAP = 20


def generate_alignment(n: int, length: int, seed: int = 0) -> np.ndarray:
    """Index-encoded alignment with family structure, like a jackhmmer MSA.

    A root sequence is mutated into 200 subfamilies (50 % of columns resampled), each
    into 20 clades (20 %), and each sequence from its clade (0-15 %); every sequence
    is a fragment with gapped ends (0-20 % of the length) and 3 % internal gaps.
    """
    rng = np.random.default_rng(seed)

    def mutate(parent: np.ndarray, rate: np.ndarray | float) -> np.ndarray:
        child = parent.copy()
        hit = rng.random(child.shape) < np.asarray(rate).reshape(-1, 1)
        child[hit] = rng.integers(0, 20, hit.sum())
        return child

    root = rng.integers(0, 20, (1, length))
    families = mutate(np.repeat(root, 200, 0), 0.5)
    clades = mutate(np.repeat(families, 20, 0), 0.2)
    codes = mutate(clades[rng.integers(0, clades.shape[0], n)], rng.uniform(0, 0.15, n))
    starts = (rng.uniform(0, 0.1, n) * length).astype(int)
    ends = length - (rng.uniform(0, 0.1, n) * length).astype(int)
    columns = np.arange(length)
    codes[(columns < starts[:, None]) | (columns >= ends[:, None])] = GAP
    codes[rng.random(codes.shape) < 0.03] = GAP
    return codes.astype(np.uint8)


def _measure(method: str, n: int, length: int, eve_src: str | None) -> dict:
    codes = generate_alignment(n, length)
    if method == "ours":
        from vae.data import sequence_weights

        sequence_weights(codes[:300], theta=0.2)  # compile the kernel outside the timing
        started = time.perf_counter()
        weights = sequence_weights(codes, theta=0.2)
    else:
        sys.path.insert(0, eve_src)
        from utils import weights as eve_weights  # EVE's module, from the scratch copy

        if method == "eve-numpy":
            one_hot = np.eye(21, dtype=np.float64)[codes][..., :20]
            started = time.perf_counter()
            weights = eve_weights.compute_sequence_weights(one_hot, theta=0.2, num_cpus=1)
        else:
            kernel = eve_weights.calc_num_cluster_members_nogaps_parallel
            kernel(codes[:300], 0.8, GAP)  # compile outside the timing
            started = time.perf_counter()
            weights = 1.0 / kernel(codes, 0.8, GAP)
    seconds = time.perf_counter() - started
    return {
        "method": method,
        "n": n,
        "length": length,
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "neff": float(np.sum(weights)),
    }


def _run_child(method: str, n: int, length: int, eve_src: str | None) -> dict:
    command = [sys.executable, __file__, "--child", method, "--n", str(n)]
    command += ["--length", str(length)]
    if eve_src:
        command += ["--eve-src", eve_src]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and write JSON + Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--length", type=int, default=500)
    parser.add_argument("--peer-n", type=int, default=10_000, help="subset for EVE's numba kernel")
    parser.add_argument(
        "--numpy-n", type=int, default=2_000, help="subset for EVE's numpy weights (slowest)"
    )
    parser.add_argument("--eve-src", help="scratch copy of EVE's code (not part of the project)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child, args.n, args.length, args.eve_src)))
        return

    rows = [_run_child("ours", args.n, args.length, None)]
    if args.eve_src:
        for peer, n in (("eve-numba", args.peer_n), ("eve-numpy", args.numpy_n)):
            rows.append(_run_child("ours", n, args.length, None))
            rows.append(_run_child(peer, n, args.length, args.eve_src))
    load = os.getloadavg()[0]
    lines = [
        f"sequence weights, theta 0.2, generated alignment, {os.cpu_count()} CPUs "
        f"({platform.machine()}), load average at the end {load:.1f}",
        "",
        "| method | sequences | columns | seconds | peak RSS (MB) | Neff |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['n']} | {r['length']} | {r['seconds']:.2f} | "
        f"{r['peak_rss_mb']:.0f} | {r['neff']:.1f} |"
        for r in rows
    ]
    for ours, peer in zip(rows[1::2], rows[2::2], strict=True):
        ratio = peer["seconds"] / ours["seconds"]
        lines.append(f"\n{peer['method']} / ours at {peer['n']} sequences: {ratio:.1f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "sequence_weights.json").write_text(json.dumps(rows, indent=2))
    (args.out / "sequence_weights.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
