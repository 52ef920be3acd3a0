"""DeepSequence/EVE decoder: (Bayesian) MLP, output dictionary convolution, temperature."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vae.nn import BayesianLinear, VariationalTensor


class SequenceDecoder(nn.Module):
    """Map latent codes to per-position logits ``(batch, L, A)``.

    The last layer's weights are factorised as in DeepSequence: a ``(H, L, C)`` tensor
    times a shared ``(C, A)`` dictionary (the width-``C`` "output convolution"), then
    scaled by a global softplus temperature. With ``bayesian=True`` every weight has a
    Gaussian posterior, one draw per forward pass, and :meth:`kl` is the KL of all of
    them to ``N(0, 1)`` (EVE's ``KLD_global_parameters``).

    Parameters
    ----------
    n_latent, n_positions, n_tokens
        Latent width, ``L`` and ``A``.
    hidden
        Hidden widths (EVE: 300-1000-2000).
    bayesian
        Variational weights (EVE default) or point estimates.
    output_conv_depth
        ``C``; 0 uses a plain ``(H, L*A)`` output matrix.
    temperature_scaler
        Learn the global softplus temperature on the logits.
    dropout_rate
        Dropout on the latent input and every hidden layer (EVE: 0.1).
    site_offset
        Add a fixed per-column offset (buffer ``site_offset``, ``(L*A,)``, zeros until
        set, e.g. to the site-independent log-frequencies) to the logits outside the
        temperature: the network then models departures from that profile, and the
        weights' prior shrinks towards it instead of towards uniform columns.
    """

    def __init__(
        self,
        n_latent: int,
        n_positions: int,
        n_tokens: int,
        hidden: Sequence[int] = (300, 1000, 2000),
        *,
        bayesian: bool = True,
        output_conv_depth: int = 40,
        temperature_scaler: bool = True,
        dropout_rate: float = 0.1,
        site_offset: bool = False,
    ) -> None:
        super().__init__()
        self.n_positions, self.n_tokens = n_positions, n_tokens
        widths = [n_latent, *hidden]
        self.layers = nn.ModuleList(
            BayesianLinear(a, b, bayesian=bayesian)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout_rate) if dropout_rate > 0 else nn.Identity()
        n_hidden = widths[-1]
        channels = output_conv_depth if output_conv_depth > 0 else n_tokens
        weight = torch.empty(n_hidden, n_positions * channels)
        nn.init.xavier_normal_(weight)
        self.out_weight = VariationalTensor(weight, bayesian=bayesian)
        self.dictionary = None
        if output_conv_depth > 0:
            dictionary = torch.empty(output_conv_depth, n_tokens)
            bound = output_conv_depth**-0.5  # Conv1d's default init for kernel size 1
            nn.init.uniform_(dictionary, -bound, bound)
            self.dictionary = VariationalTensor(dictionary, bayesian=bayesian)
        self.out_bias = VariationalTensor(
            torch.full((n_positions * n_tokens,), 0.1), bayesian=bayesian
        )
        self.temperature = (
            VariationalTensor(torch.ones(1), bayesian=bayesian) if temperature_scaler else None
        )
        if site_offset:
            self.register_buffer("site_offset", torch.zeros(n_positions * n_tokens))
        else:
            self.site_offset = None

    def output_matrix(self, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """One draw of the ``(H, L*A)`` output weights, and the KL of that draw's tensors."""
        weight, kl = self.out_weight.draw(sample)
        if self.dictionary is None:
            return weight, kl
        dictionary, kl_dictionary = self.dictionary.draw(sample)
        n_hidden = weight.shape[0]
        matrix = weight.view(n_hidden * self.n_positions, -1) @ dictionary
        return matrix.view(n_hidden, -1), kl + kl_dictionary

    def forward(self, z: torch.Tensor, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(batch, L, A)`` under one weight draw, and the KL of all weights.

        The KL (to ``N(0, 1)``, 0 for point estimates) does not depend on the draw;
        it is computed alongside it so that each large tensor is read once.
        """
        kls = []
        x = self.dropout(z)
        for layer in self.layers:
            x, kl = layer(x, sample)
            x = self.dropout(torch.relu(x))
            kls.append(kl)
        matrix, kl = self.output_matrix(sample)
        bias, kl_bias = self.out_bias.draw(sample)
        kls += [kl, kl_bias]
        logits = torch.addmm(bias, x, matrix)
        if self.temperature is not None:
            temperature, kl = self.temperature.draw(sample)
            logits = logits * nn.functional.softplus(temperature)
            kls.append(kl)
        if self.site_offset is not None:
            logits = logits + self.site_offset
        return logits.view(-1, self.n_positions, self.n_tokens), torch.stack(kls).sum()
