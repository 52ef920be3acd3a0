"""User-facing models: training glue, save/load, variant scores and samples."""

from __future__ import annotations

import dataclasses
import re

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from vae._alphabet import AMINO_ACIDS, PROTEIN_ALPHABET
from vae._constants import FILES
from vae.errors import VAEInputError
from vae.model import CountModel, SequenceModel, load_model
from vae.train import TrainConfig

TINY_SEQUENCE = {"n_latent": 2, "encoder_hidden": (16,), "decoder_hidden": (16,)}
TINY_COUNT = {"n_latent": 2, "n_hidden": 16}
QUICK = TrainConfig(max_steps=20, batch_size=16, eval_every=10, lr=5e-3)


@pytest.fixture(scope="module")
def sequence_model(msa_adata) -> SequenceModel:
    model = SequenceModel.from_anndata(msa_adata, **TINY_SEQUENCE)
    model.train(msa_adata, QUICK)
    return model


@pytest.fixture
def count_model(counts_adata) -> CountModel:
    model = CountModel.from_anndata(
        counts_adata, batch_key="batch", likelihood="zinb", **TINY_COUNT
    )
    model.train(counts_adata, QUICK)
    return model


def test_sequence_model_setup(msa_adata):
    model = SequenceModel.from_anndata(msa_adata, **TINY_SEQUENCE)
    assert model.var_names == list(msa_adata.var_names)
    assert model.info["positions"] == msa_adata.var["position"].tolist()
    assert model.info["focus_residues"] == "".join(msa_adata.var["wt"])
    assert model.module.n_positions == msa_adata.n_vars
    assert model.module.n_tokens == len(PROTEIN_ALPHABET)


def test_training_is_seeded(msa_adata, sequence_model):
    again = SequenceModel.from_anndata(msa_adata, **TINY_SEQUENCE)
    again.train(msa_adata, QUICK)
    for key, value in sequence_model.module.state_dict().items():
        assert torch.equal(value, again.module.state_dict()[key]), key
    other = SequenceModel.from_anndata(msa_adata, **TINY_SEQUENCE)
    other.train(msa_adata, dataclasses.replace(QUICK, seed=1))
    assert not np.array_equal(other.get_latent(msa_adata), sequence_model.get_latent(msa_adata))


@pytest.mark.parametrize("kind", ["sequence", "count"])
def test_save_load_round_trip(
    tmp_path, kind, sequence_model, count_model, msa_adata, counts_adata
):
    model, adata = (
        (sequence_model, msa_adata) if kind == "sequence" else (count_model, counts_adata)
    )
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / FILES.MODEL).is_file()
    assert (tmp_path / "model" / FILES.MODEL_INFO).is_file()
    loaded = load_model(tmp_path / "model")
    assert type(loaded) is type(model)
    assert loaded.var_names == model.var_names
    assert loaded.info == model.info
    assert not loaded.module.training
    latent = model.get_latent(adata)
    assert latent.shape == (adata.n_obs, 2)
    np.testing.assert_array_equal(loaded.get_latent(adata), latent)
    elbo = model.elbo(adata)
    assert elbo.shape == (adata.n_obs,)
    assert np.isfinite(elbo).all()
    np.testing.assert_array_equal(loaded.elbo(adata), elbo)
    # the ELBO uses the posterior mean: deterministic
    np.testing.assert_array_equal(model.elbo(adata), elbo)


