"""Data-agnostic neural network blocks."""

from vae.nn._blocks import MLP, GaussianEncoder

__all__ = ["MLP", "GaussianEncoder"]
