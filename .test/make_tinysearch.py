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

from Bio import SeqIO
from Bio.Seq import Seq
from Bio.SeqRecord import SeqRecord

DATA = Path(__file__).resolve().parent / "data"
SEED = 0
N_SHUFFLED = 40


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


def write_fasta(path: Path, records: list[tuple[str, str]]) -> None:
    """Write ``(name, sequence)`` records as FASTA (Biopython: 60 residues per line)."""
    SeqIO.write(
        (SeqRecord(Seq(seq), id=name, description="") for name, seq in records), path, "fasta"
    )


def main() -> None:
    """Write the focus and the database next to ``tinyfam.a2m``."""
    records = [(r.id, str(r.seq)) for r in SeqIO.parse(DATA / "tinyfam.a2m", "fasta")]
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
    write_fasta(DATA / "tinysearch_focus.fasta", [(focus_name, focus)])
    write_fasta(DATA / "tinysearch_db.fasta", members + decoys)


if __name__ == "__main__":
    main()
