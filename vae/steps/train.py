"""Train a domain model on a preprocessed dataset; write the model folder and its history."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vae._checksums import file_sha256
from vae._device import resolve_device
from vae._io import atomic_path, read_h5ad, staged_directory
from vae.data import read_variant_labels
from vae.data._backed import use_backed
from vae.errors import VAEInputError
from vae.metrics import learning_curve_monitor
from vae.model import BaseModel
from vae.provenance import write_manifest
from vae.train import TrainConfig, resolve_max_steps
from vae.train._trainer import NonFiniteLossError, check_precision, split_indices


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def train_model(
    data: str | Path,
    model_dir: str | Path,
    history: str | Path,
    *,
    domain: str,
    model_kwargs: dict[str, Any],
    train_kwargs: dict[str, Any],
    device: str = "auto",
    checkpoint: str | Path | None = None,
    scan: str | Path | None = None,
    scan_score_column: str = "score",
    scan_higher_is_fitter: bool = True,
    labels: str | Path | None = None,
    protein: str | None = None,
    score_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train a model on a preprocessed ``.h5ad``; write the model folder and history.

    Parameters
    ----------
    data
        Output of :func:`~vae.steps.preprocess_protein` or
        :func:`~vae.steps.preprocess_expression`.
    model_dir
        Folder to create (written whole, then renamed into place).
    history
        TSV with one row per evaluation.
    domain
        ``protein`` or ``expression``.
    model_kwargs
        Module settings (e.g. ``n_latent``, ``likelihood``).
    train_kwargs
        :class:`~vae.train.TrainConfig` fields, plus for expression ``backed``: ``"auto"``
        (default), ``True`` or ``False``; backed training reads the counts from the file
        block by block instead of loading them (:func:`~vae.data._backed.use_backed`).
    device
        ``auto``, ``cpu`` or ``cuda``.
    checkpoint
        Checkpoint file for resuming an interrupted run (kept outside ``model_dir``).
    scan, scan_score_column, scan_higher_is_fitter, labels, protein
        Protein: a deep mutational scan and/or ClinVar-style labels (rows of ``protein``)
        to follow during training. With ``train_kwargs["monitor_draws"] > 0`` (default 4)
        every history row gains ``monitor_dms_spearman`` / ``monitor_roc_auc`` from that
        many draws: the learning curve of what users need, next to the ELBO. Model
        selection never uses them.
    score_settings
        Protein: how the monitored variants are scored (``estimator``,
        ``latent_shrink``: the scoring step's, so the curve follows the scores users get).
    """
    started = time.perf_counter()
    train_kwargs = dict(train_kwargs)
    backed = train_kwargs.pop("backed", "auto")
    monitor_draws = train_kwargs.pop("monitor_draws", 4)
    if domain != "expression" and backed is True:
        raise VAEInputError(f"train.{domain}.backed", "backed reading is for expression data")
    # before the data are read; TrainConfig checks it too, without the domain in the key
    check_precision(
        train_kwargs.get("precision", TrainConfig.precision), f"train.{domain}.precision"
    )
    backed = domain == "expression" and use_backed(data, backed)
    adata = read_h5ad(data, backed=backed)
    torch_device = resolve_device(device)
    n_train = split_indices(
        adata.n_obs,
        train_kwargs.get("validation_frac", TrainConfig.validation_frac),
        train_kwargs.get("seed", TrainConfig.seed),
    )[0].numel()
    train_kwargs = resolve_max_steps(
        train_kwargs, n_train=n_train, n_cells=adata.n_obs, where=f"train.{domain}"
    )
    config = TrainConfig(**train_kwargs)
    model = BaseModel.for_domain(domain).from_preprocessed(adata, **model_kwargs)
    model.to(torch_device)
    monitor = None
    if domain == "protein" and monitor_draws > 0 and (scan is not None or labels is not None):
        monitor = learning_curve_monitor(
            model,
            scan=scan,
            score_column=scan_score_column,
            higher_is_fitter=scan_higher_is_fitter,
            labels=None if labels is None else read_variant_labels(labels, protein),
            n_samples=monitor_draws,
            seed=config.seed,
            score_settings=score_settings,
        )
    key = _fingerprint(file_sha256(data), domain, model_kwargs)
    try:
        result = model.train(
            adata, config, checkpoint_path=checkpoint, checkpoint_key=key, monitor=monitor
        )
    except NonFiniteLossError as err:  # one line naming the settings; no model is written
        raise VAEInputError(f"train.{domain}", str(err)) from err

    with staged_directory(model_dir) as staging:
        model.save(staging)
        write_manifest(
            staging,
            inputs={"data": data},
            config={"domain": domain, "model": model_kwargs, "train": asdict(config)},
            seed=config.seed,
            device=str(torch_device),
            wall_seconds=time.perf_counter() - started,
            extra={"train_seconds": result.seconds, "steps": result.steps, "backed": backed},
        )
        with atomic_path(history) as tmp:
            result.history.to_csv(tmp, sep="\t", index=False)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return {"steps": result.steps, "seconds": result.seconds}
