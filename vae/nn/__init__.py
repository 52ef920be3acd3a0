"""Data-agnostic neural network blocks."""

from vae.nn._bayesian import BayesianLinear, VariationalTensor
from vae.nn._blocks import MLP, GaussianEncoder, OneHotLinear

__all__ = ["MLP", "BayesianLinear", "GaussianEncoder", "OneHotLinear", "VariationalTensor"]
