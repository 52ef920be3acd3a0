"""Variant names (``A110D``, ``A110D:N146D``) and their encoding on a focus sequence.

The mutant name is the join key of every variant metric (ClinVar AUC, scan ρ), so both
the VAE and the site-independent scorer take their variants from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vae._alphabet import AMINO_ACIDS, PROTEIN_ALPHABET
from vae.errors import VAEInputError

#: One substitution: wild-type residue, residue number in the focus numbering, mutant residue.
SUBSTITUTION = re.compile(r"^([A-Z])(-?\d+)([A-Z])$")
#: Separators of multiple mutants as scan files write them (``:`` ProteinGym, ``/``, ``,``).
SEPARATORS = re.compile(r"[:/,]")


def parse_mutant(name: str) -> list[tuple[str, int, str]]:
    """Split ``A110D:N146D`` into ``[("A", 110, "D"), ("N", 146, "D")]``.

    Raises
    ------
    ValueError
        When a part is not ``<wild type><number><mutant>`` with amino-acid letters, or
        a position is mutated twice.
    """
    parts = [p.strip() for p in SEPARATORS.split(str(name).strip())]
    out = []
    for part in parts:
        match = SUBSTITUTION.match(part)
        if match is None or match[1] not in AMINO_ACIDS or match[3] not in AMINO_ACIDS:
            raise ValueError(f"cannot parse mutant {name!r} (expected e.g. A110D or A110D:N146D)")
        out.append((match[1], int(match[2]), match[3]))
    positions = [p for _, p, _ in out]
    if len(set(positions)) != len(positions):
        raise ValueError(f"mutant {name!r} changes one position twice")
    return out


def single_mutants(positions: list[int], focus_residues: str) -> list[tuple[str, int, str, str]]:
    """Every single substitution of the focus columns: ``(name, column, wt, mt)``, in order."""
    return [
        (f"{wt}{pos}{aa}", col, wt, aa)
        for col, (pos, wt) in enumerate(zip(positions, focus_residues, strict=True))
        for aa in AMINO_ACIDS
        if aa != wt
    ]


def single_mutant_table(positions: list[int], focus_residues: str) -> pd.DataFrame:
    """Tabulate :func:`single_mutants`: ``mutant`` (e.g. ``P8L``), ``position``, ``wt``, ``mt``."""
    return pd.DataFrame(
        [
            (name, positions[col], wt, mt)
            for name, col, wt, mt in single_mutants(positions, focus_residues)
        ],
        columns=["mutant", "position", "wt", "mt"],
    )


def single_mutant_codes(positions: list[int], focus_residues: str) -> np.ndarray:
    """Encode every :func:`single_mutants` variant on the focus: ``(n, L)`` uint8 codes."""
    mutants = single_mutants(positions, focus_residues)
    codes = np.repeat(focus_codes(focus_residues)[None], len(mutants), 0)
    for row, (_, col, _, mt) in enumerate(mutants):
        codes[row, col] = PROTEIN_ALPHABET.index(mt)
    return codes


def focus_codes(focus_residues: str) -> np.ndarray:
    """Alphabet indices of the focus sequence's kept columns, ``(L,)`` uint8."""
    return np.array([PROTEIN_ALPHABET.index(c) for c in focus_residues], dtype=np.uint8)


@dataclass
class EncodedVariants:
    """Variants that can be scored on the model's columns, and those that cannot.

    Attributes
    ----------
    names
        Names of the scorable variants, in input order.
    codes
        ``(n, L)`` uint8 alphabet indices: the focus with each variant's substitutions.
    n_mutations
        Number of substitutions of each scorable variant.
    skipped
        Reason -> names of variants left out (``outside_columns``: a position that is
        not a kept column; ``wt_mismatch``: the named wild type is not the focus residue).
    """

    names: list[str]
    codes: np.ndarray
    n_mutations: list[int]
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """``n_scored`` and ``n_skipped_<reason>``, for metrics."""
        return {"n_scored": len(self.names)} | {
            f"n_skipped_{reason}": len(names) for reason, names in self.skipped.items()
        }


def encode_variants(
    names: list[str], positions: list[int], focus_residues: str, *, source: str | Path
) -> EncodedVariants:
    """Encode variant names on the kept columns of a focus sequence.

    Parameters
    ----------
    names
        Variant names (single or multiple mutants).
    positions, focus_residues
        Residue number and focus residue of each kept column (the model's ``info``).
    source
        The file the names come from, for error messages.

    Raises
    ------
    VAEInputError
        A name cannot be parsed, or most checkable variants name a wild type other than
        the focus residue (the table belongs to another sequence or numbering).
    """
    column = {pos: col for col, pos in enumerate(positions)}
    wild_type = focus_codes(focus_residues)
    kept, rows, n_mutations = [], [], []
    skipped: dict[str, list[str]] = {"outside_columns": [], "wt_mismatch": []}
    for name in names:
        try:
            substitutions = parse_mutant(name)
        except ValueError as err:
            raise VAEInputError(source, str(err)) from None
        if any(pos not in column for _, pos, _ in substitutions):
            skipped["outside_columns"].append(name)
            continue
        if any(focus_residues[column[pos]] != wt for wt, pos, _ in substitutions):
            skipped["wt_mismatch"].append(name)
            continue
        codes = wild_type.copy()
        for _, pos, mt in substitutions:
            codes[column[pos]] = PROTEIN_ALPHABET.index(mt)
        kept.append(name)
        rows.append(codes)
        n_mutations.append(len(substitutions))
    mismatched = skipped["wt_mismatch"]
    if mismatched and len(mismatched) >= len(kept):
        first = mismatched[0]
        raise VAEInputError(
            source,
            f"{len(mismatched)} of {len(mismatched) + len(kept)} variants in the kept columns "
            f"name a wild type other than the focus sequence's (first: {first}); "
            "wrong protein or numbering?",
        )
    codes = np.stack(rows) if rows else np.zeros((0, len(positions)), dtype=np.uint8)
    return EncodedVariants(kept, codes, n_mutations, skipped)
