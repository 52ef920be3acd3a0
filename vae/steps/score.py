"""Score variants with trained protein models: every single mutant, or a table of variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vae._device import resolve_device
from vae._io import atomic_path
from vae.data import encode_variants
from vae.data._scan import read_variant_names
from vae.errors import VAEInputError
from vae.model import DEFAULT_LATENT_SHRINK, SequenceModel, eve_scores, load_model


def load_protein_model(model_dir: str | Path, device: str = "cpu") -> SequenceModel:
    """Load a model folder that must hold a protein model."""
    model = load_model(model_dir, device)
    if model.domain != "protein":
        raise VAEInputError(model_dir, "variant scores need a protein model")
    return model


def load_members(model_dirs: list[str | Path], device: str = "cpu") -> list[SequenceModel]:
    """Load protein models that must all model the same alignment columns (an ensemble)."""
    models = [load_protein_model(m, device) for m in model_dirs]
    first = (models[0].info["positions"], models[0].info["focus_residues"])
    for path, model in zip(model_dirs, models, strict=True):
        if (model.info["positions"], model.info["focus_residues"]) != first:
            raise VAEInputError(
                path, f"models the columns of another alignment than {model_dirs[0]}"
            )
    return models


def member_seed(model: SequenceModel, position: int) -> int:
    """Training seed of an ensemble member (its position when the model has no record)."""
    return int(model.info.get("train", {}).get("seed", position))


def member_columns(seeds: list[int]) -> list[str]:
    """Column of each member's evol index: ``evol_index_seed<S>``, by position if seeds repeat."""
    names = [f"seed{s}" for s in seeds] if len(set(seeds)) == len(seeds) else range(len(seeds))
    return [f"evol_index_{name}" for name in names]


def ensemble_columns(scores: np.ndarray, seeds: list[int]) -> dict[str, np.ndarray]:
    """Mean ``evol_index`` of the members; with several, their SD and one column per member.

    Member columns are ``evol_index_seed<S>`` by training seed, or ``evol_index_<i>`` by
    position when two members share a seed.
    """
    columns = {"evol_index": scores.mean(0)}
    if len(scores) > 1:
        columns["evol_index_sd"] = scores.std(0, ddof=1)
        columns |= dict(zip(member_columns(seeds), scores, strict=True))
    return columns


