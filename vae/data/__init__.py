"""Reading and preparing protein alignments and single-cell counts."""

from vae.data._anndata import (
    counts_matrix,
    prepare_counts,
    preprocess_obs_keys,
    read_counts_file,
)
from vae.data._labels import read_variant_labels
from vae.data._msa import (
    Alignment,
    alignment_to_anndata,
    decode,
    encode,
    read_alignment,
    read_records,
    select_positions,
)
from vae.data._mutants import encode_variants, parse_mutant
from vae.data._scan import read_scan
from vae.data._weights import sequence_weights

__all__ = [
    "Alignment",
    "alignment_to_anndata",
    "counts_matrix",
    "decode",
    "encode",
    "encode_variants",
    "parse_mutant",
    "prepare_counts",
    "preprocess_obs_keys",
    "read_alignment",
    "read_counts_file",
    "read_records",
    "read_scan",
    "read_variant_labels",
    "select_positions",
    "sequence_weights",
]
