"""A small, resumable training loop over a store of examples (:class:`~vae.train.RowStore`)."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from vae._io import atomic_path
from vae.errors import VAEInputError
from vae.train._rows import NamedRows, Rows, RowStore

logger = logging.getLogger(__name__)

#: Ways to choose the validation examples (:attr:`TrainConfig.validation_split`).
VALIDATION_SPLITS = ("random", "cluster")

#: Training precisions (:attr:`TrainConfig.precision`). float16 autocast (``"16"``) is not
#: one of them: the loop has no gradient scaler, without which small float16 gradients
#: underflow to zero; bf16 has float32's range and needs none.
PRECISIONS = ("32", "bf16")


def check_precision(precision: object, where: str = "train.precision") -> None:
    """Refuse a :attr:`TrainConfig.precision` outside :data:`PRECISIONS`, in one line.

    Parameters
    ----------
    precision
        The setting, e.g. ``"bf16"``.
    where
        Config key named in the error, e.g. ``train.protein.precision``.

    Raises
    ------
    VAEInputError
        ``precision`` is not ``"32"`` or ``"bf16"`` (``"16"`` included: see
        :data:`PRECISIONS`).
    """
    if precision in PRECISIONS:
        return
    if precision == "16":
        raise VAEInputError(
            where,
            "'16' (float16 autocast) is not supported: training has no gradient scaler, "
            "so small gradients would underflow; use 'bf16' (CUDA) or '32'",
        )
    raise VAEInputError(
        where, f"must be one of {', '.join(repr(p) for p in PRECISIONS)}, not {precision!r}"
    )


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by both domains.

    Attributes
    ----------
    max_steps
        Optimiser steps (minibatches).
    batch_size
        Examples per minibatch.
    lr, weight_decay
        Adam settings.
    adam_eps
        Adam's epsilon; ``None``: the module's ``default_adam_eps`` (the count VAE: 0.01,
        scvi-tools' training plan; measured to matter for batch mixing, BENCHMARKS.md),
        else torch's 1e-8.
    kl_warmup_steps
        Steps over which the KL weight rises linearly from 0 to 1 (0 disables).
    validation_frac
        Fraction of examples held out for validation ELBO and early stopping.
    validation_split
        ``"random"``: a seeded random subset; ``"cluster"`` (protein): whole clusters of
        sequences within ``validation_identity`` of random centres, with the training
        sequences that close to a held-out one dropped (:func:`vae.data._split.cluster_split`).
    validation_identity
        Identity that joins sequences into a cluster (``"cluster"`` only).
    eval_every
        Steps between validation evaluations and history rows.
    early_stopping_patience
        Evaluations without improvement of the validation ELBO before stopping
        (``None`` disables).
    checkpoint_every
        Steps between atomic checkpoints (``0`` disables).
    grad_clip
        Max gradient norm (``None`` disables).
    precision
        ``"32"`` or ``"bf16"`` (bfloat16 autocast, CUDA only; ignored on CPU). ``"16"``
        (float16) is refused: there is no gradient scaler (:data:`PRECISIONS`).
    seed
        Seed for the split, initialisation, minibatches and noise.
    """

    max_steps: int = 1000
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    adam_eps: float | None = None
    kl_warmup_steps: int = 0
    validation_frac: float = 0.1
    validation_split: str = "random"
    validation_identity: float = 0.8
    eval_every: int = 100
    early_stopping_patience: int | None = None
    checkpoint_every: int = 0
    grad_clip: float | None = None
    precision: str = "32"
    seed: int = 0

    def __post_init__(self) -> None:
        check_precision(self.precision)
        if self.validation_split not in VALIDATION_SPLITS:
            raise VAEInputError(
                "train.validation_split",
                f"must be one of {', '.join(VALIDATION_SPLITS)}, not {self.validation_split!r}",
            )
        identity = self.validation_identity
        if isinstance(identity, bool) or not isinstance(identity, int | float):
            raise VAEInputError("train.validation_identity", f"must be a number, not {identity!r}")
        if not 0 < identity <= 1:
            raise VAEInputError("train.validation_identity", f"must be in (0, 1], not {identity}")