def score_variants(
    model_dirs: str | Path | list[str | Path],
    output: str | Path,
    *,
    n_samples: int = 20,
    seed: int = 0,
    device: str = "auto",
    common_draws: bool = True,
    estimator: str = "elbo",
    latent_shrink: float = DEFAULT_LATENT_SHRINK,
    eve_percentiles: tuple[float, ...] = (75, 100),
) -> None:
    """Write the evolutionary index of every single substitution, with EVE's scores and classes.

    Several model folders (a seed ensemble) give the members' mean ``evol_index``, its SD
    and one ``evol_index_seed<S>`` column per member. ``estimator``: ``elbo``
    (difference of ELBOs, DeepSequence/EVE), ``evidence`` (difference of
    importance-weighted log-evidence estimates over the same draws) or ``profile``
    (difference of log-likelihoods under the decoder at ``latent_shrink`` times the wild
    type's latent mean, :meth:`~vae.model.SequenceModel.wild_type_profile`).
    EVE's two-component mixture on the evol indices adds ``eve_score``, ``uncertainty`` and
    one ``eve_class_<P>pct`` column per percentage in ``eve_percentiles``
    (:func:`~vae.model.eve_scores`).
    """
    dirs = [model_dirs] if isinstance(model_dirs, (str, Path)) else list(model_dirs)
    models = load_members(dirs, resolve_device(device))
    settings = {"n_samples": n_samples, "seed": seed, "common_draws": common_draws}
    settings |= {"estimator": estimator, "latent_shrink": latent_shrink}
    tables = [m.score_single_mutants(**settings) for m in models]
    table = tables[0].drop(columns="evol_index")
    scores = np.stack([t["evol_index"].to_numpy() for t in tables])
    seeds = [member_seed(m, i) for i, m in enumerate(models)]
    for column, values in ensemble_columns(scores, seeds).items():
        table[column] = values
    table = eve_scores(table, percentiles=eve_percentiles, seed=seed, source=str(output))
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def score_variant_table(
    model_dirs: list[str | Path],
    variants: str | Path,
    output: str | Path,
    *,
    n_samples: int = 20,
    seed: int = 0,
    device: str = "auto",
    common_draws: bool = True,
    estimator: str = "elbo",
    latent_shrink: float = DEFAULT_LATENT_SHRINK,
    chunk_size: int = 10_000,
) -> dict[str, int]:
    """Score the variants of a table (single or multiple mutants) with one model or several.

    Every row of ``variants`` (a ``mutant`` or ``variant`` column, ``A110D:N146D``; ``/``
    and ``,`` also separate) comes back in ``output`` with its ``status``: ``scored``,
    ``outside_columns`` (a position the models do not model) or ``wt_mismatch``. Scored
    rows get ``evol_index`` (log-likelihood of the wild type minus the variant's, the same
    draws as the single-mutant scan), averaged over the models when several are given
    (an ensemble; ``evol_index_sd`` and one ``evol_index_<i>`` column per model then).
    Variants are encoded and scored ``chunk_size`` at a time, so memory is bounded by the
    chunk, not by the table.

    Returns
    -------
    dict
        Counts per status.
    """
    if chunk_size < 1:
        raise VAEInputError("chunk_size", f"must be at least 1, not {chunk_size}")
    models = load_members(model_dirs, resolve_device(device))
    names = read_variant_names(variants)
    info = models[0].info
    settings = {"n_samples": n_samples, "seed": seed, "common_draws": common_draws}
    settings |= {"estimator": estimator, "latent_shrink": latent_shrink}
    parts = []
    for start in range(0, len(names), chunk_size):
        chunk = names[start : start + chunk_size]
        encoded = encode_variants(
            chunk, info["positions"], info["focus_residues"], source=variants
        )
        status = {name: reason for reason, skipped in encoded.skipped.items() for name in skipped}
        part = pd.DataFrame({"mutant": chunk, "status": [status.get(n, "scored") for n in chunk]})
        scores = np.stack([m.score_variants(encoded.codes, **settings) for m in models])
        seeds = [member_seed(m, i) for i, m in enumerate(models)]
        columns = {"n_mutations": encoded.n_mutations} | ensemble_columns(scores, seeds)
        for column, values in columns.items():
            part[column] = part["mutant"].map(dict(zip(encoded.names, values, strict=True)))
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return {k: int(v) for k, v in table["status"].value_counts().items()}


def score_eve_global(
    scores: dict[str, str | Path],
    outputs: dict[str, str | Path],
    *,
    protein_weight: float = 0.3,
    eve_percentiles: tuple[float, ...] = (75, 100),
    seed: int = 0,
) -> None:
    """EVE's global + per-protein mixture over several proteins' ``variant_scores.csv``.

    A global mixture is fit on the evol indices of every protein and one per protein
    started from it; each variant's ``eve_score`` is ``protein_weight`` × its protein's
    posterior + (1 − ``protein_weight``) × the global one, and the class cut-offs are
    pooled over all proteins (:func:`~vae.model.eve_scores`). Each protein's table is
    written to ``outputs[protein]``, its per-protein EVE columns replaced.
    """
    if set(scores) != set(outputs) or len(scores) < 2:
        raise VAEInputError("score.eve_global_weight", "needs two or more protein datasets")
    eve_columns = ("eve_score", "uncertainty")
    tables = {}
    for name, path in scores.items():
        table = pd.read_csv(path)
        drop = [c for c in table if c in eve_columns or c.startswith("eve_class_")]
        tables[name] = table.drop(columns=drop)
    scored = eve_scores(
        tables, protein_weight=protein_weight, percentiles=eve_percentiles, seed=seed
    )
    for name, table in scored.items():
        with atomic_path(outputs[name]) as tmp:
            table.to_csv(tmp, index=False, float_format="%.6g")
