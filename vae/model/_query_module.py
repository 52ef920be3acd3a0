"""The module that query mapping trains: reference weights frozen, new batch columns learn.

The two layers that take the one-hot batch (the first of the encoder and of the
decoder) are split into a frozen part and the new batch columns, the only parameters
that require gradients, so autograd computes no weight gradient of a frozen weight and
Adam updates only the new columns. The frozen part of the encoder's first layer sees
the cell's counts and reference batch columns only: its product is the same at every
step, so it is computed once per cell (:meth:`QueryModule.cell_constants`) and a
minibatch then needs neither its dense ``log1p`` counts nor that product. The
``lgamma`` terms of the likelihood depend on the counts and the frozen dispersion only:
they too are computed once per cell.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vae._sparse import CountBatch
from vae.module import CountVAE
from vae.module._base import LossOutput
from vae.module._count_likelihood import nb_lgamma_terms
from vae.train import NamedRows


class NewColumnsLinear(nn.Module):
    """A linear layer whose input's last columns are trainable, the rest frozen.

    ``y = x[:, :n_frozen] @ frozen.T + bias + x[:, n_frozen:] @ new.T``: the same as
    ``layer`` with ``weight = [frozen | new]``.

    Parameters
    ----------
    layer
        The layer to split (its weights are copied).
    n_frozen
        Input columns whose weights stay fixed.
    """

    def __init__(self, layer: nn.Linear, n_frozen: int) -> None:
        super().__init__()
        self.n_frozen = n_frozen
        weight = layer.weight.detach()
        self.register_buffer("frozen", weight[:, :n_frozen].clone(), persistent=False)
        self.register_buffer("bias", layer.bias.detach().clone(), persistent=False)
        self.new = nn.Parameter(weight[:, n_frozen:].clone())

    def frozen_product(self, x: torch.Tensor) -> torch.Tensor:
        """Return the frozen part's output for its ``n_frozen`` input columns (bias included)."""
        return F.linear(x, self.frozen, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the whole layer to ``x`` (all input columns)."""
        return self.frozen_product(x[:, : self.n_frozen]) + F.linear(
            x[:, self.n_frozen :], self.new
        )

    def merged(self) -> nn.Linear:
        """Return a plain ``nn.Linear`` with the current weights ``[frozen | new]``."""
        out_features, n_new = self.new.shape
        # skip_init: no draw from the global random state for weights overwritten below
        layer = nn.utils.skip_init(
            nn.Linear, self.n_frozen + n_new, out_features, device=self.new.device
        )
        with torch.no_grad():
            layer.weight.copy_(torch.cat([self.frozen, self.new.detach()], dim=1))
            layer.bias.copy_(self.bias)
        return layer


class QueryModule(nn.Module):
    """A :class:`~vae.module.CountVAE` prepared for query training (scArches surgery).

    Every weight is frozen except the new one-hot batch columns of the encoder's and
    decoder's first layers (the batch categories from ``n_reference_batches`` on);
    dropout stays active in training, as scvi-tools does; batch-norm and layer-norm
    layers stay in inference mode, normalising with the reference's running statistics.

    Called with ``encoded`` (rows of :meth:`cell_constants`), the frozen part of the
    encoder's first layer is taken from it instead of being computed again.

    Parameters
    ----------
    module
        The extended module (:func:`~vae.model._mapping.extend_batches`); its two batch
        layers are replaced until :meth:`release`.
    n_reference_batches
        Batch categories of the reference (the columns before the new ones).
    """

    def __init__(self, module: CountVAE, n_reference_batches: int) -> None:
        super().__init__()
        self.inner = module
        self.n_reference_batches = n_reference_batches
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        module.encoder.body[0] = NewColumnsLinear(
            module.encoder.body[0], module.n_genes + n_reference_batches
        )
        module.decoder[0] = NewColumnsLinear(
            module.decoder[0], module.n_latent + n_reference_batches
        )

    @property
    def default_adam_eps(self) -> float | None:
        """The wrapped module's Adam epsilon (:func:`~vae.train._trainer.adam_eps`)."""
        return getattr(self.inner, "default_adam_eps", None)

    @property
    def encoder_first(self) -> NewColumnsLinear:
        """The encoder's first layer, split."""
        return self.inner.encoder.body[0]

    def train(self, mode: bool = True) -> QueryModule:
        super().train(mode)
        for sub in self.inner.modules():
            if isinstance(sub, nn.BatchNorm1d | nn.LayerNorm):
                sub.eval()
        return self

    @torch.no_grad()
    def cell_constants(self, rows: NamedRows, *, encoder: bool = True, chunk: int = 4096) -> dict:
        """Return what stays fixed per cell during query training, in one pass over ``rows``.

        ``lgamma_terms`` (``(rows,)``): the likelihood's terms that the frozen dispersion
        fixes (:func:`~vae.module._count_likelihood.nb_lgamma_terms`); with ``encoder``,
        ``encoded`` (``(rows, hidden)``): the frozen part of the encoder's first layer
        (counts and reference batch columns). Both are inputs of :meth:`forward`.

        Parameters
        ----------
        rows
            The query's ``x`` (counts) and ``batch`` (codes), on the module's device.
        encoder
            Also compute ``encoded`` (``4 * rows * hidden`` bytes).
        chunk
            Rows per pass.
        """
        layer, n_genes = self.encoder_first, self.inner.n_genes
        device = layer.frozen.device
        # filled in place: no second copy of the (rows, hidden) products at the end
        out = {"lgamma_terms": torch.empty(len(rows), device=device)}
        if encoder:
            out["encoded"] = torch.empty(len(rows), layer.bias.numel(), device=device)
        for start in range(0, len(rows), chunk):
            stop = min(start + chunk, len(rows))
            batch = rows.batch(slice(start, stop))
            counts = batch["x"]
            out["lgamma_terms"][start:stop] = nb_lgamma_terms(
                self.inner.log_theta, counts.cell, counts.gene, counts.value, counts.n_cells
            )
            if encoder:
                one_hot = F.one_hot(batch["batch"].long(), self.inner.n_batches)
                one_hot = one_hot[:, : self.n_reference_batches].to(layer.frozen.dtype)
                log_x = counts.dense(torch.log1p(counts.value))
                out["encoded"][start:stop] = F.linear(
                    log_x, layer.frozen[:, :n_genes], layer.bias
                ) + F.linear(one_hot, layer.frozen[:, n_genes:])
        return out

    def forward(
        self,
        x: CountBatch | torch.Tensor,
        batch: torch.Tensor,
        encoded: torch.Tensor | None = None,
        lgamma_terms: torch.Tensor | None = None,
        *,
        sample: bool = True,
    ) -> LossOutput:
        """ELBO terms of a minibatch (:meth:`~vae.module.CountVAE.loss`).

        ``encoded`` and ``lgamma_terms`` are the minibatch's rows of
        :meth:`cell_constants` (computed here when ``None``).
        """
        counts = x if isinstance(x, CountBatch) else CountBatch.from_dense(x)
        if encoded is None:
            qz = self.inner.inference(counts, batch)
        else:
            one_hot = F.one_hot(batch.long(), self.inner.n_batches)[:, self.n_reference_batches :]
            hidden = encoded + F.linear(one_hot.to(encoded.dtype), self.encoder_first.new)
            for layer in list(self.inner.encoder.body)[1:]:
                hidden = layer(hidden)
            qz = self.inner.encoder.posterior(hidden)
        return self.inner.loss_given_posterior(
            counts, qz, batch, sample=sample, lgamma_terms=lgamma_terms
        )

    def release(self) -> CountVAE:
        """Put plain layers back and return the module, every parameter trainable again."""
        self.inner.encoder.body[0] = self.encoder_first.merged()
        self.inner.decoder[0] = self.inner.decoder[0].merged()
        for parameter in self.inner.parameters():
            parameter.requires_grad_(True)
        return self.inner
