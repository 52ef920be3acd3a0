"""Training budgets in epochs: resolve ``max_epochs`` (or scvi-tools' default) to steps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from vae.errors import VAEInputError
from vae.train._trainer import TrainConfig

#: scvi-tools' default epochs: ``min(round(SCVI_CELLS / n_cells * SCVI_EPOCHS), SCVI_EPOCHS)``.
SCVI_CELLS, SCVI_EPOCHS = 20_000, 400


def scvi_default_epochs(n_cells: int) -> int:
    """Return scvi-tools' default number of epochs for a dataset of ``n_cells`` cells.

    ``max(min(round(20000 / n_cells * 400), 400), 1)``, as scvi-tools'
    ``get_max_epochs_heuristic``: 400 up to 20,000 cells, then decaying, and at least 1
    (the rounded quotient alone would be 0 from 16 million cells on; scvi-tools clamps it
    to 1 too). The one home of the heuristic: training budgets
    (:func:`resolve_max_steps`) and query mapping (:mod:`vae.model._mapping`) use it.

    Parameters
    ----------
    n_cells
        All cells of the dataset (training and validation); below 1 counts as 1.

    Returns
    -------
    int
        Epochs, from 1 to 400.
    """
    return max(1, min(round(SCVI_CELLS / max(n_cells, 1) * SCVI_EPOCHS), SCVI_EPOCHS))


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VAEInputError(where, f"must be a positive integer or null, not {value!r}")
    return value


def resolve_max_steps(
    settings: Mapping[str, Any],
    *,
    n_train: int,
    n_cells: int,
    where: str = "train",
) -> dict[str, Any]:
    """Return the train settings with ``max_steps`` resolved and ``max_epochs`` removed.

    One epoch is ``ceil(n_train / batch_size)`` optimiser steps (at least 1), as in
    :attr:`vae.train.Trainer.steps_per_epoch`.

    - ``max_steps`` set, ``max_epochs`` unset or null: the settings as they are.
    - ``max_epochs`` set, ``max_steps`` unset or null: ``max_epochs`` epochs.
    - neither set: scvi-tools' default, ``min(round(20000 / n_cells * 400), 400)`` epochs
      (:func:`scvi_default_epochs`).

    Parameters
    ----------
    settings
        Train settings (``train.<domain>`` of the config: :class:`~vae.train.TrainConfig`
        fields plus ``max_epochs`` and the step's own keys, which pass through).
    n_train
        Training examples after the validation split.
    n_cells
        All examples of the dataset (training and validation), for scvi-tools' default.
    where
        Config key named in errors, e.g. ``train.expression``.

    Returns
    -------
    dict
        A copy of ``settings`` without ``max_epochs``, with an integer ``max_steps``.

    Raises
    ------
    VAEInputError
        Both ``max_steps`` and ``max_epochs`` are set, or either is not a positive integer.
    """
    resolved = dict(settings)
    max_steps = resolved.get("max_steps")
    max_epochs = resolved.pop("max_epochs", None)
    if max_steps is not None and max_epochs is not None:
        raise VAEInputError(where, "set max_steps or max_epochs, not both (the other to null)")
    if max_steps is not None:
        resolved["max_steps"] = _positive_int(max_steps, f"{where}.max_steps")
        return resolved
    if max_epochs is None:
        max_epochs = scvi_default_epochs(_positive_int(n_cells, "n_cells"))
    epochs = _positive_int(max_epochs, f"{where}.max_epochs")
    batch_size = resolved.get("batch_size", TrainConfig.batch_size)
    batch_size = _positive_int(batch_size, f"{where}.batch_size")
    steps_per_epoch = max(1, math.ceil(_positive_int(n_train, "n_train") / batch_size))
    resolved["max_steps"] = epochs * steps_per_epoch
    return resolved
