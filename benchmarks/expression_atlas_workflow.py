"""Atlas-scale expression run through the Snakemake workflow: every job's wall, peak RSS, disk.

Generates (once, with ``generate_counts.py``) raw counts of ``--cells`` x ``--genes`` with a
``--batches``-batch ``obs["batch"]`` and about 2,000 detected genes per cell
(``--mean-log-library 8.5``), writes a one-row dataset sheet and a config into ``--work``
(``data_dir`` pointing at the counts, ``n_top_genes``, ``batch_key: batch``,
``label_key: cell_type``, ``train.expression.max_steps``, ``backed: auto``,
``chunked: auto``, evaluate defaults) and runs the workflow there with
``snakemake --cores N``, one target at a time in the DAG's order, so that each Snakemake
invocation runs exactly one job:

    preprocess_expression -> train_model -> embed_dataset -> evaluate_expression ->
    sample_expression -> plot_training -> plot_latent -> plot_metrics_table

For each job it records, from ``os.wait4`` on the Snakemake process: wall seconds, peak
resident memory (``ru_maxrss``: the largest process of the whole tree, Snakemake's own
process included, exact) and bytes written to disk by the tree (``ru_oublock`` x 512);
from a poller of ``/proc`` every 0.2 s: the job script's own peak RSS (``VmHWM``) and
command line; the sizes of the job's outputs; and for ``train_model`` the rule's own
``benchmark:`` file (``max_rss``). A last ``snakemake -n`` checks that the default target
(``all``) has nothing left to do. Writes ``report.json`` and ``report.md`` (a table) into
``--work``. The generated counts are deleted at the end when larger than
``--delete-input-above-gb`` (the report gives the command that regenerates them).

Usage::

    .venv/bin/python benchmarks/expression_atlas_workflow.py            # 1M x 33k, 300 steps
    .venv/bin/python benchmarks/expression_atlas_workflow.py --cells 20000 \\
        --work benchmarks/out/atlas_workflow_smoke                     # a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PY = Path(sys.executable)
SNAKEMAKE = PY.parent / "snakemake"
DATASET = "atlas"

#: (rule, target, outputs to size) in the DAG's order; one Snakemake invocation each.
RESULTS = f"results/expression/{DATASET}"
JOBS = [
    ("preprocess_expression", f"{RESULTS}/preprocessed.h5ad", [f"{RESULTS}/preprocessed.h5ad"]),
    ("train_model", f"{RESULTS}/model", [f"{RESULTS}/model", f"{RESULTS}/history.tsv"]),
    ("embed_dataset", f"{RESULTS}/embedding.h5ad", [f"{RESULTS}/embedding.h5ad"]),
    ("evaluate_expression", f"{RESULTS}/metrics.json", [f"{RESULTS}/metrics.json"]),
    ("sample_expression", f"{RESULTS}/samples.h5ad", [f"{RESULTS}/samples.h5ad"]),
    (
        "plot_training",
        f"{RESULTS}/figures/training_curves.png",
        [f"{RESULTS}/figures/training_curves.png"],
    ),
    ("plot_latent", f"{RESULTS}/figures/latent_umap.png", [f"{RESULTS}/figures/latent_umap.png"]),
    (
        "plot_metrics_table",
        f"{RESULTS}/metrics_table.tsv",
        [f"{RESULTS}/metrics_table.tsv", f"{RESULTS}/figures/metrics_table.png"],
    ),
]


def size_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (0 when missing)."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from ``/proc``."""
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Poller(threading.Thread):
    """Peak RSS (``VmHWM``) and command line of every descendant of ``root``, every 0.2 s."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peaks: dict[int, dict] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            tree, todo = _children(), [self.root]
            while todo:
                pid = todo.pop()
                todo.extend(tree.get(pid, []))
                hwm = _status_kb(pid, "VmHWM")
                if hwm is None:
                    continue
                seen = self.peaks.setdefault(pid, {"peak_kb": 0, "cmd": ""})
                seen["peak_kb"] = max(seen["peak_kb"], hwm)
                if not seen["cmd"]:
                    try:
                        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                        seen["cmd"] = raw.replace(b"\0", b" ").decode(errors="replace")[:300]
                    except OSError:
                        pass
            self.done.wait(self.interval)


def measure(command: list[str], log: Path, env: dict | None = None) -> dict:
    """Run ``command``; wall seconds, tree peak RSS, bytes written, per-process peaks."""
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        poller = Poller(process.pid)
        poller.start()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    poller.done.set()
    poller.join()
    wall = time.perf_counter() - started
    processes = sorted(poller.peaks.items(), key=lambda kv: -kv[1]["peak_kb"])
    return {
        "command": shlex.join(command),
        "returncode": process.returncode,
        "wall_s": round(wall, 1),
        "tree_peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),
        "tree_written_gb": round(usage.ru_oublock * 512 / 1e9, 3),
        "user_s": round(usage.ru_utime, 1),
        "system_s": round(usage.ru_stime, 1),
        "processes": [
            {"pid": pid, "peak_rss_gb": round(p["peak_kb"] * 1024 / 1e9, 3), "cmd": p["cmd"]}
            for pid, p in processes[:4]
        ],
        "log": str(log),
    }


def generate_command(args: argparse.Namespace) -> list[str]:
    """The ``generate_counts.py`` command that writes ``args.data``."""
    return [
        str(PY),
        str(REPO / "benchmarks/generate_counts.py"),
        str(args.data),
        f"--n-cells={args.cells}",
        f"--n-genes={args.genes}",
        f"--n-batches={args.batches}",
        f"--batch-effect={args.batch_effect}",
        f"--mean-log-library={args.mean_log_library}",
        f"--seed={args.seed}",
    ]


def write_config(args: argparse.Namespace) -> Path:
    """The repository's default config with this run's settings; the one-row sheet."""
    sheet = args.work / "datasets.tsv"
    sheet.write_text(
        "dataset\tdomain\tsource\tlabel_key\tbatch_key\n"
        f"{DATASET}\texpression\t{args.data.name}\tcell_type\tbatch\n"
    )
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config |= {
        "datasets": str(sheet.resolve()),
        "data_dir": str(args.data.resolve().parent),
        "seed": 0,
        "device": "cpu",
    }
    config["preprocess"]["expression"] |= {
        "min_genes": args.min_genes,
        "min_cells": args.min_cells,
        "n_top_genes": args.n_top_genes,
        "chunked": "auto",
    }
    config["train"]["expression"] |= {
        "max_steps": args.max_steps,
        "eval_every": args.eval_every,
        "checkpoint_every": args.eval_every,
        "backed": "auto",
    }
    config["embed"]["sheet"] = ""
    path = args.work / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(args: argparse.Namespace, config: Path, *extra: str) -> list[str]:
    """A Snakemake command line on ``--work`` with ``config``."""
    return [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO / "workflow/Snakefile"),
        "--directory",
        str(args.work.resolve()),
        "--configfile",
        str(config.resolve()),
        "--cores",
        str(args.cores),
        *extra,
    ]


def table(report: dict) -> str:
    """The jobs as a Markdown table."""
    lines = [
        "| job | wall s | peak RSS GB (job script) | peak RSS GB (tree, exact) "
        "| written MB | outputs MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for job in report["jobs"]:
        script = job["processes"][0]["peak_rss_gb"] if job["processes"] else float("nan")
        lines.append(
            f"| {job['rule']} | {job['wall_s']:.0f} | {script:.2f} | "
            f"{job['tree_peak_rss_gb']:.2f} | {job['tree_written_gb'] * 1e3:,.0f} | "
            f"{job['outputs_gb'] * 1e3:,.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Generate the counts, run the workflow job by job, write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--genes", type=int, default=33_000)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--batch-effect", type=float, default=0.5)
    parser.add_argument(
        "--mean-log-library", type=float, default=8.5, help="8.5: ~2,000 genes per cell"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, help="raw counts (default: generated in --work)")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/out/atlas_workflow"))
    parser.add_argument("--min-genes", type=int, default=200)
    parser.add_argument("--min-cells", type=int, default=3)
    parser.add_argument("--n-top-genes", type=int, default=2000)
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--delete-input-above-gb",
        type=float,
        default=5.0,
        help="delete the generated counts at the end when larger (0: keep)",
    )
    parser.add_argument("--limit-gb", type=float, default=6.0, help="peak RSS limit checked")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the jobs --work/report.json records as done; run the others",
    )
    args = parser.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    logs = args.work / "bench_logs"
    logs.mkdir(exist_ok=True)
    generated = args.data is None
    if generated:
        tag = f"{args.cells}x{args.genes}_b{args.batches}"
        args.data = args.work / "input" / f"raw_{tag}.h5ad"
    args.data.parent.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9:.0f} GB RAM",
        "load_average_at_start": os.getloadavg(),
        "data": str(args.data),
        "regenerate": shlex.join(generate_command(args)),
        "settings": vars(args) | {"data": str(args.data), "work": str(args.work)},
    }
    previous = {}
    if args.resume and (args.work / "report.json").is_file():
        previous = json.loads((args.work / "report.json").read_text())
        report |= {
            k: previous[k]
            for k in (
                "generate",
                "data_gb_on_disk",
                "data_shape",
                "data_nnz",
                "genes_per_cell",
                "input_deleted",
            )
            if k in previous
        }
        report["resumed"] = {
            "previous_date": previous["date"],
            "previous_failed": previous.get("failed"),
        }
    done = [job for job in previous.get("jobs", []) if job["returncode"] == 0]
    if done and not args.data.exists():
        pass  # the finished preprocess_expression job no longer needs the raw counts
    elif not args.data.exists():
        if not generated:
            sys.exit(f"{args.data}: no such file")
        print("generating:", report["regenerate"], flush=True)
        report["generate"] = measure(generate_command(args), logs / "generate.log")
        print(json.dumps(report["generate"]), flush=True)
        if report["generate"]["returncode"]:
            sys.exit(f"generate_counts.py failed; see {logs / 'generate.log'}")
        report["generate"]["stdout"] = (logs / "generate.log").read_text().strip()[-500:]
    if args.data.exists():
        import h5py

        report["data_gb_on_disk"] = round(args.data.stat().st_size / 1e9, 3)
        with h5py.File(args.data, "r") as handle:
            n_cells, n_genes = handle["X"].attrs["shape"]
            nnz = handle["X"]["indices"].shape[0]
        report["data_shape"] = [int(n_cells), int(n_genes)]
        report["data_nnz"] = int(nnz)
        report["genes_per_cell"] = round(nnz / n_cells, 1)

    config = write_config(args)
    report["config"] = str(config)
    # a dry run: how long Snakemake takes to parse the workflow and build the DAG
    report["dry_run"] = previous.get("dry_run") or measure(
        snakemake(args, config, "-n"), logs / "dry_run.log"
    )
    report["jobs"] = done
    for rule, target, outputs in JOBS:
        if any(job["rule"] == rule for job in done):
            continue
        job = measure(snakemake(args, config, target), logs / f"{rule}.log")
        job |= {
            "rule": rule,
            "target": target,
            "outputs": {o: size_bytes(args.work / o) for o in outputs},
        }
        job["outputs_gb"] = round(sum(job["outputs"].values()) / 1e9, 4)
        report["jobs"].append(job)
        print(json.dumps({k: job[k] for k in ("rule", "wall_s", "tree_peak_rss_gb")}), flush=True)
        if job["returncode"]:
            report["failed"] = rule
            break
    bench = args.work / f"logs/train_model/expression/{DATASET}.benchmark.tsv"
    if bench.is_file():
        head, values = bench.read_text().splitlines()[:2]
        report["train_model_benchmark_tsv"] = dict(
            zip(head.split("\t"), values.split("\t"), strict=True)
        )
    if "failed" not in report:
        left = measure(snakemake(args, config, "-n"), logs / "final_dry_run.log")
        report["all_done"] = "Nothing to be done" in (logs / "final_dry_run.log").read_text()
        for name in ("metrics.json",):
            path = args.work / RESULTS / name
            if path.is_file():
                report["metrics"] = json.loads(path.read_text())
        del left
    report["results_gb"] = round(size_bytes(args.work / "results") / 1e9, 3)
    report["checkpoints_gb"] = round(size_bytes(args.work / "resources") / 1e9, 3)
    peaks = [job["tree_peak_rss_gb"] for job in report["jobs"]]
    report["max_peak_rss_gb"] = max(peaks, default=None)
    report["every_job_below_limit"] = all(p < args.limit_gb for p in peaks)
    report["load_average_at_end"] = os.getloadavg()
    size = args.data.stat().st_size / 1e9 if args.data.exists() else 0.0
    big = args.delete_input_above_gb and size > args.delete_input_above_gb
    if generated and big and "failed" not in report:
        args.data.unlink()
        report["input_deleted"] = True
    (args.work / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (args.work / "report.md").write_text(table(report))
    print(table(report))
    print(f"wrote {args.work / 'report.json'}")
    if "failed" in report:
        sys.exit(f"{report['failed']} failed; see {logs / (report['failed'] + '.log')}")


if __name__ == "__main__":
    main()
