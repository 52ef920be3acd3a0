"""Reading and preparing protein alignments and single-cell counts.

The names below are imported on first use (:pep:`562`), so that a light module of the
package, e.g. the family search (:mod:`vae.data._search`), does not import torch,
scanpy and anndata with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the submodule that defines it.
_WHERE = {
    "counts_matrix": "_anndata",
    "prepare_counts": "_anndata",
    "preprocess_obs_keys": "_anndata",
    "read_counts_file": "_anndata",
    "read_variant_labels": "_labels",
    "Alignment": "_msa",
    "alignment_to_anndata": "_msa",
    "decode": "_msa",
    "encode": "_msa",
    "read_alignment": "_msa",
    "read_records": "_msa",
    "select_positions": "_msa",
    "encode_variants": "_mutants",
    "parse_mutant": "_mutants",
    "read_scan": "_scan",
    "sequence_weights": "_weights",
}

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

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
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


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use, or a submodule by its name."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    if name.startswith("_") and not name.startswith("__"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
