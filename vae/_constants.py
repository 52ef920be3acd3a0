"""Keys and file names shared across the package."""

from __future__ import annotations

from typing import NamedTuple


class _Keys(NamedTuple):
    X_VAE: str = "X_vae"
    WEIGHT: str = "weight"


class _Files(NamedTuple):
    MODEL: str = "model.pt"
    MODEL_INFO: str = "model.json"
    MANIFEST: str = "manifest.json"
    FAMILY_HMM: str = "family.hmm"


KEYS = _Keys()
FILES = _Files()
