"""``encoder_norm``/``decoder_norm: auto``: layer norm for batch-aware models, else batch norm."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import pytest
import torch

from vae.model import CountModel
from vae.model._count import resolve_norm

DATA = Path(__file__).resolve().parents[1] / ".test" / "data"


def _norm_layers(model: CountModel) -> set[type]:
    kinds = (torch.nn.LayerNorm, torch.nn.BatchNorm1d)
    return {type(m) for m in model.module.modules() if isinstance(m, kinds)}


@pytest.mark.parametrize(
    ("batch_key", "expected"), [("batch", torch.nn.LayerNorm), (None, torch.nn.BatchNorm1d)]
)
def test_auto_norm_follows_the_batch_covariate(batch_key, expected) -> None:
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    model = CountModel.from_anndata(cells, batch_key=batch_key, n_latent=2, n_hidden=8)
    assert _norm_layers(model) == {expected}
    assert model.module_kwargs["encoder_norm"] == model.module_kwargs["decoder_norm"]
    assert model.module_kwargs["encoder_norm"] in ("layer", "batch")


def test_explicit_norm_wins_over_auto() -> None:
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    model = CountModel.from_anndata(
        cells,
        batch_key="batch",
        n_latent=2,
        n_hidden=8,
        encoder_norm="batch",
        decoder_norm="batch",
    )
    assert _norm_layers(model) == {torch.nn.BatchNorm1d}
    assert resolve_norm("layer", batch_aware=False) == "layer"
