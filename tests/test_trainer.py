"""The training loop: ELBO, history, early stopping, divergence and checkpoint resume."""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from vae.errors import VAEInputError
from vae.module import CountVAE, LossOutput, SequenceVAE
from vae.train import EpochOrderedRows, NamedRows, TrainConfig, Trainer
from vae.train._trainer import NonFiniteLossError, split_indices

CPU = torch.device("cpu")
HISTORY_COLUMNS = [
    "step",
    "epoch",
    "kl_weight",
    "train_elbo",
    "train_reconstruction",
    "train_kl",
    "val_elbo",
    "val_reconstruction",
    "val_kl",
]


def _sequence_setup(msa_adata, seed: int = 0):
    torch.manual_seed(seed)
    module = SequenceVAE(
        msa_adata.n_vars, 21, n_latent=2, encoder_hidden=(16,), decoder_hidden=(16,)
    )
    tensors = {"codes": torch.as_tensor(np.asarray(msa_adata.X), dtype=torch.uint8)}
    weights = torch.as_tensor(msa_adata.obs["weight"].to_numpy(), dtype=torch.float32)
    return module, tensors, weights


def _count_setup(counts_adata, seed: int = 0, likelihood: str = "nb"):
    torch.manual_seed(seed)
    module = CountVAE(
        counts_adata.n_vars, n_batches=2, n_latent=2, n_hidden=16, likelihood=likelihood
    )
    tensors = {
        "x": torch.as_tensor(counts_adata.X.toarray()),
        "batch": torch.as_tensor(counts_adata.obs["batch"].cat.codes.to_numpy()).long(),
    }
    return module, tensors


