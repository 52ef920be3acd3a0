"""Profile HMMs of a training family (pyhmmer) to align new, unaligned sequences."""

from __future__ import annotations

import io
from collections.abc import Iterable

from vae._alphabet import INSERTION
from vae.data._denormals import denormals_flushed


def build_family_hmm(sequences: list[str], name: str = "family") -> bytes:
    """Build a profile HMM whose match states are exactly the alignment's columns.

    Parameters
    ----------
    sequences
        Equal-length aligned sequences (upper case, ``-`` gaps), e.g. the kept focus
        columns of a training alignment.
    name
        Name recorded in the HMM.

    Returns
    -------
    bytes
        The HMM in HMMER3 text format.
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
    # no build date or command line: the same sequences give the same bytes
    hmm.creation_time = None
    hmm.command_line = None
    handle = io.BytesIO()
    hmm.write(handle)
    return handle.getvalue()


def align_to_family(hmm_text: bytes, records: Iterable[tuple[str, str]]) -> list[str | None]:
    """Align unaligned protein sequences to a family HMM with ``hmmalign``.

    Parameters
    ----------
    hmm_text
        HMM built by :func:`build_family_hmm`.
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

    with plan7.HMMFile(io.BytesIO(hmm_text)) as handle:
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
        with denormals_flushed():  # as HMMER's hmmalign (vae.data._denormals)
            msa = pyhmmer.hmmalign(hmm, digital, trim=True)
        for slot, row in zip(slots, msa.alignment, strict=True):
            rows[slot] = INSERTION.sub("", row)
    return rows
