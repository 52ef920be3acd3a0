"""Fast NB / ZINB log-likelihood from the nonzero counts, with hand-written gradients.

Autograd through the textbook formulas (``log_nb``/``log_zinb`` in
``tests/_reference_likelihoods.py``) costs about fifty passes over the ``cells x genes``
minibatch per step, among them ``lgamma`` and ``digamma`` over every entry. Here every
term that has a factor ``x`` or is an ``lgamma``/``digamma`` of ``x`` is evaluated on the
nonzero entries only (zero for ``x = 0``), the dense part is the likelihood of an all-zero
matrix, and the gradients are closed-form expressions of a few saved tensors.

With ``r = mu / (theta + mu)`` and ``nb0 = theta * log(theta / (theta + mu))`` (the NB
log-probability of a zero), the per-entry log-likelihood is

- NB: ``nb0 + x * (log mu - log(theta + mu)) + lgamma(x + theta) - lgamma(theta)
  - lgamma(x + 1)``;
- ZINB with dropout logit ``p`` (scVI's parametrisation): ``logaddexp(p, nb0) - softplus(p)``
  for ``x = 0`` and ``NB(x) - softplus(p)`` otherwise.

Gradients, with ``w = sigmoid(nb0 - p)`` at zeros and ``w = 1`` at nonzeros (NB: ``w = 1``):
``d/d log mu = x - (x + w theta) r``; ``d/d log theta = w nb0 + w theta r - x (1 - r)
+ theta (digamma(x + theta) - digamma(theta))``; ``d/dp = 1 - w - sigmoid(p)``.
``tests/test_count_likelihood.py`` checks values and gradients against the autograd
formulas.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _take(matrix: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Entries of a contiguous matrix at flat indices (``index_select`` is the fastest gather)."""
    return matrix.view(-1).index_select(0, flat)


class _CountLogLikelihood(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_mu, log_theta, pi_logits, cell, gene, value, lgamma_terms):  # noqa: D102
        n_genes = log_mu.shape[1]
        flat = cell * n_genes + gene
        theta = log_theta.exp()
        mu = log_mu.exp()
        total = mu + theta
        r = mu.div_(total)  # mu / (theta + mu), in mu's buffer
        log_total = total.log_()
        theta_nz = theta.index_select(0, gene)
        sparse = value * (_take(log_mu, flat) - _take(log_total, flat))
        if lgamma_terms is None:
            sparse = (
                sparse
                + torch.lgamma(value + theta_nz)
                - torch.lgamma(theta).index_select(0, gene)
                - torch.lgamma(value + 1)
            )
        nb0 = log_total.neg_().add_(log_theta).mul_(theta)  # theta * log(theta / (theta + mu))
        if pi_logits is None:
            ll = nb0.sum(-1)
        else:
            diff = nb0 - pi_logits
            zero_case = F.softplus(diff).add_(pi_logits)  # logaddexp(p, nb0)
            ll = zero_case.sum(-1) - F.softplus(pi_logits).sum(-1)
            sparse += _take(nb0, flat) - _take(zero_case, flat)
        ll.index_add_(0, cell, sparse)
        if lgamma_terms is not None:
            ll += lgamma_terms
        saved = (r, nb0, theta, theta_nz, cell, gene, value, flat)
        ctx.save_for_backward(*saved, *(() if pi_logits is None else (diff, pi_logits)))
        return ll

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        r, nb0, theta, theta_nz, cell, gene, value, flat = ctx.saved_tensors[:8]
        g = grad[:, None]
        grad_pi = None
        if len(ctx.saved_tensors) > 8:
            diff, pi_logits = ctx.saved_tensors[8:]
            w = torch.sigmoid(diff)
            w.view(-1).index_fill_(0, flat, 1.0)
            grad_pi = torch.sigmoid(pi_logits).add_(w).neg_().add_(1.0).mul_(g)
            d_log_mu = (w * theta).mul_(r).neg_()
            weighted_nb0 = w.mul_(nb0)
        else:
            d_log_mu = r.mul(theta).neg_()
            weighted_nb0 = nb0
        # d/d log mu = x - (x + w theta) r: -w theta r everywhere plus x (1 - r) at nonzeros
        d_log_mu.view(-1).index_add_(0, flat, value * (1.0 - _take(r, flat)))
        grad_log_theta = None
        # a frozen dispersion (query mapping) needs no digamma pass over the nonzeros
        if ctx.needs_input_grad[1]:
            grad_log_theta = grad @ weighted_nb0 - grad @ d_log_mu
            digamma = torch.digamma(value + theta_nz) - torch.digamma(theta).index_select(0, gene)
            grad_log_theta.index_add_(
                0, gene, digamma.mul_(theta_nz).mul_(grad.index_select(0, cell))
            )
        return d_log_mu.mul_(g), grad_log_theta, grad_pi, None, None, None, None


def count_log_likelihood(
    log_mu: torch.Tensor,
    log_theta: torch.Tensor,
    pi_logits: torch.Tensor | None,
    cell: torch.Tensor,
    gene: torch.Tensor,
    value: torch.Tensor,
    lgamma_terms: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-cell NB (``pi_logits is None``) or ZINB log-likelihood, summed over genes.

    Parameters
    ----------
    log_mu
        Log NB means ``(cells, genes)``.
    log_theta
        Log inverse dispersion per gene ``(genes,)``.
    pi_logits
        Zero-inflation logits ``(cells, genes)``, or ``None`` for NB.
    cell, gene, value
        Row, column and value of the nonzero counts (all other counts are zero).
    lgamma_terms
        The cells' :func:`nb_lgamma_terms` at this ``log_theta``, computed once when the
        dispersion is fixed (query mapping); ``None`` computes them.

    Returns
    -------
    torch.Tensor
        ``log p(x | mu, theta[, pi])`` per cell, shape ``(cells,)``.
    """
    return _CountLogLikelihood.apply(log_mu, log_theta, pi_logits, cell, gene, value, lgamma_terms)


def nb_lgamma_terms(
    log_theta: torch.Tensor,
    cell: torch.Tensor,
    gene: torch.Tensor,
    value: torch.Tensor,
    n_cells: int,
) -> torch.Tensor:
    """Return the log-likelihood terms of each cell that do not depend on ``mu`` or dropout.

    Per cell, the sum over its nonzero counts of ``lgamma(x + theta) - lgamma(theta)
    - lgamma(x + 1)``: fixed while the dispersion is.

    Parameters
    ----------
    log_theta
        Log inverse dispersion per gene ``(genes,)``.
    cell, gene, value
        Row, column and value of the nonzero counts.
    n_cells
        Number of cells (rows).
    """
    theta = log_theta.exp()
    terms = (
        torch.lgamma(value + theta.index_select(0, gene))
        - torch.lgamma(theta).index_select(0, gene)
        - torch.lgamma(value + 1)
    )
    return torch.zeros(n_cells, dtype=terms.dtype, device=terms.device).index_add_(0, cell, terms)
