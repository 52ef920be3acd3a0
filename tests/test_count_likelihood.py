"""The fast count likelihood and the sparse minibatches it reads."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _reference_likelihoods import count_vae_log_likelihood, log_nb, log_zinb

from vae._sparse import CountBatch
from vae.data._csr import CSRCounts
from vae.module import CountVAE
from vae.module._count_likelihood import count_log_likelihood


def _inputs(seed: int, shape=(12, 40)):
    gen = torch.Generator().manual_seed(seed)
    log_mu = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    log_theta = (torch.randn(shape[1], generator=gen, dtype=torch.float64) * 1.5).requires_grad_()
    pi_logits = (torch.randn(shape, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    rate = log_mu.detach().exp() * torch.rand(shape, generator=gen, dtype=torch.float64) * 2
    x = torch.poisson(rate, generator=gen)
    x[0] = 0.0  # a cell without counts
    return x, log_mu, log_theta, pi_logits


@pytest.mark.parametrize("zinb", [False, True], ids=["nb", "zinb"])
@pytest.mark.parametrize("seed", [0, 1])
def test_count_log_likelihood_matches_autograd_formulas(zinb, seed):
    x, log_mu, log_theta, pi_logits = _inputs(seed)
    assert 0.2 < (x > 0).double().mean() < 0.9
    batch = CountBatch.from_dense(x)
    pi = pi_logits if zinb else None
    entries = (batch.cell, batch.gene, batch.value.double())
    fast = count_log_likelihood(log_mu, log_theta, pi, *entries)
    theta = log_theta.exp()
    mu = log_mu.exp()
    # the reference formulas add eps=1e-8 inside logs; compare on the same inputs
    reference = (log_zinb(x, mu, theta, pi) if zinb else log_nb(x, mu, theta)).sum(-1)
    torch.testing.assert_close(fast, reference, rtol=1e-6, atol=1e-4)
    inputs = [log_mu, log_theta] + ([pi_logits] if zinb else [])
    weights = torch.randn(x.shape[0], dtype=torch.float64)
    got = torch.autograd.grad((fast * weights).sum(), inputs)
    expected = torch.autograd.grad((reference * weights).sum(), inputs)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_csr_rows_match_dense():
    gen = np.random.default_rng(0)
    dense = gen.poisson(0.3, size=(30, 17)).astype(np.float32)
    dense[4] = 0
    store = CSRCounts.from_scipy(sp.csr_matrix(dense))
    assert store.shape == (30, 17)
    rows = torch.tensor([7, 4, 29, 0, 7])
    batch = store[rows]
    torch.testing.assert_close(batch.dense(), torch.from_numpy(dense[rows.numpy()]))
    torch.testing.assert_close(batch.library(), torch.from_numpy(dense[rows.numpy()].sum(1)))
    from_dense = CountBatch.from_dense(torch.from_numpy(dense[rows.numpy()]))
    for name in ("cell", "gene", "value"):
        assert torch.equal(getattr(batch, name), getattr(from_dense, name))
    sliced = store[2:5]
    torch.testing.assert_close(sliced.dense(), torch.from_numpy(dense[2:5]))


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
def test_count_vae_dense_and_sparse_inputs_agree(likelihood):
    gen = np.random.default_rng(1)
    dense = torch.from_numpy(gen.poisson(1.0, size=(9, 25)).astype(np.float32))
    batch = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])
    torch.manual_seed(0)
    module = CountVAE(25, n_batches=3, n_latent=3, n_hidden=8, likelihood=likelihood).eval()
    sparse = CSRCounts.from_scipy(dense.numpy())[torch.arange(9)]
    a = module(dense, batch, sample=False)
    b = module(sparse, batch, sample=False)
    torch.testing.assert_close(a.reconstruction, b.reconstruction)
    torch.testing.assert_close(a.kl_local, b.kl_local)
    # the fast likelihood equals the reference one on the module's own outputs
    qz = module.inference(dense, batch)
    px = module.generative(qz.loc, dense.sum(-1), batch)
    torch.testing.assert_close(
        a.reconstruction,
        -count_vae_log_likelihood(likelihood, dense, px),
        rtol=1e-4,
        atol=1e-2,
    )
