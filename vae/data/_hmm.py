"""Profile HMMs of a training family (pyhmmer) to align new, unaligned sequences."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

_INSERTION = re.compile(r"[a-z.]")


def build_family_hmm(sequences: list[str], path: str | Path, name: str = "family") -> Path:
    """Build a profile HMM whose match states are exactly the alignment's columns.

    Parameters
    ----------
    sequences
        Equal-length aligned sequences (upper case, ``-`` gaps), e.g. the kept focus
        columns of a training alignment.
    path
        Where to write the HMM (HMMER3 text format).
    name
        Name recorded in the HMM.
    """
    from pyhmmer import easel, plan7

    alphabet = easel.Alphabet.amino()
    msa = easel.TextMSA(
        name=name.encode(),
        sequences=[
            easel.TextSequence(name=f"s{i}".encode(), sequence=seq)
            for i, seq in enumerate(sequences)
        ],
    )
    msa.reference = "x" * len(sequences[0])  # every column is a match state ("hand" model)
    builder = plan7.Builder(alphabet, architecture="hand")
    hmm, _, _ = builder.build_msa(msa.digitize(alphabet), plan7.Background(alphabet))
    path = Path(path)
    with open(path, "wb") as handle:
        hmm.write(handle)
    return path


def align_to_family(hmm_path: str | Path, records: Iterable[tuple[str, str]]) -> list[str]:
    """Align unaligned protein sequences to a family HMM with ``hmmalign``.

    Parameters
    ----------
    hmm_path
        HMM written by :func:`build_family_hmm`.
    records
        ``(id, sequence)`` pairs (any case, no gaps).

    Returns
    -------
    list of str or None
        For each record, its residues in the HMM's match columns (upper case, ``-`` for
        deletions; insertions dropped), or ``None`` when the sequence holds characters
        outside the amino-acid alphabet.
    """
    import pyhmmer
    from pyhmmer import easel, plan7

    with plan7.HMMFile(hmm_path) as handle:
        hmm = handle.read()
    alphabet = hmm.alphabet
    digital, slots = [], []
    records = list(records)
    for i, (_, seq) in enumerate(records):
        try:
            text = easel.TextSequence(name=f"q{i}".encode(), sequence=seq.upper())
            digital.append(text.digitize(alphabet))
            slots.append(i)
        except ValueError:
            continue
    rows: list[str | None] = [None] * len(records)
    if digital:
        msa = pyhmmer.hmmalign(hmm, digital, trim=True)
        for slot, row in zip(slots, msa.alignment, strict=True):
            rows[slot] = _INSERTION.sub("", row)
    return rows
