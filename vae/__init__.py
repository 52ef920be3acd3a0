"""Variational autoencoders for protein alignments and single-cell counts."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vae-workflow")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from vae.errors import VAEInputError

__all__ = ["VAEInputError", "__version__"]
