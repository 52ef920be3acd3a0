"""scVI-style VAE for raw counts: (zero-inflated) negative binomial likelihood."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.distributions import Normal

from vae._sparse import CountBatch
from vae.module._base import BaseModule, LossOutput
from vae.module._count_likelihood import count_log_likelihood
from vae.nn import MLP, GaussianEncoder

_EPS = 1e-8


class CountVAE(BaseModule):
    """scVI-style VAE: encoder on ``log1p`` counts, NB/ZINB decoder with observed library size.

    Counts may be given as a dense tensor or as a :class:`~vae._sparse.CountBatch` (the
    nonzero entries, what training uses); the likelihood is computed from the nonzero
    entries (:mod:`vae.module._count_likelihood`). Calling the module runs :meth:`loss`.

    Parameters
    ----------
    n_genes
        Number of genes.
    n_batches
        Number of batch categories (0 or 1 means no batch covariate).
    n_latent, n_hidden, n_layers
        Sizes (scvi-tools defaults 10, 128, 1).
    likelihood
        ``"zinb"`` (scvi-tools' default) or ``"nb"``.
    dropout_rate
        Encoder dropout (scvi-tools default 0.1).
    encoder_norm, decoder_norm
        Normalisation of the hidden layers: ``"batch"`` (default, scvi-tools' default) or
        ``"layer"`` (no running statistics: what scArches recommends for a reference that
        new batches are mapped onto, :func:`vae.model.map_query_model`).
    """

    #: Adam's epsilon when the training config leaves it unset: scvi-tools' training plan
    #: uses 0.01; with torch's 1e-8 the latent kept more of the batch effect (cellbench query
    #: mixing 0.360 vs 0.411 over two seeds; scvi-tools 0.413; BENCHMARKS.md).
    default_adam_eps = 0.01

    def __init__(
        self,
        n_genes: int,
        *,
        n_batches: int = 0,
        n_latent: int = 10,
        n_hidden: int = 128,
        n_layers: int = 1,
        likelihood: Literal["nb", "zinb"] = "zinb",
        dropout_rate: float = 0.1,
        encoder_norm: Literal["batch", "layer"] = "batch",
        decoder_norm: Literal["batch", "layer"] = "batch",
    ) -> None:
        super().__init__()
        self.n_genes, self.n_batches, self.n_latent = n_genes, max(n_batches, 1), n_latent
        self.likelihood = likelihood
        for name, norm in (("encoder_norm", encoder_norm), ("decoder_norm", decoder_norm)):
            if norm not in ("batch", "layer"):
                raise ValueError(f"{name} must be 'batch' or 'layer', not {norm!r}")
        hidden = [n_hidden] * n_layers
        self.encoder = GaussianEncoder(
            n_genes + self._n_cov, n_latent, hidden, dropout_rate=dropout_rate, norm=encoder_norm
        )
        self.decoder = MLP(n_latent + self._n_cov, hidden, norm=decoder_norm)
        self.scale = nn.Linear(n_hidden, n_genes)
        self.dropout_logits = nn.Linear(n_hidden, n_genes) if likelihood == "zinb" else None
        self.log_theta = nn.Parameter(torch.randn(n_genes))

    @property
    def _n_cov(self) -> int:
        return self.n_batches if self.n_batches > 1 else 0

    def _with_batch(self, h: torch.Tensor, batch: torch.Tensor | None) -> torch.Tensor:
        if not self._n_cov:
            return h
        return torch.cat([h, nn.functional.one_hot(batch.long(), self.n_batches).to(h.dtype)], -1)

    def inference(self, x: torch.Tensor | CountBatch, batch: torch.Tensor | None = None) -> Normal:
        """Return ``q(z | x)``."""
        log_x = x.dense(torch.log1p(x.value)) if isinstance(x, CountBatch) else torch.log1p(x)
        return self.encoder(self._with_batch(log_x, batch))

    def _decode(
        self, z: torch.Tensor, batch: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log expression fractions ``log_softmax`` over genes and (ZINB) dropout logits."""
        hidden = self.decoder(self._with_batch(z, batch))
        log_scale = self._log_fractions(hidden)
        pi_logits = None if self.dropout_logits is None else self.dropout_logits(hidden).float()
        return log_scale, pi_logits

    def _log_fractions(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.scale(hidden).float(), dim=-1)

    def normalized_expression(
        self, z: torch.Tensor, batch: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Expression fractions ``(cells, genes)``: the decoder mean per unit library size.

        Each row sums to one; times a cell's library size it is the NB mean ``mu``.
        """
        hidden = self.decoder(self._with_batch(z, batch))
        return self._log_fractions(hidden).exp()

    def generative(
        self, z: torch.Tensor, library: torch.Tensor, batch: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Return NB mean ``mu``, inverse dispersion ``theta`` and (ZINB) dropout logits.

        Keys: ``scale`` (expression fractions), ``mu``, ``theta`` and, for ZINB,
        ``pi_logits``.
        """
        log_scale, pi_logits = self._decode(z, batch)
        scale = log_scale.exp()
        out = {"scale": scale, "mu": library[:, None] * scale, "theta": self.log_theta.exp()}
        if pi_logits is not None:
            out["pi_logits"] = pi_logits
        return out

    def loss(
        self,
        x: torch.Tensor | CountBatch,
        batch: torch.Tensor | None = None,
        *,
        sample: bool = True,
    ) -> LossOutput:
        """Compute the ELBO terms of a minibatch of counts ``(batch, genes)``."""
        counts = x if isinstance(x, CountBatch) else CountBatch.from_dense(x)
        return self.loss_given_posterior(
            counts, self.inference(counts, batch), batch, sample=sample
        )

    def loss_given_posterior(
        self,
        counts: CountBatch,
        qz: Normal,
        batch: torch.Tensor | None,
        *,
        sample: bool = True,
        lgamma_terms: torch.Tensor | None = None,
    ) -> LossOutput:
        """ELBO terms of ``counts`` given their posterior ``qz`` (what :meth:`loss` computes).

        For callers that compute ``q(z | x)`` their own way, e.g. query mapping with the
        frozen part of the encoder's first layer computed once per cell; with a frozen
        dispersion such a caller may also pass the cells' ``lgamma_terms``
        (:func:`~vae.module._count_likelihood.nb_lgamma_terms`).
        """
        z = qz.rsample() if sample else qz.loc
        log_ll = self._log_likelihood_at(counts, z, batch, lgamma_terms)
        # KL(N(m, s^2) || N(0, 1)) in closed form
        kl = (0.5 * (qz.loc.square() + qz.scale.square() - 1.0) - qz.scale.log()).sum(-1)
        return LossOutput(-log_ll, kl, torch.zeros((), device=counts.value.device))

    def _log_likelihood_at(
        self,
        counts: CountBatch,
        z: torch.Tensor,
        batch: torch.Tensor | None,
        lgamma_terms: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-cell ``log p(x | z, library, batch)`` (sparse-aware NB/ZINB)."""
        log_scale, pi_logits = self._decode(z, batch)
        log_library = counts.library().clamp(min=_EPS).log()
        return count_log_likelihood(
            log_scale + log_library[:, None],
            self.log_theta,
            pi_logits,
            counts.cell,
            counts.gene,
            counts.value,
            lgamma_terms,
        )

    def log_importance_weight(
        self,
        x: torch.Tensor | CountBatch,
        batch: torch.Tensor | None = None,
        *,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """``log p(x | z) + log p(z) - log q(z | x)`` per cell at ``z = mean + scale * noise``.

        The library size is observed, so this is the whole importance weight of ``z``;
        see :meth:`vae.model.BaseModel.log_evidence`.
        """
        counts = x if isinstance(x, CountBatch) else CountBatch.from_dense(x)
        qz = self.inference(counts, batch)
        z = qz.loc + qz.scale * noise
        pz = Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))
        log_ratio = (pz.log_prob(z) - qz.log_prob(z)).sum(-1)
        return self._log_likelihood_at(counts, z, batch) + log_ratio

    @torch.no_grad()
    def sample_counts(
        self,
        library: torch.Tensor,
        batch: torch.Tensor | None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Posterior-predictive counts, one cell per entry of ``library``.

        ``z`` defaults to draws from the prior. Uses the global torch random state;
        callers seed it (``torch.random.fork_rng``).
        """
        if z is None:
            z = torch.randn(library.shape[0], self.n_latent, device=library.device)
        px = self.generative(z, library, batch)
        theta = px["theta"].expand_as(px["mu"])
        rate = torch._standard_gamma(theta) * px["mu"] / theta  # gamma-Poisson mixture
        counts = torch.poisson(rate)
        if "pi_logits" in px:
            keep = torch.rand(counts.shape, device=counts.device)
            counts = counts * (keep > torch.sigmoid(px["pi_logits"]))
        return counts
