"""Shared save/load and training glue for the domain models."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import anndata as ad
import numpy as np
import torch

import vae
from vae._constants import FILES
from vae._io import atomic_path, write_json_atomic
from vae.errors import VAEInputError
from vae.module import BaseModule
from vae.train import NamedRows, Rows, TrainConfig, Trainer, TrainingResult
from vae.train._trainer import split_indices

logger = logging.getLogger(__name__)


def _qualname(cls: type) -> str:
    """``module.QualifiedName`` of a class."""
    return f"{cls.__module__}.{cls.__qualname__}"


class BaseModel:
    """A module plus everything needed to reuse it on new data.

    Subclasses set :attr:`domain` and :attr:`module_cls` and implement
    :meth:`tensors` (AnnData -> named tensors for the module). A class that sets
    :attr:`domain` in its own body becomes that domain's model, the class
    :func:`load_model` builds for saved models of the domain; each domain has one. A
    subclass of a domain's model that leaves :attr:`domain` to its parent is not
    registered (saved models of it load as the parent class); one that sets a taken
    domain again is refused unless declared with ``register=False``.

    Parameters
    ----------
    module_kwargs
        Keyword arguments that rebuild the module.
    var_names
        Feature names in model order (genes, or ``{position}{wild type}`` columns).
    info
        Preprocessing parameters and other metadata saved with the weights.
    """

    domain: ClassVar[str]
    module_cls: ClassVar[type[BaseModule]]
    _registry: ClassVar[dict[str, type[BaseModel]]] = {}

    def __init_subclass__(cls, *, register: bool = True, **kwargs: Any) -> None:
        """Register ``cls`` as its domain's model when it sets ``domain`` itself.

        Parameters
        ----------
        register
            ``False``: never register ``cls``, even if it sets :attr:`domain`.
        **kwargs
            Passed on to ``object.__init_subclass__``.

        Raises
        ------
        TypeError
            ``cls`` sets a domain that another class is registered for.
        """
        super().__init_subclass__(**kwargs)
        if not register or "domain" not in cls.__dict__:
            return
        taken = BaseModel._registry.get(cls.domain)
        # the same class defined again (its module reloaded) replaces itself
        if taken is not None and _qualname(taken) != _qualname(cls):
            raise TypeError(
                f"{_qualname(cls)} sets domain {cls.domain!r}, which is registered to "
                f"{_qualname(taken)} (the class load_model builds for saved "
                f"{cls.domain!r} models); leave domain to the parent class, or declare "
                f"class {cls.__name__}(..., register=False)"
            )
        BaseModel._registry[cls.domain] = cls

    def __init__(self, module_kwargs: dict, var_names: list[str], info: dict) -> None:
        self.module_kwargs = dict(module_kwargs)
        self.var_names = list(var_names)
        self.info = dict(info)
        self.module = self.module_cls(**self.module_kwargs)
        self.device = torch.device("cpu")

    @staticmethod
    def for_domain(domain: str) -> type[BaseModel]:
        """Return the model class of a domain (``protein``, ``expression``)."""
        if domain not in BaseModel._registry:
            raise VAEInputError("domain", f"unknown model domain {domain!r}")
        return BaseModel._registry[domain]

    @classmethod
    def from_anndata(cls, adata: ad.AnnData, **module_kwargs: Any) -> BaseModel:
        """Build an untrained model sized for ``adata``."""
        raise NotImplementedError

    @classmethod
    def from_preprocessed(cls, adata: ad.AnnData, **module_kwargs: Any) -> BaseModel:
        """Build an untrained model for the output of the domain's preprocessing step."""
        return cls.from_anndata(adata, **module_kwargs)

    def to(self, device: torch.device | str) -> BaseModel:
        """Move the module to ``device``."""
        self.device = torch.device(device)
        self.module.to(self.device)
        return self

    def tensors(self, adata: ad.AnnData) -> dict[str, Rows]:
        """Named inputs of the module (tensors or count stores), one row per observation."""
        raise NotImplementedError

    def initialise_from_data(self, adata: ad.AnnData, train_index: torch.Tensor) -> None:
        """Set data-dependent starting values of the new module (default: none).

        Called by :meth:`train` with the indices the trainer will train on (the same
        split), so that nothing is taken from the validation examples.
        """

    def validation_split(
        self, adata: ad.AnnData, config: TrainConfig
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sorted training and validation indices for ``config`` (rows in neither are unused).

        The default takes a random ``config.validation_frac`` of the observations
        (:func:`~vae.train._trainer.split_indices`); other ``validation_split`` values
        are for the domains that define them.
        """
        if config.validation_split != "random":
            raise VAEInputError(
                "train.validation_split",
                f"{config.validation_split!r} is not available for {self.domain} models; "
                "use 'random'",
            )
        return split_indices(adata.n_obs, config.validation_frac, config.seed)

    def sampling_weights(self, adata: ad.AnnData) -> torch.Tensor | None:
        """Return per-observation minibatch sampling weights, or ``None`` for uniform."""
        return None

    def train(
        self,
        adata: ad.AnnData,
        config: TrainConfig,
        *,
        checkpoint_path: str | Path | None = None,
        checkpoint_key: str = "",
        monitor: Callable[[], dict[str, float]] | None = None,
    ) -> TrainingResult:
        """Fit the module on ``adata`` (seeded by ``config.seed``).

        ``monitor`` is called at every evaluation and its numbers join the history row
        (see :class:`~vae.train.Trainer`).
        """
        train_index, val_index = self.validation_split(adata, config)
        torch.manual_seed(config.seed)
        self.module = self.module_cls(**self.module_kwargs).to(self.device)
        self.initialise_from_data(adata, train_index)
        trainer = Trainer(
            self.module,
            NamedRows(self.tensors(adata)),
            config,
            device=self.device,
            sampling_weights=self.sampling_weights(adata),
            checkpoint_path=checkpoint_path,
            checkpoint_key=checkpoint_key,
            monitor=monitor,
            split=(train_index, val_index),
        )
        result = trainer.fit()
        used = np.union1d(train_index.numpy(), val_index.numpy())
        dropped = np.setdiff1d(np.arange(adata.n_obs), used)
        self.info["train"] = (
            asdict(config)
            | {"steps": result.steps, "val_index": result.val_index.tolist()}
            | {"n_dropped": int(dropped.size), "dropped_index": dropped.tolist()}
            | result.extra
        )
        self.after_training(adata)
        return result

    def after_training(self, adata: ad.AnnData) -> None:
        """Keep what reuse on new data needs from the training data (default: nothing)."""

    @property
    def validation_index(self) -> np.ndarray:
        """Sorted indices of the examples held out from training (the ELBO's test set)."""
        train = self.info.get("train")
        if train is None:
            raise VAEInputError("model", "the model has not been trained")
        return np.sort(np.asarray(train["val_index"], dtype=int))

    def training_index(self, n_obs: int) -> np.ndarray:
        """Sorted indices of the examples trained on, of the ``n_obs`` in the training data.

        Neither the validation examples nor those the split dropped (``cluster``).
        """
        unused = np.union1d(self.validation_index, self.info["train"].get("dropped_index", []))
        return np.setdiff1d(np.arange(n_obs), unused.astype(int))

    @torch.no_grad()
    def _map_batches(
        self, adata: ad.AnnData, step, batch_size: int, dtype: torch.dtype = torch.float32
    ) -> list[torch.Tensor]:
        """Apply ``step(tensors)`` to consecutive minibatches on the device (eval mode)."""
        self.module.eval()
        rows = NamedRows(self.tensors(adata))
        out = []
        for start in range(0, len(rows), batch_size):
            batch = rows.batch(slice(start, start + batch_size))
            chunk = {name: value.to(self.device) for name, value in batch.items()}
            out.append(step(chunk).to(dtype).cpu())
        return out

    def get_latent(self, adata: ad.AnnData, batch_size: int = 4096) -> np.ndarray:
        """Posterior means ``E[z | x]`` as an ``(n_obs, n_latent)`` array."""
        out = self._map_batches(adata, lambda t: self.module.inference(**t).loc, batch_size)
        return torch.cat(out).numpy() if out else np.zeros((0, self.module.n_latent))

    def elbo(self, adata: ad.AnnData, batch_size: int = 4096) -> np.ndarray:
        """Per-observation ELBO with the posterior mean (deterministic)."""
        out = self._map_batches(
            adata, lambda t: -self.module(**t, sample=False).neg_elbo(), batch_size
        )
        return torch.cat(out).numpy() if out else np.zeros(0)

    @torch.no_grad()
    def log_evidence(
        self, adata: ad.AnnData, *, n_samples: int = 100, seed: int = 0, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """Importance-weighted log-evidence and the ELBO of the same draws, per observation.

        ``log p(x) >= log mean_k w_k`` with ``w_k = p(x | z_k) p(z_k) / q(z_k | x)`` and
        ``z_k ~ q(z | x)`` (Burda et al. 2016); the bound tightens as ``n_samples`` grows
        and its gap to the ELBO (``mean_k log w_k``, the same draws) measures how far the
        encoder's posterior is from the true one. A Bayesian decoder draws its weights
        once per draw and minibatch, so each ``w_k`` also integrates over the weights.

        Returns
        -------
        log_evidence, elbo
            Two ``(n_obs,)`` float64 arrays.
        """
        if n_samples < 1:
            raise ValueError("n_samples must be at least 1")

        def step(tensors: dict) -> torch.Tensor:
            n = next(iter(tensors.values())).shape[0]
            draws = torch.stack(
                [
                    self.module.log_importance_weight(
                        **tensors, noise=torch.randn(n, self.module.n_latent, device=self.device)
                    ).double()
                    for _ in range(n_samples)
                ]
            )
            bound = torch.logsumexp(draws, 0) - math.log(n_samples)
            return torch.stack([bound, draws.mean(0)], 1)

        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(seed)
            out = self._map_batches(adata, step, batch_size, dtype=torch.float64)
        values = torch.cat(out).numpy() if out else np.zeros((0, 2))
        return values[:, 0], values[:, 1]

    def save(self, directory: str | Path) -> None:
        """Write ``model.pt`` (weights, settings, feature names, version) and ``model.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "domain": self.domain,
            "module_kwargs": self.module_kwargs,
            "var_names": self.var_names,
            "info": self.info,
            "vae_version": vae.__version__,
            "torch_version": torch.__version__,
        }
        state = {k: v.cpu() for k, v in self.module.state_dict().items()}
        with atomic_path(directory / FILES.MODEL) as tmp:
            torch.save(meta | {"state_dict": state}, tmp)
        write_json_atomic(directory / FILES.MODEL_INFO, meta | {"n_features": len(self.var_names)})
        self.save_extras(directory)

    def save_extras(self, directory: Path) -> None:
        """Write files beside the weights that reuse needs (default: none)."""

    def load_extras(self, directory: Path) -> None:
        """Read what :meth:`save_extras` wrote (default: nothing)."""

    @classmethod
    def _from_saved(cls, saved: dict) -> BaseModel:
        model = cls(saved["module_kwargs"], saved["var_names"], saved["info"])
        model.module.load_state_dict(saved["state_dict"])
        model.module.eval()
        return model


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> BaseModel:
    """Load a saved model of either domain from ``directory``.

    Parameters
    ----------
    directory
        A folder written by :meth:`BaseModel.save`.
    device
        Device to place the module on.
    """
    path = Path(directory) / FILES.MODEL
    if not path.is_file():
        raise VAEInputError(directory, f"not a model folder (no {FILES.MODEL})")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise VAEInputError(path, f"cannot read model file ({type(err).__name__})") from err
    domain = saved.get("domain")
    if domain not in BaseModel._registry:
        raise VAEInputError(path, f"unknown model domain {domain!r}")
    model = BaseModel.for_domain(domain)._from_saved(saved)
    model.load_extras(Path(directory))
    return model.to(device)
