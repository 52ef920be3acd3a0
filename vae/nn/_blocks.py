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
        hidden = self.body(x)
        log_var = self.log_var(hidden).clamp(-12.0, 8.0)
        # no argument validation: NaN from diverged weights must reach the trainer's
        # finiteness check (NonFiniteLossError), not fail here with a ValueError
        return Normal(self.mean(hidden), torch.exp(0.5 * log_var), validate_args=False)
