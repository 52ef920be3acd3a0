"""Variational (Bayesian) weights as in DeepSequence/EVE: a Gaussian per parameter."""

from __future__ import annotations

import math

import torch
from torch import nn

LOG_VAR_INIT = -10.0  # EVE/DeepSequence: start with nearly deterministic weights


class _SampleWithKL(torch.autograd.Function):
    """``w = mean + exp(log_var / 2) * eps`` and ``KL(N(mean, exp(log_var)) || N(0, 1))``.

    One function for both so that the large output-layer tensors are read a few times
    per step instead of once per elementwise autograd node (same values, same
    gradients as the composed expression; ``eps`` from the global torch generator).
    """

    @staticmethod
    def forward(ctx, mean: torch.Tensor, log_var: torch.Tensor):
        std = torch.mul(log_var, 0.5).exp_()
        eps = torch.randn_like(mean)
        weight = torch.addcmul(mean, std, eps)
        flat_std, flat_mean = std.reshape(-1), mean.reshape(-1)
        kl = 0.5 * (
            torch.dot(flat_std, flat_std)
            + torch.dot(flat_mean, flat_mean)
            - log_var.sum()
            - mean.numel()
        )
        ctx.save_for_backward(mean, std, eps)
        return weight, kl

    @staticmethod
    def backward(ctx, grad_weight: torch.Tensor | None, grad_kl: torch.Tensor | None):
        # the saved std and eps are used once, so they are overwritten in place
        mean, std, eps = ctx.saved_tensors
        if grad_weight is None:
            grad_weight = torch.zeros_like(mean)
        if grad_kl is None:
            grad_kl = mean.new_zeros(())
        # d w / d log_var = eps * std / 2;  d KL / d log_var = (std**2 - 1) / 2
        grad_log_var = eps.mul_(std).mul_(grad_weight)
        grad_log_var.addcmul_(std.square_().sub_(1.0), grad_kl).mul_(0.5)
        # d w / d mean = 1;  d KL / d mean = mean
        grad_mean = torch.addcmul(grad_weight, mean, grad_kl)
        return grad_mean, grad_log_var


class VariationalTensor(nn.Module):
    """A tensor with a factorised Gaussian posterior ``N(mean, exp(log_var))``.

    With ``bayesian=False`` it is a plain parameter (no variance, KL 0), so one
    decoder class serves both the Bayesian and the point-estimate variants.

    Parameters
    ----------
    mean
        Initial mean (its shape is the tensor's shape).
    bayesian
        Whether to learn a variance and draw samples.
    log_var_init
        Initial log-variance.
    """

    def __init__(
        self, mean: torch.Tensor, *, bayesian: bool = True, log_var_init: float = LOG_VAR_INIT
    ) -> None:
        super().__init__()
        self.mean = nn.Parameter(mean)
        self.log_var = nn.Parameter(torch.full_like(mean, log_var_init)) if bayesian else None
        self._held: tuple[torch.Tensor, torch.Tensor] | None = None

    def hold(self) -> None:
        """Draw once (no gradient) and return that draw from :meth:`draw` until :meth:`release`.

        Used to score many sequences under the same weights (common random numbers).
        """
        with torch.no_grad():
            self._held = None
            self._held = self.draw(sample=True)

    def release(self) -> None:
        """Go back to a fresh draw per call."""
        self._held = None

    def draw(self, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Return a reparameterised draw (or the mean) and the KL to ``N(0, 1)``.

        The KL is 0 for a non-Bayesian tensor; with ``sample=False`` the mean is
        returned with the (still exact) KL of the posterior. While held (:meth:`hold`),
        a sampling call returns the held draw.
        """
        if self.log_var is None:
            return self.mean, self.mean.new_zeros(())
        if sample and self._held is not None:
            return self._held
        if not sample:
            return self.mean, self.kl()
        return _SampleWithKL.apply(self.mean, self.log_var)

    def forward(self, sample: bool = True) -> torch.Tensor:
        """Return a reparameterised draw (``sample=True``) or the posterior mean."""
        return self.draw(sample)[0]

    def kl(self) -> torch.Tensor:
        """``KL(q || N(0, 1))`` summed over the elements (0 when not Bayesian)."""
        if self.log_var is None:
            return self.mean.new_zeros(())
        return 0.5 * (self.log_var.exp() + self.mean.square() - 1.0 - self.log_var).sum()


def _linear_init(n_in: int, n_out: int) -> torch.Tensor:
    weight = torch.empty(n_out, n_in)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))  # nn.Linear's default
    return weight


class BayesianLinear(nn.Module):
    """``y = x W^T + b`` with variational ``W`` and ``b`` (biases start at 0.1, as EVE)."""

    def __init__(self, n_in: int, n_out: int, *, bayesian: bool = True) -> None:
        super().__init__()
        self.weight = VariationalTensor(_linear_init(n_in, n_out), bayesian=bayesian)
        self.bias = VariationalTensor(torch.full((n_out,), 0.1), bayesian=bayesian)

    def forward(self, x: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply one draw of the weights to ``x``; also return the draw's KL term."""
        weight, kl_weight = self.weight.draw(sample)
        bias, kl_bias = self.bias.draw(sample)
        return nn.functional.linear(x, weight, bias), kl_weight + kl_bias
