"""One function per workflow step; the Snakemake scripts and the CLI call these.

One module per stage, named like ``workflow/rules/``. Every step reads its inputs,
calls the library, and writes its outputs atomically, so a failure leaves earlier
results untouched and no partial file behind. Domain logic lives in the library
(:mod:`vae.data`, :mod:`vae.model`, :mod:`vae.metrics`), not here.
"""

from vae.steps.align import align_family
from vae.steps.embed import embed_new, embed_preprocessed
from vae.steps.evaluate import evaluate_expression, evaluate_protein
from vae.steps.map import map_query
from vae.steps.preprocess import preprocess_expression, preprocess_protein
from vae.steps.sample import sample_expression, sample_protein
from vae.steps.score import score_eve_global, score_variant_table, score_variants
from vae.steps.sources import BUILTIN_SOURCES, fetch_source
from vae.steps.train import train_model

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
    "train_model",
]
