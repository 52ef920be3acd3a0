"""Textbook NB / ZINB log-densities (autograd), the reference for the fast count likelihood.

The package computes count likelihoods with :func:`vae.module._count_likelihood.
count_log_likelihood` (nonzero entries, hand-written gradients); the tests check it
against these formulas.
"""

from __future__ import annotations

import torch
from torch import nn

_EPS = 1e-8


def log_nb(x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Log-density of the negative binomial with mean ``mu`` and inverse dispersion ``theta``."""
    log_theta_mu = torch.log(theta + mu + _EPS)
    return (
        theta * (torch.log(theta + _EPS) - log_theta_mu)
        + x * (torch.log(mu + _EPS) - log_theta_mu)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
    )


def log_zinb(
    x: torch.Tensor, mu: torch.Tensor, theta: torch.Tensor, pi_logits: torch.Tensor
) -> torch.Tensor:
    """Log-density of the zero-inflated NB; ``pi_logits`` are the dropout logits."""
    softplus_pi = nn.functional.softplus(-pi_logits)
    log_theta_eps = torch.log(theta + _EPS)
    log_theta_mu = torch.log(theta + mu + _EPS)
    pi_theta_log = -pi_logits + theta * (log_theta_eps - log_theta_mu)
    case_zero = nn.functional.softplus(pi_theta_log) - softplus_pi
    case_non_zero = (
        -softplus_pi
        + pi_theta_log
        + x * (torch.log(mu + _EPS) - log_theta_mu)
        + torch.lgamma(x + theta)
        - torch.lgamma(theta)
        - torch.lgamma(x + 1)
    )
    zero = (x < _EPS).to(mu.dtype)
    return zero * case_zero + (1 - zero) * case_non_zero


def count_vae_log_likelihood(
    likelihood: str, x: torch.Tensor, px: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Per-cell ``log p(x | z)`` summed over genes from ``CountVAE.generative``'s output."""
    if likelihood == "zinb":
        return log_zinb(x, px["mu"], px["theta"], px["pi_logits"]).sum(-1)
    return log_nb(x, px["mu"], px["theta"]).sum(-1)
