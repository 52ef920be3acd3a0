"""Write the tiny family-search inputs of the test workflow from ``data/tinyfam.a2m``.

The ``tinysearch`` row of ``config/datasets.tsv`` starts from one focus sequence and a
small database instead of an alignment, so that the test run searches for real (rule
``align_family``) before it preprocesses, trains and scores. Two files are written:

``data/tinysearch_focus.fasta``
    The first record of ``tinyfam.a2m`` (the family consensus), gaps removed, under the
    alignment's own header ``id/start-end``: the searched alignment is in the same
    numbering as ``tinyfam.a2m``, so ``tinyfam_dms.csv`` applies to both rows.
``data/tinysearch_db.fasta``
    Every other record of ``tinyfam.a2m`` (the family, sequences emitted from the Pfam
    HMM PF02826), gaps removed, then ``N_SHUFFLED`` decoys: residue-shuffled copies of
    family members (same composition and length, no homology), named ``shuffled_<i>``.
    The focus itself is not in the database.

The output is deterministic (``random.Random(SEED)``; Python's shuffle has been stable
across 3.x versions). Run from the repository root after changing ``tinyfam.a2m``::

    .venv/bin/python .test/make_tinysearch.py
"""

from __future__ import annotations

import random
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
SEED = 0
N_SHUFFLED = 40


def read_a2m(path: Path) -> list[tuple[str, str]]:
    """Read the records of an A2M file as ``(header, sequence)``, gaps kept.

    Parameters
    ----------
    path : Path
        The alignment.

    Returns
    -------
    list of tuple of str
        Header (first word, without ``>``) and aligned sequence of each record.
    """
    records: list[list[str]] = []
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            records.append([line[1:].split()[0], ""])
        elif records:
            records[-1][1] += line.strip()
    return [(name, seq) for name, seq in records]


def ungap(aligned: str) -> str:
    """Residues of an aligned A2M row, upper case (match and insert states alike).

    Parameters
    ----------
    aligned : str
        A row with ``-`` and ``.`` gaps and lower-case insertions.

    Returns
    -------
    str
        The unaligned sequence.
    """
    return "".join(c for c in aligned if c.isalpha()).upper()


def fasta(records: list[tuple[str, str]], width: int = 60) -> str:
    """FASTA text of ``(name, sequence)`` records, wrapped at ``width`` residues.

    Parameters
    ----------
    records : list of tuple of str
        Names and sequences.
    width : int
        Residues per line.

    Returns
    -------
    str
        The file's text.
    """
    lines = []
    for name, seq in records:
        lines.append(f">{name}")
        lines.extend(seq[i : i + width] for i in range(0, len(seq), width))
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write the focus and the database next to ``tinyfam.a2m``."""
    records = read_a2m(DATA / "tinyfam.a2m")
    (focus_name, focus_row), family = records[0], records[1:]
    focus = ungap(focus_row)
    start, end = map(int, focus_name.rsplit("/", 1)[1].split("-"))
    if end - start + 1 != len(focus):
        raise SystemExit(f"{focus_name}: range says {end - start + 1} residues, has {len(focus)}")
    members = [(name.split("/")[0], ungap(row)) for name, row in family]
    rng = random.Random(SEED)
    decoys = []
    for i in range(N_SHUFFLED):
        residues = list(members[i * len(members) // N_SHUFFLED][1])
        rng.shuffle(residues)
        decoys.append((f"shuffled_{i}", "".join(residues)))
    (DATA / "tinysearch_focus.fasta").write_text(fasta([(focus_name, focus)]))
    (DATA / "tinysearch_db.fasta").write_text(fasta(members + decoys))


if __name__ == "__main__":
    main()
