"""Tiny trained models shared by the CLI and bad-input tests."""

from __future__ import annotations

from pathlib import Path

from vae import steps

TINY = {"max_steps": 20, "batch_size": 32, "eval_every": 10, "checkpoint_every": 0}


def train_tiny_expression(source: Path, root: Path, name: str, **preprocess_kwargs) -> Path:
    """Preprocess ``source`` counts and train a tiny expression model; return its folder."""
    steps.preprocess_expression(source, root / f"{name}.h5ad", **preprocess_kwargs)
    steps.train_model(
        root / f"{name}.h5ad",
        root / f"{name}_model",
        root / f"{name}_history.tsv",
        domain="expression",
        model_kwargs={"n_latent": 3, "n_hidden": 16},
        train_kwargs=TINY,
        device="cpu",
    )
    return root / f"{name}_model"


def train_tiny_protein(source: Path, root: Path, name: str) -> Path:
    """Preprocess the ``source`` alignment and train a tiny protein model; return its folder."""
    steps.preprocess_protein(source, root / f"{name}.h5ad", device="cpu")
    steps.train_model(
        root / f"{name}.h5ad",
        root / f"{name}_model",
        root / f"{name}_history.tsv",
        domain="protein",
        model_kwargs={"n_latent": 3, "encoder_hidden": [16], "decoder_hidden": [16]},
        train_kwargs=TINY,
        device="cpu",
    )
    return root / f"{name}_model"
