"""DeepSequence/EVE-style VAE with a categorical likelihood per alignment position."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from vae.module._base import LossOutput
from vae.nn import MLP, GaussianEncoder


class SequenceVAE(nn.Module):
    """VAE over one-hot aligned sequences.

    Parameters
    ----------
    n_positions
        Alignment length ``L``.
    n_tokens
        Alphabet size ``A`` (20 amino acids + gap).
    n_latent
        Latent dimension.
    encoder_hidden, decoder_hidden
        Hidden widths (EVE: 2000-1000-300 and 300-1000-2000).
    dropout_rate
        Dropout in the encoder and decoder hidden layers.
    """

    def __init__(
        self,
        n_positions: int,
        n_tokens: int,
        *,
        n_latent: int = 50,
        encoder_hidden: Sequence[int] = (2000, 1000, 300),
        decoder_hidden: Sequence[int] = (300, 1000, 2000),
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.n_positions, self.n_tokens, self.n_latent = n_positions, n_tokens, n_latent
        self.encoder = GaussianEncoder(
            n_positions * n_tokens, n_latent, encoder_hidden, dropout_rate=dropout_rate
        )
        self.decoder = MLP(n_latent, decoder_hidden, dropout_rate=dropout_rate)
        self.logits = nn.Linear(self.decoder.n_output, n_positions * n_tokens)

    def _one_hot(self, codes: torch.Tensor) -> torch.Tensor:
        return nn.functional.one_hot(codes.long(), self.n_tokens).to(self.logits.weight.dtype)

    def inference(self, codes: torch.Tensor) -> Normal:
        """Return ``q(z | x)`` for index-encoded sequences ``(batch, L)``."""
        return self.encoder(self._one_hot(codes).flatten(1))

    def generative(self, z: torch.Tensor) -> torch.Tensor:
        """Return per-position log-probabilities ``(batch, L, A)`` of ``p(x | z)``."""
        logits = self.logits(self.decoder(z)).view(-1, self.n_positions, self.n_tokens)
        return torch.log_softmax(logits.float(), dim=-1)

    def forward(self, codes: torch.Tensor, *, sample: bool = True) -> LossOutput:
        """Compute the ELBO terms of a minibatch of index-encoded sequences."""
        qz = self.inference(codes)
        z = qz.rsample() if sample else qz.loc
        log_px = self.generative(z)
        reconstruction = -log_px.gather(-1, codes.long().unsqueeze(-1)).squeeze(-1).sum(-1)
        pz = Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))
        kl = kl_divergence(qz, pz).sum(-1)
        return LossOutput(reconstruction, kl, torch.zeros((), device=codes.device))

    @torch.no_grad()
    def sample_codes(self, n: int) -> torch.Tensor:
        """Draw ``n`` sequences from the prior, as indices ``(n, L)``.

        Uses the global torch random state; callers seed it (``torch.random.fork_rng``).
        """
        z = torch.randn(n, self.n_latent, device=self.logits.weight.device)
        probs = self.generative(z).exp().view(-1, self.n_tokens)
        return torch.multinomial(probs, 1).view(n, self.n_positions)
