"""scArches-style mapping of new batches onto a trained count model (architecture surgery).

The reference model's one-hot batch inputs (first layer of the encoder and of the
decoder) gain one column per new batch category; every reference weight is frozen and
only the new columns are trained on the query (Lotfollahi et al. 2022, scArches; what
scvi-tools' ``load_query_data`` does with its default freezing). Normalisation layers keep
the reference's running statistics and use them during query training too, so the query
is trained in the state it is embedded in.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from typing import Literal

import anndata as ad
import pandas as pd
import torch

from vae.errors import VAEInputError
from vae.model._count import CountModel
from vae.model._query_cells import QueryCells
from vae.model._query_module import QueryModule
from vae.train import NamedRows, TrainConfig, Trainer
from vae.train._budget import scvi_default_epochs
from vae.train._trainer import split_indices

logger = logging.getLogger(__name__)

#: scvi-tools' default epochs for ``n_obs`` query cells (its ``get_max_epochs_heuristic``:
#: what ``model.train()`` runs after ``load_query_data`` when no ``max_epochs`` is given);
#: the same function as :func:`vae.train._budget.scvi_default_epochs`.
default_query_epochs = scvi_default_epochs

#: Default memory for the per-cell products of the encoder's first layer (1M cells x 128).
ENCODER_CACHE_BYTES = 1024**3


@dataclass(frozen=True)
class QueryTraining:
    """Settings of the query training (only the new batch columns learn).

    Attributes
    ----------
    epochs
        Passes over the query's training cells; ``None``: scvi-tools' default
        (:func:`default_query_epochs`).
    batch_size, lr
        Minibatch size and Adam learning rate (scvi-tools' defaults).
    validation_frac
        Query cells held out; the epoch with the best held-out ELBO is kept.
    seed
        Seed of the split, the new columns (``init="random"``), minibatches and noise.
    init
        New columns start at ``"zeros"`` (the query starts as a batch-free cell of the
        reference) or ``"random"`` (a fresh layer's initialisation, as scvi-tools pads).
    cache_bytes
        The frozen part of the encoder's first layer is computed once per cell and kept
        (``4 * cells * hidden`` bytes) when it fits in this many bytes; otherwise at
        every step. Either way the results are the same up to float rounding.
    """

    epochs: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    validation_frac: float = 0.1
    seed: int = 0
    init: Literal["zeros", "random"] = "zeros"
    cache_bytes: int = ENCODER_CACHE_BYTES


def new_batch_categories(model: CountModel, batches: pd.Series) -> list[str]:
    """Batch categories of a query that the model has not seen, in sorted order."""
    known = set(model.info["batch_categories"])
    return sorted(set(batches.astype(str)) - known)


def extend_batches(
    model: CountModel, new_categories: list[str], *, init: str = "zeros", seed: int = 0
) -> CountModel:
    """Return a copy of ``model`` with ``new_categories`` appended to its batch covariate.

    Reference weights are copied unchanged, so reference cells embed and decode exactly
    as before; the new one-hot columns start at zero or at a fresh layer's values.
    A model trained on one batch (no one-hot input) gains a zero column for it.
    """
    if not model.info.get("batch_key"):
        raise VAEInputError("model", "the model has no batch covariate to extend")
    if init not in ("zeros", "random"):
        raise VAEInputError("init", f"must be 'zeros' or 'random', not {init!r}")
    categories = list(model.info["batch_categories"]) + [str(c) for c in new_categories]
    kwargs = model.module_kwargs | {"n_batches": len(categories)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mapped = CountModel(kwargs, model.var_names, model.info | {"batch_categories": categories})
    state = mapped.module.state_dict()
    for key, old in model.module.state_dict().items():
        new = state[key]
        if new.shape == old.shape:
            state[key] = old.clone()
            continue
        # only the input width of the two batch-taking layers grows, at the end
        extra = new.shape[-1] - old.shape[-1]
        if new.dim() != 2 or new.shape[0] != old.shape[0] or extra <= 0:
            raise VAEInputError("model", f"cannot extend parameter {key} {tuple(old.shape)}")
        pad = new[:, -extra:].clone() if init == "random" else new.new_zeros(new.shape[0], extra)
        # a single-batch reference had no one-hot input: its column is zero, which is exact
        pad[:, : extra - len(new_categories)] = 0
        state[key] = torch.cat([old.cpu(), pad], dim=1)
    mapped.module.load_state_dict(state)
    mapped.module.eval()
    return mapped.to(model.device)


def _encoder_cache_fits(n_obs: int, wrapper: QueryModule, limit: int) -> bool:
    """Whether the per-cell products of the encoder's first layer fit in ``limit`` bytes."""
    return n_obs * wrapper.encoder_first.new.shape[0] * 4 <= limit


def train_query(
    mapped: CountModel,
    query: ad.AnnData | QueryCells,
    n_reference_batches: int,
    settings: QueryTraining,
) -> dict:
    """Train the new batch columns of ``mapped`` on ``query`` (model genes, raw counts).

    ``query`` is an AnnData in the model's gene order or :class:`QueryCells` (e.g. read
    from disk block by block). Returns a record of the run: epochs, steps, seconds, best
    step and held-out ELBO.
    """
    epochs = settings.epochs if settings.epochs is not None else default_query_epochs(query.n_obs)
    if epochs < 0:
        raise VAEInputError("epochs", f"must be at least 0, not {epochs}")
    n_train = split_indices(query.n_obs, settings.validation_frac, settings.seed)[0].numel()
    per_epoch = max(1, math.ceil(n_train / settings.batch_size))
    record = {"epochs": epochs, "steps_per_epoch": per_epoch} | asdict(settings)
    if epochs == 0:
        return record | {"steps": 0, "seconds": 0.0}
    config = TrainConfig(
        max_steps=epochs * per_epoch,
        batch_size=settings.batch_size,
        lr=settings.lr,
        weight_decay=0.0,  # decay would move the frozen reference columns of the layers
        kl_warmup_steps=0,
        validation_frac=settings.validation_frac,
        eval_every=per_epoch,
        seed=settings.seed,
    )
    started = time.perf_counter()
    wrapper = QueryModule(mapped.module, n_reference_batches)
    rows = NamedRows(mapped.tensors(query)).to(mapped.device)
    cached = _encoder_cache_fits(query.n_obs, wrapper, settings.cache_bytes)
    rows = NamedRows(rows.columns | wrapper.cell_constants(rows, encoder=cached))
    torch.manual_seed(settings.seed)
    trainer = Trainer(wrapper, rows, config, device=mapped.device)
    result = trainer.fit()
    mapped.module = wrapper.release()
    mapped.module.eval()
    return record | {
        "epochs": epochs,
        "steps": result.steps,
        "seconds": time.perf_counter() - started,
        "loop_seconds": result.seconds,
        "encoder_cache": cached,
        "best_step": result.extra["best_step"],
        "best_heldout_elbo": result.extra["best_elbo"],
        "history": result.history.to_dict(orient="list"),
    }


def map_query_model(
    model: CountModel,
    query: ad.AnnData | QueryCells,
    settings: QueryTraining | None = None,
) -> tuple[CountModel, dict]:
    """Map ``query`` (model genes, the model's batch column) onto a trained count model.

    Returns the mapped model and a record of what was done (``mode``: ``surgery``,
    ``seen_batches`` or ``no_batch_covariate``). ``model`` itself is not changed.

    - no batch covariate: the model embeds the query as it is;
    - every query batch seen in training: the model is used as it is (no training);
    - new batches: :func:`extend_batches`, then :func:`train_query` trains only the new
      batch columns (encoder and decoder first layers) for ``settings.epochs``.
    """
    settings = settings or QueryTraining()
    key = model.info.get("batch_key")
    if not key:
        note = "the model has no batch covariate: the query is embedded as it is"
        return model, {"mode": "no_batch_covariate", "note": note, "new_batches": []}
    new = new_batch_categories(model, query.obs[key])
    if not new:
        note = "every query batch was seen in training: no query training"
        return model, {"mode": "seen_batches", "note": note, "new_batches": []}
    n_reference = len(model.info["batch_categories"])
    mapped = extend_batches(model, new, init=settings.init, seed=settings.seed)
    record = train_query(mapped, query, n_reference, settings)
    mapped.info["mapping"] = {
        "reference_batches": model.info["batch_categories"],
        "new_batches": new,
        "trained": "new one-hot batch columns of the encoder and decoder first layers",
    } | {k: v for k, v in record.items() if k != "history"}
    note = f"{len(new)} new batch(es) mapped: only their batch columns were trained"
    return mapped, {"mode": "surgery", "note": note, "new_batches": new} | record