def test_load_model_errors(tmp_path):
    with pytest.raises(VAEInputError, match="not a model folder") as err:
        load_model(tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: ")
    (tmp_path / FILES.MODEL).write_bytes(b"garbage, not a torch file")
    with pytest.raises(VAEInputError, match="cannot read model file"):
        load_model(tmp_path)
    torch.save({"domain": "weather"}, tmp_path / FILES.MODEL)
    with pytest.raises(VAEInputError, match="unknown model domain 'weather'"):
        load_model(tmp_path)


def test_score_single_mutants(sequence_model, msa_adata):
    table = sequence_model.score_single_mutants(n_samples=3, seed=0)
    length = msa_adata.n_vars
    assert len(table) == 19 * length
    assert list(table.columns) == ["mutant", "position", "wt", "mt", "evol_index"]
    assert table["mutant"].is_unique
    assert table["mutant"].str.fullmatch(r"[A-Z]\d+[A-Z]").all()
    positions = msa_adata.var["position"].tolist()
    wild_type = "".join(msa_adata.var["wt"])
    # focus numbering: the first kept column is residue 12 of focus/10-40
    first = table.iloc[0]
    assert first["position"] == positions[0] == 12
    assert first["mutant"] == f"{wild_type[0]}12{first['mt']}"
    expected = {
        f"{wt}{pos}{aa}"
        for pos, wt in zip(positions, wild_type, strict=True)
        for aa in AMINO_ACIDS
        if aa != wt
    }
    assert set(table["mutant"]) == expected
    for row in table.itertuples():
        match = re.fullmatch(r"([A-Z])(\d+)([A-Z])", row.mutant)
        assert (match[1], int(match[2]), match[3]) == (row.wt, row.position, row.mt)
        assert row.wt != row.mt
    assert np.isfinite(table["evol_index"]).all()
    assert table["evol_index"].std() > 0
    # deterministic for a seed, different for another
    again = sequence_model.score_single_mutants(n_samples=3, seed=0)
    np.testing.assert_array_equal(again["evol_index"], table["evol_index"])
    other = sequence_model.score_single_mutants(n_samples=3, seed=1)
    assert not np.array_equal(other["evol_index"], table["evol_index"])
    # and it leaves the global RNG alone
    state = torch.get_rng_state()
    sequence_model.score_single_mutants(n_samples=1)
    assert torch.equal(state, torch.get_rng_state())


def test_profile_scores_read_the_decoder_at_the_shrunken_wild_type_latent(sequence_model):
    from vae.data._mutants import focus_codes

    model = sequence_model
    wild_type = focus_codes(model.info["focus_residues"])
    module = model.module.eval()
    with torch.no_grad():
        loc = module.inference(torch.as_tensor(wild_type[None])).loc
        by_hand = module.generative(0.25 * loc, sample=False)["log_probs"][0].double().numpy()
    profile = model.wild_type_profile(0.25)
    np.testing.assert_allclose(profile, by_hand)
    np.testing.assert_allclose(np.exp(profile).sum(1), 1.0, rtol=1e-6)
    table = model.score_single_mutants(estimator="profile", latent_shrink=0.25)
    row = table.iloc[5]
    column = model.info["positions"].index(row["position"])
    expected = (
        profile[column, PROTEIN_ALPHABET.index(row["wt"])]
        - profile[column, PROTEIN_ALPHABET.index(row["mt"])]
    )
    assert row["evol_index"] == pytest.approx(expected)
    # a double mutant scores the sum of its singles: one profile for every variant
    double = wild_type.copy()
    double[[0, 1]] = PROTEIN_ALPHABET.index("W"), PROTEIN_ALPHABET.index("P")
    singles = np.stack([wild_type, wild_type])
    singles[0, 0], singles[1, 1] = double[0], double[1]
    scores = model.score_variants(np.stack([double, *singles]), estimator="profile")
    assert scores[0] == pytest.approx(scores[1] + scores[2])
    # no draws: the same whatever the seed or the number of draws
    again = model.score_single_mutants(estimator="profile", latent_shrink=0.25, seed=5)
    np.testing.assert_array_equal(again["evol_index"], table["evol_index"])
    # the shrinkage matters: 0 is the family-average decoder, not the wild type's
    other = model.score_single_mutants(estimator="profile", latent_shrink=0.0)
    assert not np.allclose(other["evol_index"], table["evol_index"])
    with pytest.raises(ValueError, match="latent_shrink must be in"):
        model.wild_type_profile(1.5)
    with pytest.raises(ValueError, match="estimator must be one of"):
        model.score_variants(singles, estimator="profiles")


def test_sequence_sample(sequence_model, msa_adata):
    samples = sequence_model.sample(12, seed=0)
    assert len(samples) == 12
    assert all(len(s) == msa_adata.n_vars for s in samples)
    assert set("".join(samples)) <= set(PROTEIN_ALPHABET)
    assert sequence_model.sample(12, seed=0) == samples
    assert sequence_model.sample(12, seed=1) != samples


def test_count_model_setup(counts_adata):
    model = CountModel.from_anndata(counts_adata, batch_key="batch", **TINY_COUNT)
    assert model.info["batch_categories"] == ["b0", "b1"]
    assert model.module.n_batches == 2
    library = np.log(np.asarray(counts_adata.X.sum(1)).ravel())
    assert model.info["log_library_mean"] == pytest.approx(library.mean())
    tensors = model.tensors(counts_adata)
    assert tensors["x"].shape == counts_adata.shape
    assert tensors["batch"].tolist() == (counts_adata.obs["batch"] == "b1").astype(int).tolist()
    plain = CountModel.from_anndata(counts_adata, **TINY_COUNT)
    assert plain.module.n_batches == 1
    assert plain.batch_codes(counts_adata).tolist() == [0] * counts_adata.n_obs


def test_count_sample(count_model, counts_adata):
    samples = count_model.sample(25, seed=0)
    assert isinstance(samples, ad.AnnData)
    assert samples.n_obs == 25
    assert list(samples.var_names) == count_model.var_names == list(counts_adata.var_names)
    x = samples.X.toarray() if sp.issparse(samples.X) else np.asarray(samples.X)
    assert (x >= 0).all()
    np.testing.assert_array_equal(x, np.round(x))
    assert x.sum() > 0
    np.testing.assert_array_equal(samples.obs["library_size"], x.sum(1))
    assert set(samples.obs["batch"]) <= {"b0", "b1"}
    again = count_model.sample(25, seed=0)
    np.testing.assert_array_equal(again.X.toarray(), x)


def test_batch_codes_reject_unseen_batches(count_model, counts_adata):
    new = counts_adata[:10].copy()
    new.obs["batch"] = ["b0"] * 5 + ["b7"] * 5
    with pytest.raises(VAEInputError, match=r"\['b7'\] were not seen in training"):
        count_model.batch_codes(new)
    del new.obs["batch"]
    with pytest.raises(VAEInputError, match="batch key 'batch' not in obs"):
        count_model.get_latent(new)
    # a subset with only one of the training batches keeps the training codes
    subset = counts_adata[counts_adata.obs["batch"] == "b1"].copy()
    subset.obs["batch"] = subset.obs["batch"].cat.remove_unused_categories()
    assert set(count_model.batch_codes(subset).tolist()) == {1}


@pytest.fixture
def registry(monkeypatch):
    """The domain registry, restored after the test (subclasses defined here register)."""
    from vae.model._base import BaseModel

    monkeypatch.setattr(BaseModel, "_registry", dict(BaseModel._registry))
    return BaseModel._registry


def test_a_subclass_does_not_take_over_its_domain(registry, counts_adata, tmp_path):
    from vae.model._base import BaseModel

    class MyCountModel(CountModel):
        """A user's subclass: inherits the domain, so it is not registered."""

    assert BaseModel.for_domain("expression") is CountModel
    assert registry == {"protein": SequenceModel, "expression": CountModel}
    mine = MyCountModel.from_anndata(counts_adata, batch_key="batch", **TINY_COUNT)
    mine.save(tmp_path / "model")
    assert type(load_model(tmp_path / "model")) is CountModel


def test_a_second_class_for_a_domain_is_refused(registry):
    with pytest.raises(TypeError) as err:

        class Hijack(CountModel):
            domain = "expression"

    message = str(err.value)
    assert "Hijack sets domain 'expression', which is registered to" in message
    assert "vae.model._count.CountModel" in message
    assert "register=False" in message
    assert "\n" not in message
    assert registry["expression"] is CountModel


def test_register_false_opts_out_and_a_new_domain_registers(registry):
    from vae.model._base import BaseModel

    class Quiet(CountModel, register=False):
        domain = "expression"

    assert BaseModel.for_domain("expression") is CountModel

    class Atac(CountModel):
        domain = "atac"

    assert BaseModel.for_domain("atac") is Atac
