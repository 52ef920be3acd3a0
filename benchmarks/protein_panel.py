"""The protein development panel through the workflow, its scoreboard written into BENCHMARKS.md.

Runs ``snakemake`` on a sheet of protein datasets with scans or labels (by default
``config/datasets-panel.tsv``: DHFR, GFP, P53, PTEN and the ten stability domains) with a
preset over ``config/config.yaml``, a seed ensemble of ``--seeds`` models per dataset, in
its own working folder, up to the scoreboard ``results/summary/protein.tsv``. Then it
replaces the block between ``<!-- protein-panel:start -->`` and
``<!-- protein-panel:end -->`` of BENCHMARKS.md with that table, the date, the machine,
the commit and the exact command.

Example (from the repository root; about an hour on 2 CPU cores)::

    .venv/bin/python benchmarks/protein_panel.py --preset config/presets/protein-default.yaml
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from vae.provenance import cpu_capability, git_commit

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- protein-panel:start -->", "<!-- protein-panel:end -->"


def markdown_table(table: pd.DataFrame) -> str:
    """The scoreboard as a Markdown table (gain with the seed spread), mean gain per measure."""
    lines = [
        "| dataset | measure | n scored | VAE | site-independent | gain ± sd (seeds) "
        "| worst seed's gain | Neff | Neff / L | L | train s / model |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.itertuples():
        spread = "" if pd.isna(row.seed_sd) else f" ± {row.seed_sd:.3f}"
        lines.append(
            f"| {row.dataset} | {row.measure} | {row.n_scored} | {row.vae:.3f} "
            f"| {row.site_independent:.3f} | {row.gain:+.3f}{spread} ({row.n_seeds}) "
            f"| {row.member_gain_min:+.3f} | {row.neff:,.0f} | {row.neff_per_column:.1f} "
            f"| {row.n_columns} | {row.train_seconds:.0f} |"
        )
    means = [
        f"mean gain in {measure}: {group['gain'].mean():+.3f} over {len(group)} datasets "
        f"(lowest {group['gain'].min():+.3f})"
        for measure, group in table.groupby("measure")
    ]
    return "\n".join(lines) + "\n\n" + "; ".join(means) + "."


def replace_block(text: str, block: str) -> str:
    """``text`` with the panel block replaced (appended when it has none)."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + START + "\n" + block + "\n" + END + rest.split(END, 1)[1]
    return text.rstrip("\n") + f"\n\n{START}\n{block}\n{END}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sheet", default="config/datasets-panel.tsv")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--preset", default="config/presets/protein-default.yaml")
    parser.add_argument("--seeds", type=int, default=3, help="models per dataset (ensemble)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--workdir", default="benchmarks/out/protein_panel_workflow")
    parser.add_argument("--benchmarks", default="BENCHMARKS.md", help="file to write into")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()

    workdir = (REPO / args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    overlay = workdir / "panel.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "datasets": str((REPO / args.sheet).resolve()),
                "data_dir": str((REPO / args.data_dir).resolve()),
                "embed": {"sheet": ""},
                "map": {"sheet": ""},
                "score": {"variant_lists": ""},
                "train": {"protein": {"ensemble": args.seeds}},
            }
        )
    )
    configs = [REPO / "config" / "config.yaml", REPO / args.preset, overlay]
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        str(args.cores),
        "--configfile",
        *map(str, configs),
        "--",
        "results/summary/protein.tsv",
    ]
    started = datetime.datetime.now(datetime.UTC)
    subprocess.run(command, check=True)
    seconds = (datetime.datetime.now(datetime.UTC) - started).total_seconds()
    table = pd.read_csv(workdir / "results" / "summary" / "protein.tsv", sep="\t")
    shown = " ".join(shlex.quote(a) for a in sys.argv[1:])
    cpu = cpu_capability()
    block = "\n".join(
        [
            f"- **Date:** {started:%Y-%m-%d %H:%M} UTC; {seconds / 60:.0f} min for the whole run",
            f"- **Machine:** {cpu['processor']}, {args.cores} cores, torch CPU capability "
            f"{cpu['torch_cpu_capability']}, BLAS {cpu['torch_blas']}",
            f"- **Commit:** {git_commit(REPO) or 'unknown'}",
            f"- **Command:** `.venv/bin/python benchmarks/protein_panel.py {shown}`",
            "",
            markdown_table(table),
        ]
    )
    print(block)
    if not args.no_write:
        path = REPO / args.benchmarks
        path.write_text(replace_block(path.read_text(), block))


if __name__ == "__main__":
    main()
