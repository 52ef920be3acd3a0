"""Likelihoods and the two VAE modules."""

from __future__ import annotations

import pytest
import torch
from _reference_likelihoods import log_nb, log_zinb
from torch.distributions import NegativeBinomial, Normal, kl_divergence

from vae.module import BaseModule, CountVAE, LossOutput, SequenceVAE
from vae.nn import OneHotLinear, VariationalTensor
from vae.nn._bayesian import _SampleWithKL


def _nb_inputs(seed: int = 0, shape=(64, 30)) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    mu = torch.exp(torch.randn(shape, generator=gen, dtype=torch.float64) * 2)
    theta = torch.exp(torch.randn(shape, generator=gen, dtype=torch.float64) * 1.5)
    x = torch.poisson(
        mu * 3 * torch.rand(shape, generator=gen, dtype=torch.float64), generator=gen
    )
    return x, mu, theta


def test_log_nb_matches_torch_distribution():
    x, mu, theta = _nb_inputs()
    reference = NegativeBinomial(total_count=theta, logits=torch.log(mu) - torch.log(theta))
    expected = reference.log_prob(x)
    assert (x == 0).any()
    assert (x > 5).any()
    torch.testing.assert_close(log_nb(x, mu, theta), expected, rtol=1e-5, atol=1e-5)
    # float32, as used in training, stays close
    torch.testing.assert_close(
        log_nb(x.float(), mu.float(), theta.float()), expected.float(), rtol=1e-3, atol=1e-3
    )


def test_log_nb_broadcasts_gene_theta():
    x, mu, _ = _nb_inputs(1)
    theta = torch.rand(x.shape[1], dtype=torch.float64) * 5 + 0.1
    expected = NegativeBinomial(total_count=theta, logits=torch.log(mu) - torch.log(theta))
    torch.testing.assert_close(log_nb(x, mu, theta), expected.log_prob(x), rtol=1e-5, atol=1e-5)


def test_log_zinb_reduces_to_nb():
    x, mu, theta = _nb_inputs(2)
    pi_logits = torch.full_like(mu, -40.0)
    torch.testing.assert_close(log_zinb(x, mu, theta, pi_logits), log_nb(x, mu, theta))


