"""A protein model and its site-independent baseline on a deep mutational scan."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from vae._io import atomic_path
from vae.data._mutants import EncodedVariants, encode_variants
from vae.data._scan import read_scan
from vae.metrics._protein import scan_spearman, variant_auc

if TYPE_CHECKING:
    from vae.model import SequenceModel, SiteIndependentModel

#: Columns of ``dms_scores.csv``.
SCAN_SCORE_COLUMNS = ("mutant", "n_mutations", "fitness", "evol_index", "site_independent")


def evaluate_scan(
    model: SequenceModel | Sequence[SequenceModel],
    site: SiteIndependentModel,
    scan: str | Path,
    output: str | Path | None = None,
    *,
    score_column: str = "score",
    higher_is_fitter: bool = True,
    score_settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Spearman ρ of the model's and the site-independent ``evol_index`` on a scan.

    Every variant of the scan is accounted for: scored, or skipped with a reason
    (a position outside the model's columns, a wild type other than the focus residue,
    no score). Multiple mutants are scored jointly (ELBO of the whole variant).

    Parameters
    ----------
    model
        A trained protein model, or the members of a seed ensemble: their mean
        ``evol_index`` is scored, and ``dms_member_spearman`` lists each member's ρ.
    site
        The site-independent model fit on the same training sequences.
    scan
        Scan table (see :func:`vae.data.read_scan`).
    output
        Optional CSV of the scored variants: ``mutant``, ``n_mutations``, ``fitness``
        (higher = fitter), ``evol_index``, ``site_independent``.
    score_column, higher_is_fitter
        Which column holds the fitness, and its direction.
    score_settings
        Keywords of :meth:`~vae.model.SequenceModel.log_likelihood` (draws, seed,
        estimator); the scoring step's settings, so singles match ``variant_scores.csv``.

    Returns
    -------
    dict
        ``dms_spearman``, ``site_independent_dms_spearman``, their difference, the counts
        ``dms_n_variants``, ``dms_n_scored``, ``dms_n_skipped_*``, and for scans with
        multiple mutants the same ρ for singles and for multiples.
    """
    members = list(model) if isinstance(model, (list, tuple)) else [model]
    encoded, fitness, n_read, n_missing = _encoded_scan(
        members[0], scan, score_column=score_column, higher_is_fitter=higher_is_fitter
    )
    indices = np.stack(
        [m.score_variants(encoded.codes, **(score_settings or {})) for m in members]
    )
    scored = pd.DataFrame(
        {
            "mutant": encoded.names,
            "n_mutations": encoded.n_mutations,
            "fitness": fitness,
            "evol_index": indices.mean(0),
            "site_independent": site.score_variants(encoded.codes),
        }
    )
    out: dict[str, Any] = {
        "dms_n_variants": n_read + n_missing,
        **{f"dms_{k}": v for k, v in encoded.counts().items()},
        "dms_n_skipped_missing_score": n_missing,
    }
    out |= _spearman_pair(scored, "")
    if len(members) > 1:
        out["dms_member_spearman"] = [scan_spearman(index, fitness) for index in indices]
    if (scored["n_mutations"] > 1).any():
        out |= _spearman_pair(scored[scored["n_mutations"] == 1], "singles_")
        out |= _spearman_pair(scored[scored["n_mutations"] > 1], "multiples_")
    if output is not None:
        with atomic_path(output) as tmp:
            scored.to_csv(tmp, index=False, float_format="%.6g")
    return out


def _encoded_scan(
    model: SequenceModel, scan: str | Path, *, score_column: str, higher_is_fitter: bool
) -> tuple[EncodedVariants, np.ndarray, int, int]:
    """Read a scan and encode it on the model's columns.

    Returns the encoded variants, their fitness, the number of rows with a score and the
    number without one.
    """
    table, n_missing = read_scan(
        scan, score_column=score_column, higher_is_fitter=higher_is_fitter
    )
    encoded = encode_variants(
        list(table["mutant"]), model.info["positions"], model.info["focus_residues"], source=scan
    )
    fitness = table.set_index("mutant").loc[encoded.names, "fitness"].to_numpy()
    return encoded, fitness, len(table), n_missing


def _spearman_pair(scored: pd.DataFrame, prefix: str) -> dict[str, float | int | None]:
    """ρ of both models and their difference; ``None`` (JSON null) where undefined."""
    vae = scan_spearman(scored["evol_index"].to_numpy(), scored["fitness"].to_numpy())
    site = scan_spearman(scored["site_independent"].to_numpy(), scored["fitness"].to_numpy())
    values = {
        f"dms_{prefix}spearman": vae,
        f"site_independent_dms_{prefix}spearman": site,
        f"dms_{prefix}spearman_gain": vae - site,
    }
    return {f"dms_{prefix}n": int(len(scored))} | {
        k: (None if np.isnan(v) else float(v)) for k, v in values.items()
    }


def learning_curve_monitor(
    model: SequenceModel,
    *,
    scan: str | Path | None = None,
    score_column: str = "score",
    higher_is_fitter: bool = True,
    labels: pd.DataFrame | None = None,
    n_samples: int = 4,
    seed: int = 0,
    score_settings: dict[str, Any] | None = None,
) -> Callable[[], dict[str, float]]:
    """Build a training monitor: ρ on the scan and ROC AUC on the labels, few draws.

    ``score_settings``: further keywords of
    :meth:`~vae.model.SequenceModel.log_likelihood` (the scoring step's ``estimator`` and
    ``latent_shrink``).

    The variants are read and encoded once; each call scores only them (not every
    single mutant), so a history row costs a few forward passes over the labelled set.
    Bad scan files fail here, before training starts.
    """
    info = model.info
    scan_variants = fitness = label_variants = None
    if scan is not None:
        scan_variants, fitness, _, _ = _encoded_scan(
            model, scan, score_column=score_column, higher_is_fitter=higher_is_fitter
        )
    if labels is not None:
        label_variants = encode_variants(
            list(labels["mutant"]), info["positions"], info["focus_residues"], source="labels"
        )

    def monitor() -> dict[str, float]:
        row = {}
        settings = {"n_samples": n_samples, "seed": seed} | (score_settings or {})
        if scan_variants is not None:
            index = model.score_variants(scan_variants.codes, **settings)
            row["monitor_dms_spearman"] = scan_spearman(index, fitness)
        if label_variants is not None:
            index = model.score_variants(label_variants.codes, **settings)
            scored = pd.DataFrame({"mutant": label_variants.names, "evol_index": index})
            row["monitor_roc_auc"] = variant_auc(scored, labels).get("roc_auc", float("nan"))
        return row

    return monitor
