"""Build a protein family alignment from a focus sequence by iterative HMM search."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from vae._io import atomic_path, write_json_atomic
from vae.data._search import (
    DEFAULT_BITSCORE_PER_RESIDUE,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_ITERATIONS,
    check_database,
    search_family_thresholds,
)
from vae.data._search_a2m import alignment_depth, output_format, read_focus, write_a2m
from vae.errors import VAEInputError

logger = logging.getLogger(__name__)

#: Columns of the table of tried thresholds (``search_thresholds.tsv``).
THRESHOLD_COLUMNS = (
    "bitscore_per_residue",
    "threshold_bits",
    "iterations_run",
    "n_sequences_included",
    "n_sequences_kept",
    "n_covered_positions",
    "coverage",
    "neff",
    "neff_per_position",
    "meets_coverage",
    "meets_neff",
    "chosen",
)


def search_manifest_path(alignment: str | Path) -> Path:
    """Return the provenance sidecar of a searched alignment (``<stem>.manifest.json``)."""
    alignment = Path(alignment)
    return alignment.with_name(alignment.stem + ".manifest.json")


def align_family(
    focus: str | Path,
    database: str | Path,
    alignment: str | Path,
    *,
    manifest: str | Path | None = None,
    thresholds_table: str | Path | None = None,
    iterations: int = DEFAULT_ITERATIONS,
    bitscore_per_residue: float = DEFAULT_BITSCORE_PER_RESIDUE,
    thresholds: list[float] | None = None,
    min_coverage: float = 0.8,
    min_neff_per_position: float = 1.0,
    max_seq_gap_frac: float = 0.5,
    max_col_gap_frac: float = 0.3,
    theta: float = 0.2,
    block_size: int = DEFAULT_BLOCK_SIZE,
    cpus: int = 1,
    alignment_format: str | None = None,
) -> dict[str, Any]:
    """Search a database for the focus protein's family and write its A2M/A3M alignment.

    Parameters
    ----------
    focus
        FASTA file with the one focus sequence (``id/start-end`` sets the numbering).
    database
        Protein FASTA database, plain or gzip, streamed in blocks.
    alignment
        Output alignment: the focus first, upper case = its match columns.
    manifest
        Provenance JSON (default: ``<alignment stem>.manifest.json`` beside it).
    thresholds_table
        TSV with one row per threshold tried (default: ``search_thresholds.tsv`` beside
        the alignment).
    iterations, bitscore_per_residue, block_size
        Search settings (:func:`vae.data._search.search_family`).
    thresholds
        Threshold choice: bits per residue to try (one search each, in lockstep). The one
        kept covers the most focus positions (a position is covered when its column has at
        most ``max_col_gap_frac`` gaps) among those whose Neff per covered position is at
        least ``min_neff_per_position``; ties go to the higher threshold. ``None`` or
        empty: only ``bitscore_per_residue``.
    min_coverage
        Coverage that a kept alignment should reach (recorded; a warning below it).
    min_neff_per_position
        Depth floor of the threshold choice.
    max_seq_gap_frac, max_col_gap_frac, theta
        The preprocessing filters and weights used to measure coverage and Neff.
    cpus
        Worker threads of the search.
    alignment_format
        ``a2m`` (insert columns padded with ``.``) or ``a3m`` (no ``.`` padding: each row
        holds its own insertions only); ``None``: ``a3m`` when ``alignment`` ends in
        ``.a3m``, else ``a2m``.

    Returns
    -------
    dict
        The provenance record written to the manifest.
    """
    started = time.perf_counter()
    alignment = Path(alignment)
    alignment_format = output_format(alignment, alignment_format)
    manifest = Path(manifest) if manifest else search_manifest_path(alignment)
    table_path = Path(thresholds_table or alignment.with_name("search_thresholds.tsv"))
    focus_record = read_focus(focus)
    database = check_database(database)
    tried = sorted(set(thresholds or [bitscore_per_residue]))
    results = search_family_thresholds(
        focus_record,
        database,
        tried,
        iterations=iterations,
        block_size=block_size,
        threads=cpus,
    )
    depth = {"max_seq_gap_frac": max_seq_gap_frac, "max_col_gap_frac": max_col_gap_frac}
    table = []
    for bits, result in zip(tried, results, strict=True):
        stats = alignment_depth(result.rows, len(focus_record[1]), theta=theta, **depth)
        table.append(
            {
                "bitscore_per_residue": bits,
                "threshold_bits": result.record["settings"]["threshold_bits"],
                "iterations_run": len(result.record["iterations"]),
                "n_sequences_included": result.record["n_sequences_included"],
                **stats,
                "meets_coverage": stats["coverage"] >= min_coverage,
                "meets_neff": stats["neff_per_position"] >= min_neff_per_position,
            }
        )
    chosen = _choose(table)
    if not results[chosen].rows:
        length = len(focus_record[1])
        raise VAEInputError(
            database,
            f"no sequence scores {min(tried) * length:g} bits or more against the focus "
            f"({min(tried):g} bits per residue x {length} residues)",
        )
    for index, row in enumerate(table):
        row["chosen"] = index == chosen
    result, row = results[chosen], table[chosen]
    if not row["meets_coverage"]:
        logger.warning("chosen alignment covers %.0f%% of the focus", 100 * row["coverage"])
    record = result.record | {
        "choice": {
            "thresholds_tried": tried,
            "min_coverage": min_coverage,
            "min_neff_per_position": min_neff_per_position,
            "theta": theta,
            **depth,
            "chosen": row,
        },
        "focus_file": str(focus),
        "alignment_format": alignment_format,
    }
    write_a2m(result.rows, alignment, alignment_format)
    _write_table(table, table_path)
    write_json_atomic(manifest, _manifest(record, time.perf_counter() - started))
    return record


def _choose(table: list[dict[str, Any]]) -> int:
    """Index of the kept threshold: most coverage with enough Neff, ties to the higher."""
    deep = [i for i, row in enumerate(table) if row["meets_neff"]]
    if deep:
        return max(deep, key=lambda i: (table[i]["coverage"], table[i]["bitscore_per_residue"]))
    return max(range(len(table)), key=lambda i: (table[i]["neff_per_position"], -i))


def _write_table(table: list[dict[str, Any]], path: Path) -> None:
    lines = ["\t".join(THRESHOLD_COLUMNS)]
    for row in table:
        lines.append("\t".join(_cell(row[column]) for column in THRESHOLD_COLUMNS))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _manifest(record: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    from vae.provenance import git_commit, package_versions

    versions = package_versions() | {"pyhmmer": record["settings"]["pyhmmer"]}
    return {
        "search": record,
        "versions": versions,
        "git_commit": git_commit(Path(__file__).parent),
        "wall_seconds": round(wall_seconds, 3),
    }


def read_search_summary(alignment: str | Path) -> dict[str, Any] | None:
    """Summarise the search behind an alignment for ``uns["preprocess"]["search"]``.

    Reads the sidecar manifest written by :func:`align_family`; ``None`` when the
    alignment has none (it was not built by a search).
    """
    path = search_manifest_path(alignment)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())["search"]
    except (ValueError, KeyError):
        return None
    rounds = record["iterations"]
    settings, database = record["settings"], record["database"]
    return {
        "bitscore_per_residue": settings["bitscore_per_residue"],
        "threshold_bits": settings["threshold_bits"],
        "iterations": settings["iterations"],
        "iterations_run": len(rounds),
        "converged": bool(record["converged"]),
        "sequences_per_iteration": [r["n_sequences_included"] for r in rounds],
        "domains_per_iteration": [r["n_domains_included"] for r in rounds],
        "database": database["path"],
        "database_sha256": database["sha256"],
        "database_sequences": database["n_sequences"],
        "thresholds_tried": record.get("choice", {}).get("thresholds_tried", []),
        "pyhmmer": settings["pyhmmer"],
    }