def test_log_zinb_zero_inflation():
    x, mu, theta = _nb_inputs(3)
    pi = torch.full_like(mu, 0.3)
    logits = torch.log(pi) - torch.log1p(-pi)
    nb = log_nb(x, mu, theta)
    expected = torch.where(x == 0, torch.log(pi + (1 - pi) * nb.exp()), torch.log1p(-pi) + nb)
    torch.testing.assert_close(log_zinb(x, mu, theta, logits), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pi_logit", [-5.0, 0.0, 2.0])
def test_zinb_and_nb_sum_to_one(pi_logit):
    counts = torch.arange(0, 3000, dtype=torch.float64)[:, None]
    mu = torch.tensor([[0.5, 5.0, 40.0]], dtype=torch.float64)
    theta = torch.tensor([[0.7, 3.0, 20.0]], dtype=torch.float64)
    pi_logits = torch.full_like(mu, pi_logit)
    zinb_total = log_zinb(counts, mu, theta, pi_logits).exp().sum(0)
    nb_total = log_nb(counts, mu, theta).exp().sum(0)
    torch.testing.assert_close(zinb_total, torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(nb_total, torch.ones(3, dtype=torch.float64), atol=1e-6, rtol=0)
    # and the NB mean is mu
    mean = (counts * log_nb(counts, mu, theta).exp()).sum(0)
    torch.testing.assert_close(mean, mu[0], rtol=1e-5, atol=0)


def _check_loss(out: LossOutput, n: int) -> None:
    assert isinstance(out, LossOutput)
    assert out.reconstruction.shape == (n,)
    assert out.kl_local.shape == (n,)
    assert out.kl_global.shape == ()
    assert torch.isfinite(out.reconstruction).all()
    assert torch.isfinite(out.kl_local).all()
    assert (out.kl_local >= 0).all()
    assert torch.isfinite(out.loss(0.5, 100.0))
    torch.testing.assert_close(out.neg_elbo(), out.reconstruction + out.kl_local)


@pytest.mark.parametrize(
    "decoder",
    [
        {"bayesian_decoder": True},
        {"bayesian_decoder": False},
        {"bayesian_decoder": True, "output_conv_depth": 0, "temperature_scaler": False},
    ],
)
def test_sequence_vae_forward_and_sample(decoder):
    torch.manual_seed(0)
    n, length, tokens = 8, 12, 21
    module = SequenceVAE(
        length,
        tokens,
        n_latent=3,
        encoder_hidden=(16,),
        decoder_hidden=(16,),
        dropout_rate=0.1,
        **decoder,
    )
    codes = torch.randint(0, tokens, (n, length), dtype=torch.uint8)
    out = module(codes)
    _check_loss(out, n)
    # the weights' KL is a positive scalar exactly when the decoder is Bayesian
    assert out.kl_global.shape == ()
    assert (out.kl_global > 0) == decoder["bayesian_decoder"]
    # reconstruction is -log p of L categorical choices: positive, at most ~L*log(A) at init
    assert (out.reconstruction > 0).all()
    px = module.generative(torch.zeros(2, 3))
    assert set(px) == {"log_probs", "kl_weights"}
    log_px = px["log_probs"]
    assert log_px.shape == (2, length, tokens)
    torch.testing.assert_close(log_px.exp().sum(-1), torch.ones(2, length))
    module.eval()
    det = module(codes, sample=False)
    torch.testing.assert_close(det.reconstruction, module(codes, sample=False).reconstruction)
    assert module.inference(codes).loc.shape == (n, 3)
    sampled = module.sample_codes(5)
    assert sampled.shape == (5, length)
    assert sampled.min() >= 0
    assert sampled.max() < tokens
    # a gradient reaches every parameter
    module.train()
    module(codes).loss(1.0, float(n)).backward()
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("likelihood", ["nb", "zinb"])
@pytest.mark.parametrize("n_batches", [0, 2])
def test_count_vae_forward_and_sample(counts_adata, likelihood, n_batches):
    torch.manual_seed(0)
    x = torch.as_tensor(counts_adata.X.toarray()[:16])
    batch = torch.as_tensor((counts_adata.obs["batch"] == "b1").to_numpy()[:16]).long()
    module = CountVAE(
        x.shape[1], n_batches=n_batches, n_latent=2, n_hidden=16, likelihood=likelihood
    )
    assert (module.dropout_logits is not None) == (likelihood == "zinb")
    out = module(x, batch if n_batches else None)
    _check_loss(out, 16)
    module.eval()
    px = module.generative(torch.zeros(16, 2), x.sum(-1), batch if n_batches else None)
    torch.testing.assert_close(px["mu"].sum(-1), x.sum(-1))  # library size is observed
    assert ("pi_logits" in px) == (likelihood == "zinb")
    if n_batches:
        # the batch covariate changes the decoder output
        other = module.generative(torch.zeros(16, 2), x.sum(-1), 1 - batch)
        assert not torch.allclose(other["scale"], px["scale"])
    library = torch.full((7,), 500.0)
    counts = module.sample_counts(library, torch.zeros(7, dtype=torch.long))
    assert counts.shape == (7, x.shape[1])
    assert (counts >= 0).all()
    assert torch.equal(counts, counts.round())
    assert counts.sum() > 0


def test_base_module_contract():
    with pytest.raises(TypeError, match="abstract"):
        BaseModule()
    torch.manual_seed(0)
    sequences = SequenceVAE(6, 21, n_latent=2, encoder_hidden=(8,), decoder_hidden=(8,))
    counts = CountVAE(5, n_latent=2, n_hidden=8)
    for module in (sequences, counts):
        assert isinstance(module, BaseModule)
        assert module.n_latent == 2
    codes = torch.randint(0, 21, (3, 6))
    x = torch.poisson(torch.full((3, 5), 2.0))
    for module, inputs in ((sequences.eval(), (codes,)), (counts.eval(), (x,))):
        # calling the module runs loss(); generative() returns named tensors
        called, direct = module(*inputs, sample=False), module.loss(*inputs, sample=False)
        torch.testing.assert_close(called.neg_elbo(), direct.neg_elbo())
        assert isinstance(module.inference(*inputs).loc, torch.Tensor)
    px = counts.generative(torch.zeros(3, 2), x.sum(-1))
    assert isinstance(px, dict)
    assert isinstance(sequences.generative(torch.zeros(3, 2)), dict)


@pytest.mark.parametrize("n_batches", [0, 3])
def test_normalized_expression_is_the_decoder_mean_per_library(n_batches):
    torch.manual_seed(0)
    module = CountVAE(7, n_batches=n_batches, n_latent=2, n_hidden=8).eval()
    z, batch = torch.randn(4, 2), torch.tensor([0, 1, 2, 1])
    library = torch.tensor([10.0, 200.0, 3.0, 1.0])
    fractions = module.normalized_expression(z, batch)
    px = module.generative(z, library, batch)
    assert torch.equal(fractions, px["scale"])
    torch.testing.assert_close(fractions.sum(-1), torch.ones(4))
    torch.testing.assert_close(fractions * library[:, None], px["mu"])


def test_loss_weighting():
    out = LossOutput(
        reconstruction=torch.tensor([1.0, 3.0]),
        kl_local=torch.tensor([2.0, 4.0]),
        kl_global=torch.tensor(10.0),
    )
    assert out.loss(1.0, 10.0).item() == pytest.approx((3 + 7) / 2 + 1)
    assert out.loss(0.0, 10.0).item() == pytest.approx(2.0)
    assert out.loss(0.5, 5.0).item() == pytest.approx((2 + 5) / 2 + 0.5 * 10 / 5)


def test_sample_with_kl_matches_composed_autograd():
    torch.manual_seed(0)
    mean = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    log_var = (torch.randn(7, 5, dtype=torch.float64) - 1).requires_grad_()
    upstream = torch.randn(7, 5, dtype=torch.float64)
    torch.manual_seed(1)
    weight, kl = _SampleWithKL.apply(mean, log_var)
    ((weight * upstream).sum() + 3 * kl).backward()
    fused = (mean.grad.clone(), log_var.grad.clone())
    mean.grad = log_var.grad = None
    torch.manual_seed(1)
    eps = torch.randn_like(mean)
    expected_weight = mean + torch.exp(0.5 * log_var) * eps
    expected_kl = kl_divergence(
        Normal(mean, torch.exp(0.5 * log_var)), Normal(torch.zeros_like(mean), 1.0)
    ).sum()
    torch.testing.assert_close(weight, expected_weight)
    torch.testing.assert_close(kl, expected_kl)
    ((expected_weight * upstream).sum() + 3 * expected_kl).backward()
    torch.testing.assert_close(fused[0], mean.grad)
    torch.testing.assert_close(fused[1], log_var.grad)


def test_variational_tensor_modes():
    tensor = VariationalTensor(torch.zeros(4), log_var_init=0.0)
    torch.manual_seed(0)
    draw, kl = tensor.draw(sample=True)
    assert not torch.equal(draw, torch.zeros(4))
    torch.testing.assert_close(kl, torch.tensor(0.0))  # N(0, 1) is the prior itself
    mean, kl_mean = tensor.draw(sample=False)
    assert torch.equal(mean, torch.zeros(4))
    torch.testing.assert_close(kl_mean, kl)
    point = VariationalTensor(torch.ones(3), bayesian=False)
    assert torch.equal(point(), torch.ones(3))
    assert point.kl() == 0
    assert [name for name, _ in point.named_parameters()] == ["mean"]


def test_one_hot_linear_matches_dense_linear():
    torch.manual_seed(0)
    layer = OneHotLinear(9, 21, 6)
    codes = torch.randint(0, 21, (5, 9))
    one_hot = torch.nn.functional.one_hot(codes, 21).flatten(1).float()
    dense_weight = layer.weight.detach().clone().requires_grad_()
    upstream = torch.randn(5, 6)
    layer(codes).backward(upstream)
    expected = one_hot @ dense_weight + layer.bias.detach()
    expected.backward(upstream)
    torch.testing.assert_close(layer(codes), expected)
    torch.testing.assert_close(layer.weight.grad, dense_weight.grad)
    torch.testing.assert_close(layer.bias.grad, upstream.sum(0))


def test_held_decoder_draw_gives_common_random_numbers():
    torch.manual_seed(0)
    module = SequenceVAE(6, 21, n_latent=3, encoder_hidden=(8,), decoder_hidden=(8,)).eval()
    codes = torch.randint(0, 21, (4, 6))
    noise = torch.randn(3)
    with module.held_decoder_draw():
        first = module(codes, noise=noise).neg_elbo()
        # the same weights and noise for a sub-batch: per-sequence ELBOs are unchanged
        torch.testing.assert_close(module(codes[2:], noise=noise).neg_elbo(), first[2:])
    # outside the block each pass draws new weights
    assert not torch.equal(module(codes, noise=noise).neg_elbo(), first)
    assert all(t._held is None for t in module.decoder.modules() if hasattr(t, "_held"))
