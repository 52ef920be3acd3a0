"""New sequences onto a trained family model's columns: aligned ones checked, raw ones aligned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vae._alphabet import AMBIGUOUS_RESIDUES
from vae._progress import chunk_ranges
from vae.data import encode, read_alignment, read_records, select_positions
from vae.data._hmm import align_to_family
from vae.errors import VAEInputError


def is_aligned(records: list[tuple[str, str]]) -> bool:
    """Whether sequences look aligned: gaps, or A2M's mix of match (upper) and insert (lower)."""
    return any(c in seq for _, seq in records for c in "-.") or any(
        any(ch.islower() for ch in seq) and any(ch.isupper() for ch in seq) for _, seq in records
    )


def prepare_sequence_query(
    path: Path,
    *,
    positions: list[int],
    focus_residues: str,
    family_hmm: bytes | None,
    max_gap_frac: float,
    chunk_size: int,
) -> tuple[list[str], np.ndarray, dict[str, Any]]:
    """Read new sequences and bring them onto the model's columns.

    An alignment must hold the model's focus columns (same residue numbers and wild
    type); raw sequences are aligned to the training family's profile HMM with
    ``hmmalign``, and those with more than ``max_gap_frac`` gaps in the model's columns are
    reported as not aligned, not embedded.

    Returns
    -------
    ids, codes, report
        Kept sequence ids, their ``(n, L)`` alphabet indices, and what happened to the rest.
    """
    records = read_records(path)
    if is_aligned(records):
        msa = read_alignment(path, max_seq_gap_frac=1.0, max_col_gap_frac=1.0)
        msa = select_positions(msa, positions, path)
        if msa.focus_residues != focus_residues:
            raise VAEInputError(
                path, "focus residues differ from the model's at the same positions"
            )
        ids, rows = msa.ids, msa.sequences
        report = {
            "mode": "aligned",
            "n_sequences_read": len(records),
            "n_dropped_ambiguous": msa.stats["n_dropped_ambiguous_sequences"],
            "not_aligned": [],
        }
    else:
        if family_hmm is None:
            raise VAEInputError(path, "the model has no family HMM: cannot align raw sequences")
        ids, rows, not_aligned, unencodable = [], [], [], []
        for start, stop in chunk_ranges(len(records), chunk_size, "aligning (hmmalign)"):
            batch = records[start:stop]
            for (rid, _), row in zip(batch, align_to_family(family_hmm, batch), strict=True):
                if row is None or any(c in AMBIGUOUS_RESIDUES for c in row):
                    unencodable.append(rid)
                elif row.count("-") / len(row) > max_gap_frac:
                    not_aligned.append(rid)
                else:
                    ids.append(rid)
                    rows.append(row)
        report = {
            "mode": "unaligned (hmmalign to the training family)",
            "n_sequences_read": len(records),
            "max_gap_frac": max_gap_frac,
            "not_aligned": not_aligned,
            "unencodable": unencodable,
        }
    if not rows:
        raise VAEInputError(path, "no sequence could be aligned to the model's family")
    report["n_embedded"] = len(rows)
    return list(ids), encode(list(rows)), report
