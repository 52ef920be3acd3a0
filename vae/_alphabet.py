"""The protein alphabet and the alignment conventions every reader and scorer shares."""

from __future__ import annotations

import re

#: Amino-acid alphabet for protein models: 20 residues then the gap symbol.
PROTEIN_ALPHABET = "ACDEFGHIKLMNPQRSTVWY-"
AMINO_ACIDS = PROTEIN_ALPHABET[:-1]
GAP = "-"
#: Residue codes that are legal in alignments but carry no single amino acid.
AMBIGUOUS_RESIDUES = frozenset("BZXJUO*")
#: A2M/A3M insertions: lower-case residues and ``.`` gaps outside the match columns.
INSERTION = re.compile(r"[a-z.]")
#: ``name/start-end`` sequence identifiers: the residue range that numbers a sequence.
SEQUENCE_RANGE = re.compile(r"^(?P<name>.+)/(?P<start>\d+)-(?P<end>\d+)$")
#: Alignment and sequence file suffixes and the Biopython format that reads each.
ALIGNMENT_FORMATS = {
    ".a2m": "fasta",
    ".a3m": "fasta",
    ".fasta": "fasta",
    ".fa": "fasta",
    ".faa": "fasta",
    ".afa": "fasta",
    ".sto": "stockholm",
    ".stk": "stockholm",
    ".stockholm": "stockholm",
}
