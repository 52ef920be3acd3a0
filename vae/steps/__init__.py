"""One function per workflow step; the Snakemake scripts and the CLI call these.

One module per stage, named like ``workflow/rules/``. Every step reads its inputs,
calls the library, and writes its outputs atomically, so a failure leaves earlier
results untouched and no partial file behind. Domain logic lives in the library
(:mod:`vae.data`, :mod:`vae.model`, :mod:`vae.metrics`), not here.

The steps are imported on first use (:pep:`562`): a step imports only what it needs
(the family search, ``align_family``, runs without torch, scanpy and anndata loaded).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> the step module that defines it.
_WHERE = {
    "align_family": "align",
    "embed_new": "embed",
    "embed_preprocessed": "embed",
    "evaluate_expression": "evaluate",
    "evaluate_protein": "evaluate",
    "map_query": "map",
    "preprocess_expression": "preprocess",
    "preprocess_protein": "preprocess",
    "sample_expression": "sample",
    "sample_protein": "sample",
    "score_eve_global": "score",
    "score_variant_table": "score",
    "score_variants": "score",
    "summarise_protein": "summary",
    "BUILTIN_SOURCES": "sources",
    "fetch_source": "sources",
    "train_model": "train",
}

__all__ = [
    "BUILTIN_SOURCES",
    "align_family",
    "embed_new",
    "embed_preprocessed",
    "evaluate_expression",
    "evaluate_protein",
    "fetch_source",
    "map_query",
    "preprocess_expression",
    "preprocess_protein",
    "sample_expression",
    "sample_protein",
    "score_eve_global",
    "score_variant_table",
    "score_variants",
    "summarise_protein",
    "train_model",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from vae.steps.align import align_family
    from vae.steps.embed import embed_new, embed_preprocessed
    from vae.steps.evaluate import evaluate_expression, evaluate_protein
    from vae.steps.map import map_query
    from vae.steps.preprocess import preprocess_expression, preprocess_protein
    from vae.steps.sample import sample_expression, sample_protein
    from vae.steps.score import score_eve_global, score_variant_table, score_variants
    from vae.steps.sources import BUILTIN_SOURCES, fetch_source
    from vae.steps.summary import summarise_protein
    from vae.steps.train import train_model


def __getattr__(name: str) -> Any:
    """Import a step's module on first use."""
    if name in _WHERE:
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
