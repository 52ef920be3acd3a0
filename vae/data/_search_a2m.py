"""Focus sequences in, A2M/A3M family alignments out: the files around a family search."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from vae._alphabet import AMBIGUOUS_RESIDUES, AMINO_ACIDS, SEQUENCE_RANGE
from vae._io import atomic_path
from vae.errors import VAEInputError

_PROTEIN = frozenset(AMINO_ACIDS) | (AMBIGUOUS_RESIDUES - {"*"})
_NUCLEOTIDES = frozenset("ACGTUN")


def split_range(identifier: str) -> tuple[str, int, int | None]:
    """``name/start-end`` -> ``(name, start, end)``; ``(identifier, 1, None)`` without a range."""
    match = SEQUENCE_RANGE.match(identifier)
    if match is None:
        return identifier, 1, None
    return match["name"], int(match["start"]), int(match["end"])


def read_focus(path: str | Path) -> tuple[str, str]:
    """Read the single focus sequence of a protein FASTA file.

    Parameters
    ----------
    path
        FASTA file holding exactly one record. Its id may carry ``/start-end``, the
        residue numbers of the sequence in the protein's own numbering.

    Returns
    -------
    tuple of str
        ``(id, sequence)``, the sequence upper case, a final ``*`` removed.

    Raises
    ------
    VAEInputError
        No or several records, an empty sequence, gaps, characters outside the protein
        alphabet, a nucleotide sequence, or a range that disagrees with the length.
    """
    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "focus file does not exist")
    raw = path.read_bytes()
    if not raw.strip():
        raise VAEInputError(path, "focus file is empty")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as err:
        raise VAEInputError(path, "focus file is not a text FASTA file") from err
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines[0].startswith(">"):
        raise VAEInputError(path, "not a FASTA file: the first line is not a '>' header")
    headers = [line for line in lines if line.startswith(">")]
    if len(headers) != 1:
        raise VAEInputError(
            path, f"focus file holds {len(headers)} sequences; give exactly one (the focus)"
        )
    identifier = headers[0][1:].split()[0] if headers[0][1:].strip() else ""
    if not identifier:
        raise VAEInputError(path, "the focus sequence has no id after '>'")
    sequence = "".join(lines[1:]).upper().removesuffix("*")
    _check_sequence(path, identifier, sequence)
    return identifier, sequence


def _check_sequence(path: Path, identifier: str, sequence: str) -> None:
    if not sequence:
        raise VAEInputError(path, f"focus sequence {identifier!r} is empty")
    letters = set(sequence)
    if letters & set("-."):
        raise VAEInputError(
            path, f"focus sequence {identifier!r} holds gaps; give the unaligned sequence"
        )
    bad = sorted(letters - _PROTEIN)
    if bad:
        raise VAEInputError(
            path, f"focus sequence {identifier!r} has non-protein characters {bad}"
        )
    if len(sequence) >= 20 and letters <= _NUCLEOTIDES:
        raise VAEInputError(
            path, f"focus sequence {identifier!r} looks like DNA/RNA; give the protein sequence"
        )
    _, start, end = split_range(identifier)
    if end is not None and end - start + 1 != len(sequence):
        raise VAEInputError(
            path,
            f"focus id range {start}-{end} says {end - start + 1} residues, "
            f"the sequence has {len(sequence)}",
        )


def focus_mode_rows(
    focus: tuple[str, str], names: list[str], alignment: list[str]
) -> list[tuple[str, str]]:
    """Turn an HMMER alignment (focus row first) into A2M rows in the focus's columns.

    Match columns are the model's consensus columns where the focus has a residue: there
    residues are upper case and gaps ``-``. Every other column is an insertion: residues
    lower case, gaps ``.``. The focus is renamed ``id/start-end`` for its aligned residues
    in its own numbering; the hits keep HMMER's ``name/start-end``.

    Parameters
    ----------
    focus
        ``(id, sequence)`` of the focus protein.
    names, alignment
        Row names and rows of the alignment (``TopHits.to_msa``, text mode, trimmed, all
        consensus columns), the focus first.

    Returns
    -------
    list of tuple
        ``(name, row)`` pairs of equal length, focus first.
    """
    rows = np.frombuffer("".join(alignment).encode("ascii"), dtype=np.uint8)
    rows = rows.reshape(len(alignment), -1).copy()
    upper = (rows >= ord("A")) & (rows <= ord("Z"))
    lower = (rows >= ord("a")) & (rows <= ord("z"))
    letter = upper | lower
    match = upper[0]  # consensus columns where the focus has a residue
    rows[:, match] = np.where(letter[:, match], rows[:, match] & ~np.uint8(0x20), ord("-"))
    rows[:, ~match] = np.where(letter[:, ~match], rows[:, ~match] | np.uint8(0x20), ord("."))
    texts = [row.tobytes().decode("ascii") for row in rows]

    identifier, sequence = focus
    base, start, _ = split_range(identifier)
    aligned = "".join(c for c in texts[0] if c.isalpha()).upper()
    offset = sequence.upper().find(aligned)
    if offset < 0:  # cannot happen: trimming only removes the focus's flanks
        raise RuntimeError("the aligned focus is not a stretch of the focus sequence")
    first = start + offset
    focus_name = f"{base}/{first}-{first + len(aligned) - 1}"
    return [(focus_name, texts[0]), *zip(names[1:], texts[1:], strict=True)]


#: Output formats of a searched alignment: A2M pads insert columns with ``.``; A3M drops
#: the ``.`` so that each row holds its own insertions only (HH-suite's format).
ALIGNMENT_OUTPUT_FORMATS = ("a2m", "a3m")


def output_format(path: str | Path, alignment_format: str | None = None) -> str:
    """Return the format to write: ``alignment_format``, else ``a3m`` for a ``.a3m`` path.

    Raises
    ------
    VAEInputError
        ``alignment_format`` is neither ``a2m`` nor ``a3m``.
    """
    if alignment_format is None:
        return "a3m" if Path(path).suffix.lower() == ".a3m" else "a2m"
    if alignment_format not in ALIGNMENT_OUTPUT_FORMATS:
        raise VAEInputError(
            "search.alignment_format",
            f"unknown alignment format {alignment_format!r}; use a2m or a3m",
        )
    return alignment_format


def write_a2m(
    rows: list[tuple[str, str]], path: str | Path, alignment_format: str = "a2m"
) -> None:
    """Write ``(name, row)`` pairs as A2M or A3M (one line per sequence), atomically.

    Parameters
    ----------
    rows
        A2M rows (:func:`focus_mode_rows`): upper case and ``-`` in the match columns,
        lower case and ``.`` in the insert columns.
    path
        Output file.
    alignment_format
        ``a2m`` writes the rows as they are; ``a3m`` drops the ``.`` padding, so rows
        differ in length and their match columns (upper case and ``-``) still line up.
    """
    strip = output_format(path, alignment_format) == "a3m"
    with atomic_path(path) as tmp, open(tmp, "w") as handle:
        for name, row in rows:
            handle.write(f">{name}\n{row.replace('.', '') if strip else row}\n")


def alignment_depth(
    rows: list[tuple[str, str]],
    focus_length: int,
    *,
    max_seq_gap_frac: float = 0.5,
    max_col_gap_frac: float = 0.3,
    theta: float = 0.2,
) -> dict[str, float | int]:
    """Coverage of the focus and effective depth of an A2M alignment (threshold choice).

    As preprocessing does, sequences with more than ``max_seq_gap_frac`` gaps in the match
    columns are set aside; a focus position is covered when its column then has at most
    ``max_col_gap_frac`` gaps (ambiguous residues count as gaps here). ``neff`` is the sum
    of the sequence weights (``theta``) over the covered columns.

    Returns
    -------
    dict
        ``n_sequences_kept``, ``n_covered_positions``, ``coverage`` (covered / focus
        length), ``neff`` and ``neff_per_position`` (neff / covered positions).
    """
    from vae.data._msa import encode
    from vae.data._weights import sequence_weights

    empty = {"n_sequences_kept": 0, "n_covered_positions": 0, "coverage": 0.0}
    if len(rows) < 2:
        return empty | {"neff": 0.0, "neff_per_position": 0.0}
    match = [re.sub(r"[a-z.]", "", row) for _, row in rows]
    match = [re.sub(r"[^ACDEFGHIKLMNPQRSTVWY]", "-", row) for row in match]
    codes = encode(match)
    gaps = codes == 20
    kept = gaps.mean(axis=1) <= max_seq_gap_frac
    kept[0] = True
    covered = gaps[kept].mean(axis=0) <= max_col_gap_frac
    n_covered = int(covered.sum())
    if n_covered == 0:
        return empty | {"n_sequences_kept": int(kept.sum()), "neff": 0.0, "neff_per_position": 0.0}
    sub = np.ascontiguousarray(codes[kept][:, covered])
    neff = float(sequence_weights(sub, theta=theta).sum())
    return {
        "n_sequences_kept": int(kept.sum()),
        "n_covered_positions": n_covered,
        "coverage": round(n_covered / focus_length, 4),
        "neff": round(neff, 2),
        "neff_per_position": round(neff / n_covered, 4),
    }
