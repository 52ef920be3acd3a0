"""Cluster-held-out validation (``train.validation_split: cluster``) and the random default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

from vae import steps
from vae._alphabet import PROTEIN_ALPHABET
from vae._io import read_h5ad
from vae.data._split import close_to, cluster_split
from vae.errors import VAEInputError
from vae.model import CountModel, SequenceModel, load_model
from vae.train import TrainConfig, Trainer
from vae.train._trainer import split_indices

DATA = Path(__file__).resolve().parents[1] / ".test" / "data"
GAP = PROTEIN_ALPHABET.index("-")
TINY_MODEL = {"n_latent": 3, "encoder_hidden": [16], "decoder_hidden": [16]}
TINY_TRAIN = {"max_steps": 20, "batch_size": 32, "eval_every": 10, "seed": 3}


def clustered_codes(seed: int = 0, n_clusters: int = 12, size: int = 15, length: int = 40):
    """Families of mutated copies of random centres (10 % substitutions, a few gaps).

    The first family holds the focus (row 0), so the focus has a neighbourhood.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_clusters):
        centre = rng.integers(0, 20, length)
        for _ in range(rng.integers(size // 2, size * 2)):
            row = centre.copy()
            mutated = rng.random(length) < 0.1
            row[mutated] = rng.integers(0, 20, mutated.sum())
            row[rng.random(length) < 0.03] = GAP
            rows.append(row)
    return np.array(rows, dtype=np.uint8)


def identity(codes: np.ndarray, i: int, j: int) -> float:
    """Brute force: fraction of ``i``'s residue columns where ``j`` has the same residue."""
    kept = codes[i] != GAP
    return float((codes[j][kept] == codes[i][kept]).mean())


def clustered_adata(seed: int = 0) -> ad.AnnData:
    """A preprocessed-alignment AnnData (codes, weights, focus columns) of clustered_codes."""
    codes = clustered_codes(seed)
    focus = "".join(PROTEIN_ALPHABET[c] for c in codes[0]).replace("-", "A")
    codes[0] = [PROTEIN_ALPHABET.index(c) for c in focus]
    var = pd.DataFrame(
        {"position": np.arange(1, codes.shape[1] + 1), "wt": list(focus)},
        index=[f"{i + 1}{c}" for i, c in enumerate(focus)],
    )
    obs = pd.DataFrame({"weight": np.ones(len(codes))}, index=[f"s{i}" for i in range(len(codes))])
    return ad.AnnData(X=codes, obs=obs, var=var)


def test_close_to_matches_brute_force_in_small_chunks() -> None:
    codes = clustered_codes()
    queries = np.array([0, 5, 77, len(codes) - 1])
    close = close_to(codes, queries, 0.8, chunk_bytes=1)  # one row per block
    for q, row in zip(queries, close, strict=True):
        assert row.tolist() == [identity(codes, q, j) >= 0.8 for j in range(len(codes))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cluster_split_holds_out_whole_clusters(seed) -> None:
    codes = clustered_codes()
    split = cluster_split(codes, 0.1, 0.8, seed, chunk_bytes=4096)
    n = len(codes)
    everything = np.concatenate([split.train, split.val, split.dropped])
    assert sorted(everything.tolist()) == list(range(n))  # a partition
    assert 0 in split.train
    assert 0.1 * n <= split.val.size <= 0.2 * n
    assert split.dropped.size > 0  # the clusters overlap: some training sequences go
    for held in split.val:
        for train in split.train:
            assert identity(codes, held, train) < 0.8
    # the focus's neighbourhood is never held out
    for held in split.val:
        assert identity(codes, held, 0) < 0.8


def test_cluster_split_is_deterministic_per_seed() -> None:
    codes = clustered_codes()
    first = cluster_split(codes, 0.1, 0.8, 5)
    again = cluster_split(codes, 0.1, 0.8, 5, chunk_bytes=1000)
    for name in ("train", "val", "dropped"):
        assert np.array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(cluster_split(codes, 0.1, 0.8, 6).val, first.val)


def test_cluster_split_edges() -> None:
    codes = clustered_codes()
    none = cluster_split(codes, 0.0, 0.8, 0)
    assert none.val.size == 0
    assert none.dropped.size == 0
    with pytest.raises(ValueError, match="fraction"):
        cluster_split(codes, 1.0, 0.8, 0)
    # every sequence a copy of the focus: no cluster can be held out
    with pytest.raises(ValueError, match="raise the identity"):
        cluster_split(np.repeat(codes[:1], 20, 0), 0.1, 0.8, 0)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"validation_split": "kmeans"}, "train.validation_split"),
        ({"validation_identity": 0.0}, "train.validation_identity"),
        ({"validation_identity": 1.5}, "train.validation_identity"),
        ({"validation_identity": "0.8"}, "train.validation_identity"),
        ({"validation_identity": True}, "train.validation_identity"),
    ],
)
def test_bad_split_settings_are_rejected_in_one_line(settings, key) -> None:
    with pytest.raises(VAEInputError) as err:
        TrainConfig(**settings)
    assert str(err.value).startswith(f"{key}: ")
    assert "\n" not in str(err.value)


