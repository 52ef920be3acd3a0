"""Loss container shared by all modules."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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

    def loss(
        self, kl_weight: float, n_total: float, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Minibatch objective: mean weighted ``recon + kl_weight*KL`` plus ``KL_global/n``."""
        per_example = self.reconstruction + kl_weight * self.kl_local
        if weights is None:
            mean = per_example.mean()
        else:
            mean = (per_example * weights).sum() / weights.sum()
        return mean + kl_weight * self.kl_global / n_total