@dataclass
class TrainingResult:
    """What training produced besides the weights.

    Attributes
    ----------
    history
        One row per evaluation: step, epoch, KL weight and the train and validation
        ELBO, reconstruction and KL (per example).
    train_index, val_index
        Indices of the examples used for training and validation.
    steps
        Optimiser steps taken.
    seconds
        Wall time of the loop (excluding a resumed run's earlier part).
    """

    history: pd.DataFrame
    train_index: torch.Tensor
    val_index: torch.Tensor
    steps: int
    seconds: float
    extra: dict = field(default_factory=dict)


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or inf; the model is not saved."""


def split_indices(n: int, validation_frac: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffle ``range(n)`` with ``seed`` and split off a validation part."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * validation_frac)) if n > 1 else 0
    n_val = min(max(n_val, 1 if validation_frac > 0 else 0), n - 1)
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def adam_eps(config: TrainConfig, module: torch.nn.Module) -> float:
    """Adam's epsilon for ``module``: the config's, else the module's default, else 1e-8."""
    if config.adam_eps is not None:
        return float(config.adam_eps)
    default = getattr(module, "default_adam_eps", None)
    return 1e-8 if default is None else float(default)


class Trainer:
    """Train a module whose ``module(**minibatch)`` returns a :class:`~vae.module.LossOutput`.

    Parameters
    ----------
    module
        The model (already on ``device``), e.g. a :class:`~vae.module.BaseModule`.
    data
        The examples: a :class:`~vae.train.RowStore` whose minibatches are the module's
        keyword arguments, or a mapping of input names to :class:`~vae.train.Rows`
        (tensors, CSR or disk-backed counts), read as :class:`~vae.train.NamedRows`.
    config
        Optimisation settings.
    device
        Where the data live and the module runs.
    sampling_weights
        Optional per-example weights; minibatches are then drawn with replacement
        in proportion to them (DeepSequence/EVE), otherwise by shuffled epochs.
    checkpoint_path
        Where checkpoints are written and resumed from.
    checkpoint_key
        Fingerprint of data and settings; a checkpoint with another key is ignored.
    monitor
        Called at every evaluation with the module in eval mode; the numbers it returns
        (e.g. a scan's Spearman ρ) are added to that history row. Selection of the best
        weights never uses them.
    split
        Training and validation indices chosen by the caller (e.g.
        :meth:`~vae.model.BaseModel.validation_split`); rows in neither are not used.
        Default: :func:`split_indices` with the config's fraction and seed.
    """

    def __init__(
        self,
        module: nn.Module,
        data: RowStore | Mapping[str, Rows],
        config: TrainConfig,
        *,
        device: torch.device,
        sampling_weights: torch.Tensor | None = None,
        checkpoint_path: str | Path | None = None,
        checkpoint_key: str = "",
        monitor: Callable[[], dict[str, float]] | None = None,
        split: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        self.module, self.config, self.device = module, config, device
        self.monitor = monitor
        store = NamedRows(data) if isinstance(data, Mapping) else data
        self.data: RowStore = store.to(device)
        self.n = len(self.data)
        self.train_index, self.val_index = (
            split_indices(self.n, config.validation_frac, config.seed)
            if split is None
            else (torch.as_tensor(split[0]).long(), torch.as_tensor(split[1]).long())
        )
        self.train_index, self.val_index = self.train_index.to(device), self.val_index.to(device)
        self.sampling_weights = (
            None if sampling_weights is None else sampling_weights.to(device)[self.train_index]
        )
        # global (weight) KL terms are divided by the effective number of training
        # examples: the sum of the sampling weights (EVE's Neff), else their count
        self.n_effective = float(
            self.train_index.numel()
            if self.sampling_weights is None
            else self.sampling_weights.sum().item()
        )
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.checkpoint_key = checkpoint_key
        # fused: one kernel per parameter instead of ~10 (CUDA, and CPU since torch 2.4, the
        # lower bound in pyproject.toml); frozen parameters (query mapping) are left out,
        # so neither step nor zero_grad walks over them
        self.optimizer = torch.optim.Adam(
            [p for p in module.parameters() if p.requires_grad],
            lr=config.lr,
            weight_decay=config.weight_decay,
            eps=adam_eps(config, module),
            fused=True,
        )
        self.generator = torch.Generator(device=device).manual_seed(config.seed)
        self._perm = torch.empty(0, dtype=torch.long, device=device)
        self._perm_pos = 0

    @property
    def steps_per_epoch(self) -> int:
        """Minibatches per pass over the training examples."""
        return max(1, math.ceil(self.train_index.numel() / self.config.batch_size))

    def _next_batch(self) -> torch.Tensor:
        size = min(self.config.batch_size, self.train_index.numel())
        if self.sampling_weights is not None:
            pick = torch.multinomial(self.sampling_weights, size, True, generator=self.generator)
            return self.train_index[pick]
        if self._perm_pos >= self._perm.numel():
            # a data source read from disk orders an epoch itself (shuffled row blocks)
            n_train = self.train_index.numel()
            order = self.data.epoch_order(n_train, self.generator)
            self._perm = (
                order.to(self.device)
                if order is not None
                else torch.randperm(n_train, generator=self.generator, device=self.device)
            )
            self._perm_pos = 0
        pick = self._perm[self._perm_pos : self._perm_pos + size]
        self._perm_pos += size
        return self.train_index[pick]

    def _kl_weight(self, step: int) -> float:
        warmup = self.config.kl_warmup_steps
        return 1.0 if warmup <= 0 else min(1.0, step / warmup)

    def _autocast(self):
        if self.device.type != "cuda" or self.config.precision == "32":
            return contextlib.nullcontext()
        # "bf16" (TrainConfig refuses float16: no gradient scaler here)
        return torch.autocast("cuda", dtype=torch.bfloat16)

    @torch.no_grad()
    def evaluate(self, index: torch.Tensor, chunk: int = 4096) -> dict[str, float]:
        """Mean per-example ELBO, reconstruction and KL over ``index`` (eval mode)."""
        was_training = self.module.training
        self.module.eval()
        totals = torch.zeros(3, device=self.device, dtype=torch.float64)
        for start in range(0, index.numel(), chunk):
            rows = index[start : start + chunk]
            with self._autocast():
                out = self.module(**self.data.batch(rows))
            totals += torch.stack(
                [-out.neg_elbo().sum(), out.reconstruction.sum(), out.kl_local.sum()]
            ).double()
        self.module.train(was_training)
        mean = (totals / max(index.numel(), 1)).tolist()
        return {"elbo": mean[0], "reconstruction": mean[1], "kl": mean[2]}

    def _state(self, step: int, history: list[dict], best: dict, running: tuple) -> dict:
        return {
            "running": running,
            "key": self.checkpoint_key,
            "step": step,
            "module": self.module.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "perm": self._perm,
            "perm_pos": self._perm_pos,
            "history": history,
            "best": best,
            "config": asdict(self.config),
        }

    def _save_checkpoint(self, step: int, history: list[dict], best: dict, running: tuple) -> None:
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(self._state(step, history, best, running), tmp)

    def _load_checkpoint(self) -> tuple[int, list[dict], dict, tuple] | None:
        if self.checkpoint_path is None or not self.checkpoint_path.is_file():
            return None
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        if state.get("key") != self.checkpoint_key or state.get("config") != asdict(self.config):
            logger.warning("ignoring checkpoint %s: other data or settings", self.checkpoint_path)
            return None
        self.module.load_state_dict(state["module"])
        self.optimizer.load_state_dict(state["optimizer"])
        # RNG states must be CPU byte tensors; map_location moved them to self.device
        self.generator.set_state(state["generator"].cpu())
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] is not None:
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        self._perm, self._perm_pos = state["perm"].to(self.device), state["perm_pos"]
        logger.info("resumed from %s at step %d", self.checkpoint_path, state["step"])
        return state["step"], state["history"], state["best"], state["running"]

    def fit(self) -> TrainingResult:
        """Run the loop (resuming from a matching checkpoint) and load the best weights."""
        cfg = self.config
        step, history, best = 0, [], {"elbo": -math.inf, "step": 0, "state": None, "bad": 0}
        running = torch.zeros(3, device=self.device)
        n_running = 0
        resumed = self._load_checkpoint()
        if resumed is not None:
            step, history, best, (running, n_running) = resumed
        started = time.perf_counter()
        self.module.train()
        while step < cfg.max_steps:
            rows = self._next_batch()
            kl_weight = self._kl_weight(step)
            with self._autocast():
                out = self.module(**self.data.batch(rows))
                loss = out.loss(kl_weight, self.n_effective)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_norm_(self.module.parameters(), cfg.grad_clip)
            self.optimizer.step()
            running += torch.stack(
                [-out.neg_elbo().mean(), out.reconstruction.mean(), out.kl_local.mean()]
            ).detach()
            n_running += 1
            step += 1
            if step % cfg.eval_every == 0 or step == cfg.max_steps:
                train = (running / n_running).tolist()
                running.zero_()
                n_running = 0
                self._check_finite(step, train)
                val = self.evaluate(self.val_index) if self.val_index.numel() else None
                row = {
                    "step": step,
                    "epoch": step / self.steps_per_epoch,
                    "kl_weight": kl_weight,
                    "train_elbo": train[0],
                    "train_reconstruction": train[1],
                    "train_kl": train[2],
                }
                if val is not None:
                    row |= {f"val_{k}": v for k, v in val.items()}
                if self.monitor is not None:
                    row |= self._monitored()
                history.append(row)
                logger.info("step %d: %s", step, row)
                score = val["elbo"] if val is not None else train[0]
                # only compare once the KL weight is at 1: earlier ELBOs are not comparable
                if kl_weight >= 1.0 and score > best["elbo"]:
                    best = {
                        "elbo": score,
                        "step": step,
                        "bad": 0,
                        "state": self._snapshot(),
                    }
                elif kl_weight >= 1.0:
                    best["bad"] += 1
                patience = cfg.early_stopping_patience
                if patience is not None and best["bad"] >= patience:
                    logger.info("early stopping at step %d (best step %d)", step, best["step"])
                    break
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and self.checkpoint_path:
                self._save_checkpoint(step, history, best, (running, n_running))
        if best["state"] is not None:
            # frozen parameters are not in the snapshot: they never changed
            loaded = self.module.load_state_dict(best["state"], strict=False)
            frozen = {n for n, p in self.module.named_parameters() if not p.requires_grad}
            if loaded.unexpected_keys or set(loaded.missing_keys) - frozen:
                raise RuntimeError(f"best weights do not fit the module: {loaded}")
        self.module.eval()
        return TrainingResult(
            history=pd.DataFrame(history),
            train_index=self.train_index.cpu(),
            val_index=self.val_index.cpu(),
            steps=step,
            seconds=time.perf_counter() - started,
            extra={"best_step": best["step"], "best_elbo": best["elbo"]},
        )

    def _snapshot(self) -> dict[str, torch.Tensor]:
        """Copy the state training can change: buffers and parameters that require grad."""
        frozen = {n for n, p in self.module.named_parameters() if not p.requires_grad}
        state = self.module.state_dict()
        return {k: v.detach().clone() for k, v in state.items() if k not in frozen}

    def _monitored(self) -> dict[str, float]:
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.random.fork_rng(
                devices=[self.device] if self.device.type == "cuda" else []
            ):
                return self.monitor()
        finally:
            self.module.train(was_training)

    @staticmethod
    def _check_finite(step: int, terms: list[float]) -> None:
        for name, value in zip(("ELBO", "reconstruction", "KL"), terms, strict=True):
            if not math.isfinite(value):
                raise NonFiniteLossError(
                    f"training diverged: {name} term is {value} at step {step}; "
                    "lower the learning rate or set grad_clip"
                )
