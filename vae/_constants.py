"""Keys and file names shared across the package."""

from __future__ import annotations

from typing import NamedTuple


class _Keys(NamedTuple):
    X_VAE: str = "X_vae"
    WEIGHT: str = "weight"
    BATCH: str = "batch"
    LABEL: str = "label"
    SEQUENCE: str = "sequence"


class _Files(NamedTuple):
    MODEL: str = "model.pt"
    MODEL_INFO: str = "model.json"
    CHECKPOINT: str = "checkpoint.pt"
    MANIFEST: str = "manifest.json"
    FAMILY_HMM: str = "family.hmm"


KEYS = _Keys()
FILES = _Files()

#: Amino-acid alphabet for protein models: 20 residues then the gap symbol.
PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY-"
AMINO_ACIDS = PROTEIN_ALPHABET[:-1]
GAP = "-"
#: Residue codes that are legal in alignments but carry no single amino acid.
AMBIGUOUS_RESIDUES = frozenset("BZXJUO*")

DOMAINS = ("protein", "expression")
