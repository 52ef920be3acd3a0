"""Protein multiple sequence alignments: reading, focus columns, filters, one-hot, weights."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from Bio import SeqIO

from vae._alphabet import (
    ALIGNMENT_FORMATS,
    AMBIGUOUS_RESIDUES,
    GAP,
    INSERTION,
    PROTEIN_ALPHABET,
    SEQUENCE_RANGE,
)
from vae.data._weights import sequence_weights
from vae.errors import VAEInputError

logger = logging.getLogger(__name__)

_VALID_MATCH = re.compile(r"^[A-Z\-*]*$")


@dataclass(frozen=True)
class Alignment:
    """A protein alignment restricted to the focus sequence's match columns.

    Attributes
    ----------
    ids
        Sequence identifiers, focus first.
    sequences
        Upper-case match-column strings of equal length (gaps as ``-``).
    focus_columns
        For each column of ``sequences``, its index among the alignment's match columns
        (a row's upper-case letters and ``-``, insertions removed), not into ``sequences``.
    positions
        Residue number, in the focus sequence's own numbering, of each kept column.
    focus_residues
        Wild-type residue of the focus sequence at each kept column.
    stats
        Counts from reading and filtering (for the QC report).
    """

    ids: list[str]
    sequences: list[str]
    focus_columns: np.ndarray
    positions: np.ndarray
    focus_residues: str
    stats: dict = field(default_factory=dict)


def alignment_format(path: str | Path) -> str:
    """Return the Biopython format name for an alignment file, from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in ALIGNMENT_FORMATS:
        raise VAEInputError(
            path, f"unknown alignment suffix {suffix!r}; use one of {sorted(ALIGNMENT_FORMATS)}"
        )
    return ALIGNMENT_FORMATS[suffix]


def read_records(path: str | Path) -> list[tuple[str, str]]:
    """Read ``(id, aligned sequence)`` pairs with Biopython.

    Parameters
    ----------
    path
        A2M, A3M, aligned FASTA or Stockholm file.

    Returns
    -------
    list of tuple
        Identifiers (with ``/start-end`` kept) and raw aligned strings.
    """
    path = Path(path)
    fmt = alignment_format(path)
    if not path.is_file():
        raise VAEInputError(path, "file does not exist")
    raw = path.read_bytes()
    if not raw.strip():
        raise VAEInputError(path, "file is empty")
    if b"\x00" in raw[:4096]:
        raise VAEInputError(path, "binary file, not a sequence alignment")
    try:
        records = [(rec.id, str(rec.seq)) for rec in SeqIO.parse(path, fmt)]
    except (ValueError, UnicodeDecodeError) as err:
        # Biopython's messages can span paragraphs; keep the first, on one line
        reason = " ".join(str(err).strip().split("\n\n")[0].split())
        raise VAEInputError(path, f"cannot parse as {fmt}: {reason}") from err
    if not records:
        raise VAEInputError(path, f"no sequences found (expected {fmt} format)")
    if fmt == "stockholm":
        records = _restore_insert_gaps(records)
    return records


def _restore_insert_gaps(records: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Undo Biopython's Stockholm reader turning insert-column ``.`` into ``-``.

    A column holding a lower-case residue in any row is an insert column; its gaps
    become ``.`` again so that they are dropped with the insertions.
    """
    if len({len(seq) for _, seq in records}) != 1:
        return records  # read_alignment reports the unequal lengths
    text = "".join(seq for _, seq in records).encode("ascii", errors="replace")
    rows = np.frombuffer(text, dtype=np.uint8).reshape(len(records), -1).copy()
    insert_column = ((rows >= ord("a")) & (rows <= ord("z"))).any(axis=0)
    rows[(rows == ord(GAP)) & insert_column] = ord(".")
    return [(rid, row.tobytes().decode()) for (rid, _), row in zip(records, rows, strict=True)]


def _focus_start(focus_id: str) -> int:
    match = SEQUENCE_RANGE.match(focus_id)
    return int(match["start"]) if match else 1


def _unequal_rows(records: list, match_seqs: list[str], focus_index: int) -> str:
    """Say which row breaks the alignment's width; a short last record means a cut-off file.

    ``records`` and ``match_seqs`` have the focus moved to the front from ``focus_index``,
    its place in the file.
    """
    last = len(records) - 1 if focus_index != len(records) - 1 else 0  # the file's last record
    others = {len(s) for i, s in enumerate(match_seqs) if i != last}
    if len(others) == 1 and len(match_seqs[last]) < (width := min(others)):
        return (
            f"the last record {records[last][0]!r} has {len(match_seqs[last])} of {width} "
            "match columns: the file looks cut short"
        )
    width = len(match_seqs[0])
    row = next(i for i, s in enumerate(match_seqs) if len(s) != width)
    counts = sorted({len(s) for s in match_seqs})[:5]
    return (
        f"rows of unequal aligned length (match-column counts {counts}): "
        f"{records[row][0]!r} has {len(match_seqs[row])}, the focus {records[0][0]!r} {width}"
    )


def read_alignment(
    path: str | Path,
    *,
    focus_id: str | None = None,
    max_seq_gap_frac: float = 0.5,
    max_col_gap_frac: float = 0.3,
) -> Alignment:
    """Read an alignment and keep the focus sequence's well-covered match columns.

    Upper-case letters and ``-`` are match columns; lower-case letters and ``.``
    are insertions and are dropped (A2M/A3M/Stockholm convention), so padded and
    unpadded insertions read the same. Focus columns are the match columns where
    the focus sequence has a residue. Following EVE, sequences with more than
    ``max_seq_gap_frac`` gaps in the focus columns are dropped first, then columns
    with more than ``max_col_gap_frac`` gaps. Sequences with ambiguous residues
    (``B Z X J U O *``) in the kept columns are dropped and counted; any other
    character is an error.

    Parameters
    ----------
    path
        Alignment file.
    focus_id
        Identifier of the focus sequence (with or without ``/start-end``); the
        first record when ``None``.
    max_seq_gap_frac
        Largest gap fraction of a kept sequence.
    max_col_gap_frac
        Largest gap fraction of a kept column.

    Returns
    -------
    Alignment
        The filtered alignment.
    """
    records = read_records(path)
    focus_index = 0
    if focus_id is not None:
        matches = [
            i
            for i, (rid, _) in enumerate(records)
            if rid == focus_id or rid.split("/")[0] == focus_id
        ]
        if not matches:
            raise VAEInputError(path, f"focus sequence {focus_id!r} not found")
        focus_index = matches[0]
    records.insert(0, records.pop(focus_index))

    match_seqs = []
    for rid, seq in records:
        match = INSERTION.sub("", seq)
        if not _VALID_MATCH.match(match):
            bad = sorted(set(re.sub(r"[A-Z\-*]", "", match)))
            raise VAEInputError(path, f"sequence {rid!r} has invalid characters {bad}")
        match_seqs.append(match)
    lengths = {len(s) for s in match_seqs}
    if len(lengths) != 1:
        raise VAEInputError(path, _unequal_rows(records, match_seqs, focus_index))

    focus_raw = records[0][1]
    start = _focus_start(records[0][0])
    # residue number of each match column of the focus (lower-case residues count too)
    positions_all, residue_number = [], start
    for char in focus_raw:
        if char in ".-":
            if char == "-":
                positions_all.append(-1)
            continue
        if char.isupper() or char == "*":
            positions_all.append(residue_number)
        residue_number += 1
    focus_match = match_seqs[0]
    focus_cols = np.array([i for i, c in enumerate(focus_match) if c != GAP], dtype=int)
    if focus_cols.size == 0:
        raise VAEInputError(path, f"focus sequence {records[0][0]!r} has no upper-case columns")
    positions = np.array(positions_all)[focus_cols]

    array = np.frombuffer("".join(match_seqs).encode(), dtype="S1").reshape(len(match_seqs), -1)
    sub = array[:, focus_cols]
    gap = sub == GAP.encode()
    seq_keep = gap.mean(axis=1) <= max_seq_gap_frac
    seq_keep[0] = True
    col_keep = gap[seq_keep].mean(axis=0) <= max_col_gap_frac
    if not col_keep.any():
        raise VAEInputError(path, "all columns filtered out by max_col_gap_frac")
    sub = sub[:, col_keep]
    ambiguous = np.isin(sub, [c.encode() for c in AMBIGUOUS_RESIDUES]).any(axis=1)
    if ambiguous[0]:
        raise VAEInputError(path, "focus sequence has ambiguous residues in its focus columns")
    keep = seq_keep & ~ambiguous
    if keep.sum() < 2:
        raise VAEInputError(path, "all sequences except the focus were filtered out")
    kept_rows = np.flatnonzero(keep)
    stats = {
        "n_sequences_read": len(records),
        "n_match_columns": int(array.shape[1]),
        "n_focus_columns": int(focus_cols.size),
        "n_dropped_gappy_sequences": int((~seq_keep).sum()),
        "n_dropped_ambiguous_sequences": int((seq_keep & ambiguous).sum()),
        "n_dropped_gappy_columns": int((~col_keep).sum()),
        "n_sequences": int(kept_rows.size),
        "n_columns": int(col_keep.sum()),
    }
    logger.info("alignment %s: %s", path, stats)
    kept = sub[kept_rows]
    sequences = [row.tobytes().decode() for row in kept]
    return Alignment(
        ids=[records[i][0] for i in kept_rows],
        sequences=sequences,
        focus_columns=focus_cols[col_keep],
        positions=positions[col_keep],
        focus_residues=sequences[0],
        stats=stats,
    )


_LOOKUP = np.full(256, -1, dtype=np.int8)
for _i, _c in enumerate(PROTEIN_ALPHABET):
    _LOOKUP[ord(_c)] = _i


def encode(sequences: list[str]) -> np.ndarray:
    """Encode equal-length sequences as alphabet indices (``int8``, gap = 20).

    Parameters
    ----------
    sequences
        Upper-case strings over :data:`vae._alphabet.PROTEIN_ALPHABET`.

    Returns
    -------
    numpy.ndarray
        ``(n_sequences, length)`` indices.
    """
    if not sequences:
        return np.zeros((0, 0), dtype=np.int8)
    raw = np.frombuffer("".join(sequences).encode(), dtype=np.uint8).reshape(len(sequences), -1)
    codes = _LOOKUP[raw]
    if (codes < 0).any():
        bad = sorted({chr(c) for c in np.unique(raw[codes < 0])})
        raise ValueError(f"characters outside the protein alphabet: {bad}")
    return codes


def decode(codes: np.ndarray) -> list[str]:
    """Turn an index matrix back into strings."""
    letters = np.frombuffer(PROTEIN_ALPHABET.encode(), dtype="S1")
    return [row.tobytes().decode() for row in letters[codes]]


def alignment_to_anndata(
    alignment: Alignment, *, theta: float = 0.2, device: str | torch.device = "cpu"
):
    """Encode an :class:`Alignment` and its sequence weights as AnnData.

    ``X`` holds alphabet indices (``int8``), ``obs`` the ids and weights, ``var``
    each column's residue number (``position``) and wild-type residue (``wt``);
    ``uns["preprocess"]`` the filter counts, ``theta`` and ``neff``.
    """
    import anndata as ad
    import pandas as pd

    codes = encode(alignment.sequences)
    weights = sequence_weights(codes, theta=theta, device=device)
    ids = pd.Index(alignment.ids)
    obs = pd.DataFrame({"id": alignment.ids, "weight": weights}, index=ids)
    obs.index = ad.utils.make_index_unique(obs.index.astype(str))
    var = pd.DataFrame(
        {"position": alignment.positions.astype(int), "wt": list(alignment.focus_residues)},
        index=[
            f"{p}{w}" for p, w in zip(alignment.positions, alignment.focus_residues, strict=True)
        ],
    )
    adata = ad.AnnData(X=codes, obs=obs, var=var)
    adata.uns["focus_id"] = alignment.ids[0]
    adata.uns["preprocess"] = alignment.stats | {"theta": theta, "neff": float(weights.sum())}
    return adata


def select_positions(alignment: Alignment, positions: list[int], source: str | Path) -> Alignment:
    """Restrict an alignment to the columns of given focus residue numbers, in that order.

    Used to encode new sequences with a trained model: the columns are matched by the
    focus sequence's numbering and their wild-type residues must agree.
    """
    index = {int(p): i for i, p in enumerate(alignment.positions)}
    missing = [p for p in positions if p not in index]
    if missing:
        raise VAEInputError(
            source, f"focus columns of the model missing here: positions {missing[:5]}"
        )
    columns = np.array([index[p] for p in positions], dtype=int)
    sequences = ["".join(seq[i] for i in columns) for seq in alignment.sequences]
    return Alignment(
        ids=alignment.ids,
        sequences=sequences,
        focus_columns=alignment.focus_columns[columns],
        positions=alignment.positions[columns],
        focus_residues=sequences[0],
        stats=alignment.stats,
    )
