"""DeepSequence/EVE-style VAE with a categorical likelihood per alignment position."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from vae.module._base import BaseModule, LossOutput
from vae.module._sequence_decoder import SequenceDecoder
from vae.nn import GaussianEncoder, OneHotLinear, VariationalTensor


class SequenceVAE(BaseModule):
    """VAE over index-encoded aligned sequences (DeepSequence/EVE).

    The encoder is an MLP on the one-hot sequence (its first layer applied as an
    embedding bag, see :class:`~vae.nn.OneHotLinear`); the decoder is
    :class:`SequenceDecoder`, Bayesian by default. The global KL of the decoder
    weights is returned as ``kl_global``; the trainer divides it by the number of
    effective sequences, as EVE does. Calling the module runs :meth:`loss`.

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
        Dropout in the encoder hidden layers (EVE: 0).
    bayesian_decoder
        Variational decoder weights with their KL term (EVE: yes).
    output_conv_depth
        Width of the output dictionary ("convolution", EVE: 40; 0 disables).
    temperature_scaler
        Learn a global temperature on the logits (EVE: yes).
    decoder_dropout
        Dropout on the decoder's input and hidden layers (EVE: 0.1).
    site_offset
        Decode departures from a fixed per-column profile (see
        :class:`SequenceDecoder`; :meth:`set_site_offset` fills it).
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
        bayesian_decoder: bool = True,
        output_conv_depth: int = 40,
        temperature_scaler: bool = True,
        decoder_dropout: float = 0.1,
        site_offset: bool = False,
    ) -> None:
        super().__init__()
        self.n_positions, self.n_tokens, self.n_latent = n_positions, n_tokens, n_latent
        self.input_layer = OneHotLinear(n_positions, n_tokens, encoder_hidden[0])
        self.encoder = GaussianEncoder(
            encoder_hidden[0], n_latent, encoder_hidden[1:], dropout_rate=dropout_rate
        )
        self.input_dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        self.decoder = SequenceDecoder(
            n_latent,
            n_positions,
            n_tokens,
            decoder_hidden,
            bayesian=bayesian_decoder,
            output_conv_depth=output_conv_depth,
            temperature_scaler=temperature_scaler,
            dropout_rate=decoder_dropout,
            site_offset=site_offset,
        )

    @torch.no_grad()
    def set_site_offset(self, log_freq: torch.Tensor) -> None:
        """Set the decoder's logit offset to per-column log-frequencies ``(L, A)``.

        Each column is centred (softmax is shift-invariant), so the offset equals the
        site-independent model's log-probabilities up to a constant per column.
        """
        if self.decoder.site_offset is None:
            raise ValueError("this module was built without site_offset")
        centred = log_freq - log_freq.mean(-1, keepdim=True)
        self.decoder.site_offset.copy_(centred.reshape(-1).to(self.decoder.site_offset))

    def inference(self, codes: torch.Tensor) -> Normal:
        """Return ``q(z | x)`` for index-encoded sequences ``(batch, L)``."""
        return self.encoder(self.input_dropout(torch.relu(self.input_layer(codes))))

    def generative(self, z: torch.Tensor, *, sample: bool = True) -> dict[str, torch.Tensor]:
        """Return ``p(x | z)`` under one decoder draw (posterior-mean weights if not ``sample``).

        Keys: ``log_probs``, the per-position log-probabilities ``(batch, L, A)``, and
        ``kl_weights``, the KL of all decoder weights to their prior (a scalar, the same
        for every draw).
        """
        logits, kl_weights = self.decoder(z, sample)
        return {"log_probs": torch.log_softmax(logits.float(), dim=-1), "kl_weights": kl_weights}

    @contextlib.contextmanager
    def held_decoder_draw(self):
        """Within the block every forward pass uses one draw of the decoder weights."""
        tensors = [m for m in self.decoder.modules() if isinstance(m, VariationalTensor)]
        for tensor in tensors:
            tensor.hold()
        try:
            yield
        finally:
            for tensor in tensors:
                tensor.release()

    def loss(
        self, codes: torch.Tensor, *, sample: bool = True, noise: torch.Tensor | None = None
    ) -> LossOutput:
        """ELBO terms of a minibatch; ``sample=False`` uses posterior means throughout.

        ``noise`` (standard normal, ``(n_latent,)`` or ``(batch, n_latent)``) replaces the
        latent draw: ``z = mean + scale * noise``; shared noise scores sequences with
        common random numbers.
        """
        qz = self.inference(codes)
        if not sample:
            z = qz.loc
        elif noise is not None:
            z = qz.loc + qz.scale * noise
        else:
            z = qz.rsample()
        log_likelihood, kl_weights = self._log_likelihood_at(codes, z, sample=sample)
        pz = Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))
        kl = kl_divergence(qz, pz).sum(-1)
        return LossOutput(-log_likelihood, kl, kl_weights)

    def _log_likelihood_at(
        self, codes: torch.Tensor, z: torch.Tensor, *, sample: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence ``log p(x | z)`` under one decoder draw, and the weights' KL."""
        px = self.generative(z, sample=sample)
        log_px = px["log_probs"].gather(-1, codes.long().unsqueeze(-1)).squeeze(-1).sum(-1)
        return log_px, px["kl_weights"]

    def log_importance_weight(self, codes: torch.Tensor, *, noise: torch.Tensor) -> torch.Tensor:
        """``log p(x | z) + log p(z) - log q(z | x)`` per sequence at ``z = mean + scale * noise``.

        Its log-mean-exp over draws is the importance-weighted estimate of ``log p(x)``
        (Burda et al. 2016), tighter than the ELBO and equal to it for one draw in
        expectation. Decoder weights are drawn as in :meth:`loss` (or held).
        """
        qz = self.inference(codes)
        z = qz.loc + qz.scale * noise
        log_likelihood, _ = self._log_likelihood_at(codes, z)
        pz = Normal(torch.zeros_like(qz.loc), torch.ones_like(qz.scale))
        return log_likelihood + (pz.log_prob(z) - qz.log_prob(z)).sum(-1)

    @torch.no_grad()
    def sample_codes(self, n: int) -> torch.Tensor:
        """Draw ``n`` sequences from the prior, as indices ``(n, L)``.

        Each sequence uses its own ``z`` and the decoder's posterior-mean weights. Uses
        the global torch random state; callers seed it (``torch.random.fork_rng``).
        """
        z = torch.randn(n, self.n_latent, device=self.decoder.out_bias.mean.device)
        probs = self.generative(z, sample=False)["log_probs"].exp().view(-1, self.n_tokens)
        return torch.multinomial(probs, 1).view(n, self.n_positions)
