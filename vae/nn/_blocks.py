"""Fully connected blocks shared by both domains."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Normal


class MLP(nn.Sequential):
    """Stack of ``Linear -> [LayerNorm|BatchNorm] -> activation -> Dropout`` layers.

    Parameters
    ----------
    n_input
        Input width.
    n_hidden
        Width of each hidden layer, in order.
    dropout_rate
        Dropout after each layer.
    activation
        Activation module class.
    norm
        ``"batch"``, ``"layer"`` or ``None``.
    """

    def __init__(
        self,
        n_input: int,
        n_hidden: Sequence[int],
        *,
        dropout_rate: float = 0.0,
        activation: type[nn.Module] = nn.ReLU,
        norm: str | None = None,
    ) -> None:
        layers: list[nn.Module] = []
        width = n_input
        for out in n_hidden:
            layers.append(nn.Linear(width, out))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(out, momentum=0.01, eps=1e-3))
            elif norm == "layer":
                layers.append(nn.LayerNorm(out, elementwise_affine=False))
            layers.append(activation())
            if dropout_rate > 0:
                layers.append(nn.Dropout(dropout_rate))
            width = out
        super().__init__(*layers)
        self.n_output = width


class GaussianEncoder(nn.Module):
    """Map inputs to a diagonal Gaussian posterior ``q(z | x)``.

    Parameters
    ----------
    n_input
        Input width.
    n_latent
        Latent dimension.
    n_hidden
        Hidden layer widths.
    **mlp_kwargs
        Passed to :class:`MLP`.
    """

    def __init__(self, n_input: int, n_latent: int, n_hidden: Sequence[int], **mlp_kwargs) -> None:
        super().__init__()
        self.body = MLP(n_input, n_hidden, **mlp_kwargs)
        self.mean = nn.Linear(self.body.n_output, n_latent)
        self.log_var = nn.Linear(self.body.n_output, n_latent)

    def forward(self, x: torch.Tensor) -> Normal:
        """Return ``q(z | x)``."""
        return self.posterior(self.body(x))

    def posterior(self, hidden: torch.Tensor) -> Normal:
        """Return ``q(z | x)`` from the output of :attr:`body`."""
        log_var = self.log_var(hidden).clamp(-12.0, 8.0)
        # no argument validation: NaN from diverged weights must reach the trainer's
        # finiteness check (NonFiniteLossError), not fail here with a ValueError
        return Normal(self.mean(hidden), torch.exp(0.5 * log_var), validate_args=False)


class _OneHotMatmul(torch.autograd.Function):
    """``one_hot(rows) @ weight``: gather-sum forward, dense-product weight gradient.

    The forward pass sums ``L`` weight rows per example (an embedding bag). The
    weight gradient ``one_hot^T @ grad`` is one dense matrix product, which on CPUs
    beats the embedding bag's sort-and-scatter backward several times over.
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        ctx.n_rows = weight.shape[0]
        return nn.functional.embedding_bag(rows, weight, mode="sum")

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        one_hot = torch.zeros(rows.shape[0], ctx.n_rows, dtype=grad.dtype, device=grad.device)
        one_hot.scatter_(1, rows, 1.0)
        return None, one_hot.T @ grad


class OneHotLinear(nn.Module):
    """``one_hot(codes).flatten(1) @ W + b`` without building the one-hot input.

    A linear layer on ``L`` categorical inputs with ``A`` categories is a sum of ``L``
    rows of ``W``: ``L * n_out`` additions per example instead of ``L * A * n_out``
    multiply-adds, with the same result and gradients (no gradient for the codes).

    Parameters
    ----------
    n_positions, n_tokens
        ``L`` and ``A``.
    n_out
        Output width.
    """

    def __init__(self, n_positions: int, n_tokens: int, n_out: int) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        reference = nn.Linear(n_positions * n_tokens, n_out)  # same initialisation
        self.weight = nn.Parameter(reference.weight.detach().T.contiguous())
        self.bias = nn.Parameter(reference.bias.detach().clone())
        self.register_buffer("offsets", torch.arange(n_positions) * n_tokens, persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Map ``(batch, L)`` integer codes to ``(batch, n_out)``."""
        rows = codes.long() + self.offsets
        return _OneHotMatmul.apply(rows, self.weight) + self.bias