def test_expression_models_reject_the_cluster_split(counts_adata) -> None:
    model = CountModel.from_anndata(counts_adata, n_latent=2, n_hidden=8)
    config = TrainConfig(max_steps=2, validation_split="cluster")
    with pytest.raises(VAEInputError, match="train.validation_split: 'cluster' is not available"):
        model.train(counts_adata, config)


def test_random_split_trains_bit_identically_to_the_trainer_default() -> None:
    """``random`` is what training did before the option: same split, same weights."""
    adata = clustered_adata()
    config = TrainConfig(**TINY_TRAIN)
    assert config.validation_split == "random"
    model = SequenceModel.from_anndata(adata, **TINY_MODEL, site_offset=True)
    result = model.train(adata, config)

    # the training call as it was: seed, module, site offset, trainer's own split
    reference = SequenceModel.from_anndata(adata, **TINY_MODEL, site_offset=True)
    torch.manual_seed(config.seed)
    module = reference.module_cls(**reference.module_kwargs)
    reference.module = module
    reference.initialise_from_data(
        adata, split_indices(adata.n_obs, config.validation_frac, config.seed)[0]
    )
    old = Trainer(
        module,
        reference.tensors(adata),
        config,
        device=torch.device("cpu"),
        sampling_weights=reference.sampling_weights(adata),
    ).fit()
    assert torch.equal(result.val_index, old.val_index)
    assert torch.equal(result.train_index, old.train_index)
    for name, value in module.state_dict().items():
        assert torch.equal(model.module.state_dict()[name], value), name
    assert model.info["train"]["n_dropped"] == 0


def test_cluster_split_trains_on_what_it_records(monkeypatch) -> None:
    adata = clustered_adata()
    config = TrainConfig(**TINY_TRAIN, validation_split="cluster", validation_identity=0.8)
    expected = cluster_split(np.asarray(adata.X), 0.1, 0.8, TINY_TRAIN["seed"])
    model = SequenceModel.from_anndata(adata, **TINY_MODEL, site_offset=True)
    seen = {}
    original = SequenceModel.initialise_from_data

    def spy(self, data, train_index):
        seen["train"] = train_index.numpy().copy()
        original(self, data, train_index)

    monkeypatch.setattr(SequenceModel, "initialise_from_data", spy)
    result = model.train(adata, config)
    assert np.array_equal(seen["train"], expected.train)
    assert np.array_equal(result.train_index.numpy(), expected.train)
    assert np.array_equal(result.val_index.numpy(), expected.val)
    record = model.info["train"]
    assert record["validation_split"] == "cluster"
    assert record["validation_identity"] == 0.8
    assert record["n_dropped"] == expected.dropped.size > 0
    assert record["dropped_index"] == expected.dropped.tolist()
    assert np.array_equal(model.training_index(adata.n_obs), expected.train)
    assert np.isfinite(result.history["val_elbo"]).all()


def test_cluster_split_runs_end_to_end_on_the_tiny_family(tmp_path) -> None:
    data = tmp_path / "data.h5ad"
    steps.preprocess_protein(DATA / "tinyfam.a2m", data, device="cpu")
    train = TINY_TRAIN | {"checkpoint_every": 0, "validation_split": "cluster"}
    steps.train_model(
        data,
        tmp_path / "model",
        tmp_path / "history.tsv",
        domain="protein",
        model_kwargs=TINY_MODEL,
        train_kwargs=train,
        device="cpu",
    )
    model = load_model(tmp_path / "model")
    codes = np.asarray(read_h5ad(data).X)
    expected = cluster_split(codes, 0.1, 0.8, TINY_TRAIN["seed"])
    assert model.validation_index.tolist() == expected.val.tolist()
    assert model.info["train"]["validation_split"] == "cluster"
    assert model.info["train"]["n_dropped"] == expected.dropped.size
    scores = tmp_path / "scores.csv"
    steps.score_variants(tmp_path / "model", scores, n_samples=2, device="cpu")
    metrics = steps.evaluate_protein(
        tmp_path / "model",
        data,
        scores,
        tmp_path / "metrics.json",
        labels=DATA / "tinyfam_labels.csv",
        protein="tinyfam",
        evidence_samples=2,
    )
    assert metrics["n_heldout"] == expected.val.size > 0
    assert np.isfinite(metrics["heldout_elbo_per_sequence"])


def test_train_config_round_trips_with_the_new_fields() -> None:
    config = TrainConfig(validation_split="cluster", validation_identity=0.7)
    assert TrainConfig(**dataclasses.asdict(config)) == config
