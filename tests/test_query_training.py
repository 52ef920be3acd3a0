"""Query training: only the new batch columns learn, and its shortcuts change no result."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
import torch
from test_mapping import CONFIG, DATA

from vae.model import CountModel, QueryTraining, map_query_model
from vae.model._mapping import extend_batches
from vae.model._query_module import QueryModule
from vae.module._count_likelihood import count_log_likelihood, nb_lgamma_terms
from vae.train import NamedRows, TrainConfig, Trainer


@pytest.fixture(scope="module")
def fold() -> tuple[CountModel, ad.AnnData]:
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    ref = cells[cells.obs["batch"] == "b0"].copy()
    model = CountModel.from_anndata(ref, batch_key="batch", n_latent=3, n_hidden=16)
    model.train(ref, CONFIG)
    return model, cells[cells.obs["batch"] == "b1"].copy()


def test_only_new_columns_require_gradients(fold) -> None:
    model, _ = fold
    mapped = extend_batches(model, ["b1"])
    wrapper = QueryModule(mapped.module, n_reference_batches=1)
    trainable = [n for n, p in wrapper.named_parameters() if p.requires_grad]
    assert trainable == ["inner.encoder.body.0.new", "inner.decoder.0.new"]
    released = wrapper.release()
    assert released.state_dict().keys() == model.module.state_dict().keys()
    assert all(p.requires_grad for p in released.parameters())


def test_query_training_uses_the_reference_modules_adam_eps(fold) -> None:
    model, _ = fold
    mapped = extend_batches(model, ["b1"])
    wrapper = QueryModule(mapped.module, n_reference_batches=1)
    rows = NamedRows(mapped.tensors(fold[1]))
    trainer = Trainer(wrapper, rows, TrainConfig(max_steps=1), device=torch.device("cpu"))
    assert trainer.optimizer.param_groups[0]["eps"] == mapped.module.default_adam_eps == 0.01
    wrapper.release()


def test_cached_products_give_the_same_loss_as_the_full_layer(fold) -> None:
    model, query = fold
    mapped = extend_batches(model, ["b1"], init="random")
    wrapper = QueryModule(mapped.module, n_reference_batches=1).eval()
    rows = NamedRows(mapped.tensors(query))
    batch = rows.batch(torch.arange(query.n_obs))
    cached = wrapper.cell_constants(rows)
    with torch.no_grad():
        full = wrapper(**batch, sample=False)
        short = wrapper(**batch, **cached, sample=False)
    torch.testing.assert_close(short.reconstruction, full.reconstruction)
    torch.testing.assert_close(short.kl_local, full.kl_local)


def test_lgamma_terms_complete_the_likelihood() -> None:
    torch.manual_seed(0)
    counts = torch.poisson(torch.rand(6, 9) * 3)
    cell, gene = torch.nonzero(counts, as_tuple=True)
    value = counts[cell, gene]
    log_mu, log_theta, pi = torch.randn(6, 9), torch.randn(9), torch.randn(6, 9)
    terms = nb_lgamma_terms(log_theta, cell, gene, value, 6)
    whole = count_log_likelihood(log_mu, log_theta, pi, cell, gene, value)
    given = count_log_likelihood(log_mu, log_theta, pi, cell, gene, value, terms)
    torch.testing.assert_close(given, whole)


def test_query_training_without_the_encoder_cache_is_the_same(fold) -> None:
    model, query = fold
    cached, record = map_query_model(model, query, QueryTraining(epochs=4))
    uncached, plain = map_query_model(model, query, QueryTraining(epochs=4, cache_bytes=0))
    assert record["encoder_cache"]
    assert not plain["encoder_cache"]
    assert record["best_step"] == plain["best_step"]
    np.testing.assert_allclose(
        cached.get_latent(query), uncached.get_latent(query), rtol=1e-4, atol=1e-5
    )
