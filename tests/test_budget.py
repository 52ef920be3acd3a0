"""Training budgets in epochs: max_epochs and scvi-tools' default resolved to max_steps."""

from __future__ import annotations

import pytest

from vae.errors import VAEInputError
from vae.train import resolve_max_steps
from vae.train._budget import scvi_default_epochs

SETTINGS = {"batch_size": 128, "lr": 1e-3, "backed": "auto"}


def test_max_steps_alone_is_kept() -> None:
    resolved = resolve_max_steps(
        SETTINGS | {"max_steps": 600, "max_epochs": None}, n_train=630, n_cells=700
    )
    assert resolved == SETTINGS | {"max_steps": 600}


def test_max_epochs_counts_minibatches_of_the_training_cells() -> None:
    # 630 training cells at 128 per batch: 5 steps per epoch (the last one partial)
    settings = SETTINGS | {"max_steps": None, "max_epochs": 100}
    resolved = resolve_max_steps(settings, n_train=630, n_cells=700)
    assert resolved == SETTINGS | {"max_steps": 500}
    assert "max_epochs" not in resolved
    assert settings["max_epochs"] == 100  # the input is not changed
    assert resolve_max_steps(settings, n_train=640, n_cells=700)["max_steps"] == 500
    assert resolve_max_steps(settings, n_train=641, n_cells=700)["max_steps"] == 600


def test_an_epoch_is_at_least_one_step() -> None:
    resolved = resolve_max_steps({"batch_size": 128, "max_epochs": 3}, n_train=10, n_cells=11)
    assert resolved["max_steps"] == 3


@pytest.mark.parametrize(
    ("n_cells", "epochs"),
    [
        (1, 400),
        (700, 400),
        (1_000, 400),
        (20_000, 400),
        (40_000, 200),
        (100_000, 80),
        (1_000_000, 8),
        (3_000_000, 3),
        (15_999_999, 1),
        # the rounded quotient is 0 from here on; scvi-tools clamps it to 1 as well
        (16_000_000, 1),
        (30_000_000, 1),
        (10**8, 1),
    ],
)
def test_scvi_default_epochs(n_cells, epochs) -> None:
    assert scvi_default_epochs(n_cells) == epochs


def test_query_mapping_uses_the_same_epoch_heuristic() -> None:
    from vae.model import _mapping, default_query_epochs

    assert default_query_epochs is scvi_default_epochs
    assert _mapping.default_query_epochs is scvi_default_epochs


def test_neither_set_uses_scvi_tools_default_on_all_cells() -> None:
    # 1,000,000 cells: round(20000 / 1e6 * 400) = 8 epochs; 900,000 training cells at 128
    resolved = resolve_max_steps(
        SETTINGS | {"max_steps": None}, n_train=900_000, n_cells=1_000_000
    )
    assert resolved["max_steps"] == 8 * 7032
    assert resolve_max_steps({"batch_size": 100}, n_train=90, n_cells=100)["max_steps"] == 400


def test_both_set_is_one_line_error() -> None:
    with pytest.raises(VAEInputError) as err:
        resolve_max_steps(
            {"max_steps": 10, "max_epochs": 2}, n_train=5, n_cells=6, where="train.expression"
        )
    assert str(err.value) == (
        "train.expression: set max_steps or max_epochs, not both (the other to null)"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"max_epochs": 0}, "train.expression.max_epochs: must be a positive integer"),
        ({"max_epochs": 2.5}, "train.expression.max_epochs: must be a positive integer"),
        ({"max_epochs": True}, "train.expression.max_epochs: must be a positive integer"),
        ({"max_steps": -1}, "train.expression.max_steps: must be a positive integer"),
        ({"max_epochs": 2, "batch_size": 0}, "train.expression.batch_size: must be a positive"),
    ],
)
def test_bad_budget_values_are_named(settings, message) -> None:
    with pytest.raises(VAEInputError, match=message):
        resolve_max_steps(settings, n_train=5, n_cells=6, where="train.expression")


def test_train_step_trains_the_epochs_it_is_given(tmp_path) -> None:
    """``max_epochs`` reaches the trainer through the workflow's train step."""
    import json
    import math
    from pathlib import Path

    from vae import steps
    from vae._io import read_h5ad

    data = Path(__file__).resolve().parents[1] / ".test" / "data" / "tinycells.h5ad"
    steps.preprocess_expression(data, tmp_path / "cells.h5ad")
    steps.train_model(
        tmp_path / "cells.h5ad",
        tmp_path / "model",
        tmp_path / "history.tsv",
        domain="expression",
        model_kwargs={"n_latent": 2, "n_hidden": 8},
        train_kwargs={"max_steps": None, "max_epochs": 3, "batch_size": 32, "eval_every": 5},
        device="cpu",
    )
    info = json.loads((tmp_path / "model" / "model.json").read_text())["info"]["train"]
    n_cells = read_h5ad(tmp_path / "cells.h5ad").n_obs
    n_train = n_cells - len(info["val_index"])
    assert info["steps"] == info["max_steps"] == 3 * math.ceil(n_train / 32)