class _Constant(nn.Module):
    """A module whose loss never changes (and can turn NaN after some steps)."""

    def __init__(self, nan_after: int | None = None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.nan_after, self.calls = nan_after, 0

    def forward(self, x: torch.Tensor) -> LossOutput:
        if self.training:
            self.calls += 1
        value = torch.ones(x.shape[0]) + 0 * self.weight
        if self.nan_after is not None and self.calls > self.nan_after:
            value = value * float("nan")
        return LossOutput(value, value.detach() * 0.5, torch.zeros(()))


def test_split_indices():
    train, val = split_indices(50, 0.2, seed=3)
    assert len(val) == 10
    assert sorted(torch.cat([train, val]).tolist()) == list(range(50))
    assert torch.equal(split_indices(50, 0.2, seed=3)[1], val)
    assert not torch.equal(split_indices(50, 0.2, seed=4)[1], val)
    assert len(split_indices(50, 0.0, seed=3)[1]) == 0
    assert len(split_indices(2, 0.01, seed=3)[1]) == 1  # at least one when asked for


def test_sequence_elbo_improves_and_history(msa_adata):
    module, tensors, weights = _sequence_setup(msa_adata)
    config = TrainConfig(
        max_steps=60, batch_size=16, lr=5e-3, eval_every=10, validation_frac=0.2, seed=1
    )
    trainer = Trainer(module, tensors, config, device=CPU, sampling_weights=weights)
    # the Bayesian decoder's weight KL is divided by the training set's Neff (EVE)
    assert trainer.n_effective == pytest.approx(float(weights[trainer.train_index].sum()))
    result = trainer.fit()
    history = result.history
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["step"].tolist() == [10, 20, 30, 40, 50, 60]
    assert result.steps == 60
    assert history["val_elbo"].iloc[-1] > history["val_elbo"].iloc[0] + 5.0
    assert history["train_elbo"].iloc[-1] > history["train_elbo"].iloc[0]
    np.testing.assert_allclose(
        history["train_elbo"], -(history["train_reconstruction"] + history["train_kl"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        history["val_elbo"], -(history["val_reconstruction"] + history["val_kl"]), rtol=1e-5
    )
    n_train = len(result.train_index)
    assert n_train + len(result.val_index) == msa_adata.n_obs
    assert history["epoch"].iloc[-1] == pytest.approx(60 / -(-n_train // 16))
    assert (history["kl_weight"] == 1.0).all()
    assert result.extra["best_step"] in history["step"].tolist()
    assert result.extra["best_elbo"] == history["val_elbo"].max()
    assert not module.training


def test_count_elbo_improves(counts_adata):
    module, tensors = _count_setup(counts_adata, likelihood="zinb")
    config = TrainConfig(max_steps=120, batch_size=32, lr=1e-2, eval_every=20, seed=0)
    result = Trainer(module, tensors, config, device=CPU).fit()
    assert result.history["val_elbo"].iloc[-1] > result.history["val_elbo"].iloc[0]


def test_adam_eps_is_the_modules_default_unless_set(counts_adata, msa_adata):
    counts, count_tensors = _count_setup(counts_adata)
    sequences, sequence_tensors, _ = _sequence_setup(msa_adata)
    config = TrainConfig(max_steps=1)

    def eps(module, tensors, config):
        return Trainer(module, tensors, config, device=CPU).optimizer.param_groups[0]["eps"]

    assert eps(counts, count_tensors, config) == 0.01  # scvi-tools' training plan
    assert eps(sequences, sequence_tensors, config) == 1e-8  # torch's default
    explicit = dataclasses.replace(config, adam_eps=1e-4)
    assert eps(counts, count_tensors, explicit) == eps(sequences, sequence_tensors, explicit)
    assert eps(counts, count_tensors, explicit) == 1e-4


def test_kl_warmup_and_no_validation(counts_adata):
    module, tensors = _count_setup(counts_adata)
    config = TrainConfig(
        max_steps=23, batch_size=32, eval_every=5, kl_warmup_steps=10, validation_frac=0.0
    )
    result = Trainer(module, tensors, config, device=CPU).fit()
    history = result.history
    assert list(history.columns) == HISTORY_COLUMNS[:6]
    assert history["step"].tolist() == [5, 10, 15, 20, 23]  # plus the last step
    # the weight of the last step of each evaluation window
    assert history["kl_weight"].tolist() == pytest.approx([0.4, 0.9, 1.0, 1.0, 1.0])
    assert len(result.val_index) == 0


def test_early_stopping_stops():
    config = TrainConfig(
        max_steps=1000, batch_size=8, eval_every=5, early_stopping_patience=2, seed=0
    )
    x = torch.zeros(20, 3)
    result = Trainer(_Constant(), {"x": x}, config, device=CPU).fit()
    # a constant ELBO never improves: best at 5, no improvement at 10 and 15
    assert result.steps == 15
    assert result.history["step"].tolist() == [5, 10, 15]
    assert result.extra["best_step"] == 5


def test_early_stopping_waits_for_kl_warmup():
    config = TrainConfig(
        max_steps=1000,
        batch_size=8,
        eval_every=5,
        early_stopping_patience=2,
        kl_warmup_steps=20,
    )
    result = Trainer(_Constant(), {"x": torch.zeros(20, 3)}, config, device=CPU).fit()
    # first evaluation at full KL weight is step 25 (weight of step index 24)
    assert result.steps == 35
    assert result.extra["best_step"] == 25


def test_early_stopping_on_a_real_model(counts_adata):
    module, tensors = _count_setup(counts_adata)
    config = TrainConfig(
        max_steps=2000, batch_size=32, lr=0.0, eval_every=5, early_stopping_patience=3
    )
    result = Trainer(module, tensors, config, device=CPU).fit()
    assert result.steps < config.max_steps
    assert result.steps == result.history["step"].iloc[-1]


def test_nan_data_raises(counts_adata):
    module, tensors = _count_setup(counts_adata)
    tensors["x"][:, 3] = float("nan")
    config = TrainConfig(max_steps=50, batch_size=200, eval_every=7)
    with pytest.raises(NonFiniteLossError, match=r"ELBO term is nan at step 7;"):
        Trainer(module, tensors, config, device=CPU).fit()


def test_divergence_raises(counts_adata):
    module, tensors = _count_setup(counts_adata)
    config = TrainConfig(max_steps=50, batch_size=32, lr=1e6, eval_every=10)
    with pytest.raises(NonFiniteLossError, match=r"term is (nan|-?inf) at step \d+;"):
        Trainer(module, tensors, config, device=CPU).fit()


def test_loss_turning_nan_names_step(tmp_path):
    config = TrainConfig(max_steps=50, batch_size=4, eval_every=5, checkpoint_every=5)
    checkpoint = tmp_path / "ckpt.pt"
    with pytest.raises(NonFiniteLossError) as err:
        Trainer(
            _Constant(nan_after=7),
            {"x": torch.zeros(12, 2)},
            config,
            device=CPU,
            checkpoint_path=checkpoint,
        ).fit()
    message = str(err.value)
    assert "at step 10" in message
    assert "ELBO term is nan" in message
    assert "learning rate" in message
    # the last checkpoint is the one before the divergence
    assert torch.load(checkpoint, weights_only=False)["step"] == 5


# --- row stores -------------------------------------------------------------------------------


class _Recorder(nn.Module):
    """Records the rows (first column of ``x``) of every training minibatch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.seen: list[list[int]] = []

    def forward(self, x: torch.Tensor) -> LossOutput:
        if self.training:
            self.seen.append(x[:, 0].long().tolist())
        value = torch.ones(x.shape[0]) + 0 * self.weight
        return LossOutput(value, value.detach() * 0, torch.zeros(()))


class _InOrder:
    """Rows of a tensor whose epochs visit the training rows in order (like disk blocks)."""

    def __init__(self, values: torch.Tensor) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index):
        return self.values[index]

    def to(self, device):
        return _InOrder(self.values.to(device))

    def epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.arange(n)


def test_row_store_inputs_and_epoch_order():
    config = TrainConfig(max_steps=4, batch_size=5, eval_every=4, validation_frac=0.25)
    rows = torch.arange(20.0)[:, None].repeat(1, 2)
    assert isinstance(_InOrder(rows), EpochOrderedRows)
    assert not isinstance(rows, EpochOrderedRows)
    module = _Recorder()
    trainer = Trainer(module, NamedRows({"x": _InOrder(rows)}), config, device=CPU)
    assert len(trainer.data) == 20
    trainer.fit()
    train = trainer.train_index.tolist()
    assert module.seen == [train[0:5], train[5:10], train[10:15], train[0:5]]
    # plain tensors: shuffled epochs
    shuffled = _Recorder()
    Trainer(shuffled, {"x": rows}, config, device=CPU).fit()
    assert sorted(sum(shuffled.seen[:3], [])) == train
    assert shuffled.seen[:3] != module.seen[:3]


def test_named_rows_checks_lengths():
    with pytest.raises(ValueError, match="different numbers of rows"):
        NamedRows({"x": torch.zeros(5, 2), "batch": torch.zeros(4)})
    with pytest.raises(ValueError, match="at least one input"):
        NamedRows({})
    store = NamedRows({"x": torch.arange(6.0)[:, None], "batch": torch.arange(6)})
    batch = store.batch(torch.tensor([4, 1]))
    assert batch["batch"].tolist() == [4, 1]
    assert batch["x"][:, 0].tolist() == [4.0, 1.0]
    assert store.epoch_order(6, torch.Generator()) is None


def test_a_mapping_and_its_named_rows_train_alike(counts_adata):
    config = TrainConfig(max_steps=12, batch_size=32, eval_every=6, seed=4)
    module_a, tensors = _count_setup(counts_adata)
    result_a = Trainer(module_a, tensors, config, device=CPU).fit()
    module_b, tensors = _count_setup(counts_adata)
    result_b = Trainer(module_b, NamedRows(tensors), config, device=CPU).fit()
    pd.testing.assert_frame_equal(result_a.history, result_b.history, check_exact=True)
    _assert_same_state(module_a, module_b)


# --- checkpoint resume ------------------------------------------------------------------------


class _Interrupted(Exception):
    pass


def _interrupt_after_checkpoint(monkeypatch, at_step: int) -> None:
    """Make the trainer die right after writing the checkpoint of ``at_step``."""
    save = Trainer._save_checkpoint

    def save_then_die(self, step, *args):
        save(self, step, *args)
        if step == at_step:
            raise _Interrupted

    monkeypatch.setattr(Trainer, "_save_checkpoint", save_then_die)


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    state_a, state_b = a.state_dict(), b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def _resume_case(kind: str, msa_adata, counts_adata, seed: int, device: torch.device):
    if kind == "sequence":
        module, tensors, weights = _sequence_setup(msa_adata, seed)
        return module.to(device), tensors, {"sampling_weights": weights, "device": device}
    module, tensors = _count_setup(counts_adata, seed, likelihood="zinb")
    return module.to(device), tensors, {"device": device}


CUDA = pytest.param(
    "cuda",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
    ],
)


@pytest.mark.parametrize("device", ["cpu", CUDA])
@pytest.mark.parametrize("kind", ["sequence", "count"])
def test_checkpoint_resume_is_exact(tmp_path, monkeypatch, msa_adata, counts_adata, kind, device):
    device = torch.device(device)
    config = TrainConfig(
        max_steps=40,
        batch_size=16,
        lr=5e-3,
        eval_every=6,  # evaluations and checkpoints out of phase
        checkpoint_every=4,
        kl_warmup_steps=10,
        early_stopping_patience=100,
        seed=2,
    )
    # run A: uninterrupted
    module_a, tensors, extra = _resume_case(kind, msa_adata, counts_adata, 0, device)
    torch.manual_seed(123)  # seeds the CUDA generators too
    result_a = Trainer(module_a, tensors, config, checkpoint_path=tmp_path / "a.pt", **extra).fit()
    # run B: killed after the checkpoint of step 20 (mid evaluation window)
    module_b, tensors, extra = _resume_case(kind, msa_adata, counts_adata, 0, device)
    torch.manual_seed(123)  # seeds the CUDA generators too
    with monkeypatch.context() as patch:
        _interrupt_after_checkpoint(patch, at_step=20)
        with pytest.raises(_Interrupted):
            Trainer(module_b, tensors, config, checkpoint_path=tmp_path / "b.pt", **extra).fit()
    # a fresh process: other initial weights and another global RNG state
    module_b, tensors, extra = _resume_case(kind, msa_adata, counts_adata, 99, device)
    torch.manual_seed(999)
    result_b = Trainer(module_b, tensors, config, checkpoint_path=tmp_path / "b.pt", **extra).fit()
    assert result_b.steps == result_a.steps == 40
    if device.type == "cuda":
        # CUDA kernels with atomics (gather/scatter backward) are not bit-reproducible
        # even without an interruption: here resume must work and stay close
        pd.testing.assert_frame_equal(result_a.history, result_b.history, rtol=1e-3)
        for key, value in module_a.state_dict().items():
            torch.testing.assert_close(value, module_b.state_dict()[key], rtol=1e-3, atol=1e-4)
        return
    pd.testing.assert_frame_equal(result_a.history, result_b.history, check_exact=True)
    _assert_same_state(module_a, module_b)
    assert result_a.extra == result_b.extra
    # and the checkpoints they leave behind hold the same trainer state
    ckpt_a = torch.load(tmp_path / "a.pt", weights_only=False)
    ckpt_b = torch.load(tmp_path / "b.pt", weights_only=False)
    assert ckpt_a["step"] == ckpt_b["step"] == 40
    assert torch.equal(ckpt_a["torch_rng"], ckpt_b["torch_rng"])
    assert torch.equal(ckpt_a["generator"], ckpt_b["generator"])


def test_checkpoint_key_and_config_must_match(tmp_path, msa_adata, caplog):
    """Resuming needs the same data key and the same TrainConfig, max_steps included."""
    config = TrainConfig(max_steps=10, batch_size=16, eval_every=5, checkpoint_every=5)
    original = tmp_path / "ckpt.pt"
    module, tensors, _ = _sequence_setup(msa_adata)
    Trainer(
        module, tensors, config, device=CPU, checkpoint_path=original, checkpoint_key="k1"
    ).fit()
    assert torch.load(original, weights_only=False)["step"] == 10

    def rerun(cfg, key, name):
        path = tmp_path / name
        shutil.copy(original, path)
        module, tensors, _ = _sequence_setup(msa_adata, seed=5)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="vae.train._trainer"):
            result = Trainer(
                module, tensors, cfg, device=CPU, checkpoint_path=path, checkpoint_key=key
            ).fit()
        return result, caplog.text, torch.load(path, weights_only=False)

    # same key and config: the finished run is picked up, no step is repeated
    result, log, saved = rerun(config, "k1", "same.pt")
    assert "resumed from" in log
    assert result.history["step"].tolist() == [5, 10]
    assert saved["key"] == "k1"
    # another data key, or any other setting (even max_steps alone), starts from scratch
    longer = dataclasses.replace(config, max_steps=20)
    for cfg, key, name in [(config, "k2", "key.pt"), (longer, "k1", "longer.pt")]:
        result, log, saved = rerun(cfg, key, name)
        assert "ignoring checkpoint" in log
        assert "resumed from" not in log
        assert result.history["step"].tolist() == list(range(5, cfg.max_steps + 1, 5))
        assert (saved["key"], saved["config"]["max_steps"]) == (key, cfg.max_steps)


def test_float16_precision_is_refused_in_one_line():
    with pytest.raises(VAEInputError) as err:
        TrainConfig(precision="16")
    message = str(err.value)
    assert message.startswith("train.precision: '16' (float16 autocast) is not supported")
    assert "gradient scaler" in message
    assert "'bf16'" in message
    assert "\n" not in message
    with pytest.raises(VAEInputError, match=r"^train\.precision: must be one of '32', 'bf16'"):
        TrainConfig(precision="fp8")
    assert TrainConfig(precision="bf16").precision == "bf16"


def test_train_step_refuses_float16_before_reading_the_data(tmp_path):
    from vae import steps

    with pytest.raises(VAEInputError, match=r"^train\.protein\.precision: '16' \(float16"):
        steps.train_model(
            tmp_path / "not_read.h5ad",
            tmp_path / "model",
            tmp_path / "history.tsv",
            domain="protein",
            model_kwargs={},
            train_kwargs={"max_steps": 5, "precision": "16"},
            device="cpu",
        )
    assert not (tmp_path / "model").exists()


def test_the_workflow_schema_offers_no_float16_precision():
    import yaml
    from schema_check import schema_problem

    repo = Path(__file__).resolve().parents[1]
    schema = repo / "workflow" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load((repo / ".test" / "config" / "config.yaml").read_text())
    assert schema_problem(config, schema) is None
    config["train"]["protein"]["precision"] = "bf16"
    assert schema_problem(config, schema) is None
    config["train"]["protein"]["precision"] = "16"
    assert schema_problem(config, schema).startswith("train.protein.precision: '16' is not one")
