"""The contract every VAE module keeps, and the loss container they return."""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.distributions import Normal


@dataclass
class LossOutput:
    """Per-example ELBO terms of a minibatch.

    Attributes
    ----------
    reconstruction
        ``-log p(x | z)`` per example, shape ``(batch,)``.
    kl_local
        ``KL(q(z|x) || p(z))`` per example, shape ``(batch,)``.
    kl_global
        KL of global (e.g. Bayesian weight) terms for the whole data set, a scalar.
    """

    reconstruction: torch.Tensor
    kl_local: torch.Tensor
    kl_global: torch.Tensor

    def neg_elbo(self) -> torch.Tensor:
        """Per-example negative ELBO without global terms, shape ``(batch,)``."""
        return self.reconstruction + self.kl_local

    def loss(self, kl_weight: float, n_total: float) -> torch.Tensor:
        """Minibatch objective: mean ``recon + kl_weight*KL`` plus ``kl_weight*KL_global/n``.

        Parameters
        ----------
        kl_weight
            Weight of the KL terms (KL warm-up).
        n_total
            Effective number of training examples, which the global KL is spread over.

        Returns
        -------
        torch.Tensor
            The scalar the trainer minimises.
        """
        per_example = self.reconstruction + kl_weight * self.kl_local
        return per_example.mean() + kl_weight * self.kl_global / n_total


class BaseModule(nn.Module, metaclass=abc.ABCMeta):
    """A VAE with a Gaussian latent space: what the trainer and the models rely on.

    A minibatch is passed by keyword, one argument per named input of the row store
    (see :class:`~vae.train.RowStore`); the same names are the arguments of
    :meth:`inference`, :meth:`loss` and :meth:`log_importance_weight`. Calling the
    module runs :meth:`loss`, which is what :class:`~vae.train.Trainer` minimises.

    Attributes
    ----------
    n_latent
        Width of the latent space.
    """

    n_latent: int

    @abc.abstractmethod
    def inference(self, *inputs: Any, **covariates: Any) -> Normal:
        """Return the encoder's posterior ``q(z | x)`` for a minibatch."""

    @abc.abstractmethod
    def generative(self, z: torch.Tensor, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        """Return the parameters of ``p(x | z)`` by name, one row per latent code."""

    @abc.abstractmethod
    def loss(self, *inputs: Any, sample: bool = True, **covariates: Any) -> LossOutput:
        """Return the ELBO terms of a minibatch; ``sample=False`` uses posterior means."""

    @abc.abstractmethod
    def log_importance_weight(
        self, *inputs: Any, noise: torch.Tensor, **covariates: Any
    ) -> torch.Tensor:
        """Return ``log p(x | z) + log p(z) - log q(z | x)`` per example.

        ``z = mean + scale * noise`` with standard normal ``noise`` of the latent's shape;
        the log-mean-exp over draws is the importance-weighted ``log p(x)`` bound.
        """

    def forward(self, *inputs: Any, **kwargs: Any) -> LossOutput:
        """Run :meth:`loss`: ``module(**minibatch)``, as the trainer calls it."""
        return self.loss(*inputs, **kwargs)
