"""EVE's calibrated variant scores: a two-component Gaussian mixture on evol indices.

Follows EVE (Frazer et al. 2021; OATML-Markslab/EVE, ``train_GMM_and_compute_EVE_scores.py``
and ``utils/performance_helpers.py``):

* a 1-D two-component :class:`~sklearn.mixture.GaussianMixture` (``covariance_type='full'``,
  ``max_iter=1000``, ``n_init=30``, ``tol=1e-4``) is fit on the evol indices of all single
  mutants; the component with the higher mean is the pathogenic one;
* with several proteins, one *global* mixture is fit on all proteins' evol indices and one
  mixture per protein, started from the global one's weights, means and precisions
  (``n_init=1``); a variant's score is
  ``protein_weight * p_protein + (1 - protein_weight) * p_global``, each ``p`` the
  posterior probability of that mixture's pathogenic component (EVE's
  ``compute_weighted_score_two_GMMs``, default weight 0.3);
* ``uncertainty`` is the predictive entropy of the score in nats,
  ``-(s ln s + (1 - s) ln(1 - s))``, with exact 0 and 1 moved in by ``1e-8``
  (EVE's ``predictive_entropy_binary_classifier``);
* class ``P`` % retained: ``Pathogenic`` if the score is above 0.5, else ``Benign``, and
  ``Uncertain`` where the uncertainty is above its ``P``-th percentile over *all* scored
  variants, pooled across proteins (EVE's recomputed thresholds: ``pd.qcut`` bins whose
  upper cut-off is this percentile).

The evol index here is :mod:`vae`'s ``evol_index``, ``log p(wild type) - log p(mutant)``,
which has EVE's sign: higher is more damaging.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp
from scipy.stats import norm
from sklearn.mixture import GaussianMixture

from vae.errors import VAEInputError

#: EVE's default weight of the per-protein mixture in the global + per-protein score.
PROTEIN_GMM_WEIGHT = 0.3
#: Percentages of the most certain variants that get a class, EVE's 75 % and 100 %.
PERCENTILES = (75, 100)
#: Fewest finite evol indices a mixture is fit on.
MIN_VARIANTS = 10
#: EVE's shift of scores of exactly 0 or 1 before taking the entropy.
_EPS = 1e-8

PATHOGENIC, BENIGN, UNCERTAIN = "Pathogenic", "Benign", "Uncertain"


@dataclass(frozen=True)
class EveMixture:
    """A fitted two-component 1-D Gaussian mixture of evol indices.

    Parameters
    ----------
    weights, means, sds
        Mixing weight, mean and standard deviation of the two components, in
        scikit-learn's order.
    pathogenic
        Index (0 or 1) of the pathogenic component: the one with the higher mean.
    converged
        Whether the best of scikit-learn's initialisations converged.
    n_iter
        EM iterations of that initialisation.
    """

    weights: tuple[float, float]
    means: tuple[float, float]
    sds: tuple[float, float]
    pathogenic: int
    converged: bool
    n_iter: int

    def _log_weighted(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
        return np.log(np.asarray(self.weights)) + norm.logpdf(
            x, loc=np.asarray(self.means), scale=np.asarray(self.sds)
        )

    def pathogenic_probability(self, x: np.ndarray) -> np.ndarray:
        """Posterior probability of the pathogenic component at each evol index ``x``.

        Monotone in ``x`` where the two standard deviations are close; far outside the
        data the wider component takes over again whatever its mean (as in EVE).
        """
        log_joint = self._log_weighted(x)
        return np.exp(log_joint[:, self.pathogenic] - logsumexp(log_joint, axis=1))

    def component_densities(self, x: np.ndarray) -> np.ndarray:
        """Weighted densities ``w_k N(x; mu_k, sd_k)``, shape ``(len(x), 2)``."""
        return np.exp(self._log_weighted(x))

    def to_dict(self) -> dict[str, float | int | bool]:
        """EVE's ``GMM_stats`` columns plus convergence: JSON-ready scalars."""
        p, b = self.pathogenic, 1 - self.pathogenic
        return {
            "weight_pathogenic": self.weights[p],
            "mean_pathogenic": self.means[p],
            "mean_benign": self.means[b],
            "std_dev_pathogenic": self.sds[p],
            "std_dev_benign": self.sds[b],
            "converged": self.converged,
            "n_iter": self.n_iter,
        }

    def as_init(self) -> dict[str, np.ndarray]:
        """``GaussianMixture`` keywords that start EM at this mixture."""
        return {
            "weights_init": np.asarray(self.weights),
            "means_init": np.asarray(self.means).reshape(2, 1),
            "precisions_init": (1.0 / np.asarray(self.sds) ** 2).reshape(2, 1, 1),
        }


def _checked(evol_index: np.ndarray | pd.Series, source: str) -> np.ndarray:
    values = np.asarray(evol_index, dtype=np.float64).ravel()
    bad = int((~np.isfinite(values)).sum())
    if bad:
        raise VAEInputError(
            source, f"{bad} of {values.size} evol indices are NaN or infinite; score them all"
        )
    if values.size < MIN_VARIANTS:
        raise VAEInputError(
            source, f"{values.size} evol indices; a mixture needs at least {MIN_VARIANTS}"
        )
    if np.ptp(values) == 0:
        raise VAEInputError(source, f"all {values.size} evol indices are equal")
    return values


def fit_eve_mixture(
    evol_index: np.ndarray | pd.Series,
    *,
    seed: int = 0,
    n_init: int = 30,
    max_iter: int = 1000,
    tol: float = 1e-4,
    init: EveMixture | None = None,
    source: str = "evol_index",
) -> EveMixture:
    """Fit EVE's two-component Gaussian mixture to evol indices.

    Parameters
    ----------
    evol_index
        Evol indices of single mutants (higher = more damaging), all finite.
    seed
        ``random_state`` of scikit-learn's k-means initialisations: same seed, same fit.
    n_init
        Initialisations; the best by likelihood is kept (EVE: 30). Ignored with ``init``.
    max_iter, tol
        EM limits (EVE: 1000 and ``1e-4``).
    init
        Start EM at this mixture, with one initialisation (EVE's per-protein mixtures start
        at the global one).
    source
        Named in error messages.

    Returns
    -------
    EveMixture
        The fitted mixture; its ``pathogenic`` component has the higher mean.

    Raises
    ------
    VAEInputError
        Non-finite values, fewer than :data:`MIN_VARIANTS` of them, or all equal.
    """
    values = _checked(evol_index, source)
    settings = {"n_init": n_init} if init is None else {"n_init": 1, **init.as_init()}
    model = GaussianMixture(
        n_components=2,
        covariance_type="full",
        max_iter=max_iter,
        tol=tol,
        random_state=seed,
        **settings,
    ).fit(values.reshape(-1, 1))
    means = model.means_.ravel()
    return EveMixture(
        weights=tuple(float(w) for w in model.weights_),
        means=tuple(float(m) for m in means),
        sds=tuple(float(s) for s in np.sqrt(model.covariances_.ravel())),
        pathogenic=int(np.argmax(means)),
        converged=bool(model.converged_),
        n_iter=int(model.n_iter_),
    )


def predictive_entropy(scores: np.ndarray) -> np.ndarray:
    """EVE's uncertainty: binary entropy of the score in nats (at most ``ln 2``).

    Scores of exactly 0 or 1 are moved in by ``1e-8`` first, as in EVE.
    """
    p = np.asarray(scores, dtype=np.float64)
    p = np.where(p == 1.0, 1.0 - _EPS, np.where(p == 0.0, _EPS, p))
    return -(p * np.log(p) + (1.0 - p) * np.log(1.0 - p))


def class_column(percent: float) -> str:
    """Name of the class column for ``percent`` % retained, e.g. ``eve_class_75pct``."""
    return f"eve_class_{percent:g}pct"


def eve_classes(
    scores: np.ndarray, uncertainty: np.ndarray, percentiles: Sequence[float] = PERCENTILES
) -> dict[str, np.ndarray]:
    """EVE's classes with the ``P`` % most certain variants classified, for each ``P``.

    ``Pathogenic`` where the score is above 0.5, else ``Benign``; ``Uncertain`` where
    the uncertainty is above its ``P``-th percentile (linear interpolation, as
    ``pandas.qcut``) over all the given variants. Ties at the cut-off are kept, so
    slightly more than ``P`` % may be classified.

    Parameters
    ----------
    scores, uncertainty
        EVE scores and their predictive entropies, same length.
    percentiles
        Percentages retained, each in ``(0, 100]``.

    Returns
    -------
    dict
        :func:`class_column` name to an object array of class labels.
    """
    scores = np.asarray(scores, dtype=np.float64)
    uncertainty = np.asarray(uncertainty, dtype=np.float64)
    labels = np.where(scores > 0.5, PATHOGENIC, BENIGN).astype(object)
    out = {}
    for percent in percentiles:
        cutoff = np.quantile(uncertainty, percent / 100.0)
        out[class_column(percent)] = np.where(uncertainty > cutoff, UNCERTAIN, labels)
    return out


def _check_settings(protein_weight: float, percentiles: Sequence[float]) -> None:
    if not 0.0 <= protein_weight <= 1.0:
        raise VAEInputError("protein_weight", f"must be in [0, 1], not {protein_weight}")
    if not percentiles:
        raise VAEInputError("percentiles", "give at least one percentage to retain")
    wrong = [p for p in percentiles if not 0 < p <= 100]
    if wrong:
        raise VAEInputError("percentiles", f"must be in (0, 100], not {wrong}")


def _column(table: pd.DataFrame, column: str, source: str) -> np.ndarray:
    if column not in table:
        raise VAEInputError(source, f"variant score table lacks column {column!r}")
    return _checked(table[column], source)


def eve_scores(
    evol_indices: pd.DataFrame | Mapping[str, pd.DataFrame],
    *,
    protein_weight: float = PROTEIN_GMM_WEIGHT,
    percentiles: Sequence[float] = PERCENTILES,
    seed: int = 0,
    n_init: int = 30,
    column: str = "evol_index",
    source: str | None = None,
) -> pd.DataFrame | dict[str, pd.DataFrame]:
    """Add EVE's score, uncertainty and classes to variant score tables.

    One table (one protein): one mixture on its evol indices, ``eve_score`` its
    pathogenic posterior. Several tables (a mapping protein name to table, e.g. the
    ``variant_scores.csv`` of several proteins): a global mixture on all evol indices
    and one per protein started from it, ``eve_score = protein_weight * p_protein +
    (1 - protein_weight) * p_global`` (EVE). The class cut-offs are pooled over all
    variants of all tables, as EVE's.

    Parameters
    ----------
    evol_indices
        A table with ``column``, or a mapping protein name to such tables.
    protein_weight
        Weight of the per-protein mixture (EVE: 0.3); 0 scores with the global mixture
        only. Unused with one table.
    percentiles
        Percentages of the most certain variants to classify, one class column each.
    seed
        ``random_state`` of the mixtures: same inputs and seed, same output.
    n_init
        Initialisations of the (global) mixture (EVE: 30).
    column
        Column holding the evol index (higher = more damaging).
    source
        Named in error messages for one table (e.g. its path); a mapping's keys are used
        for its tables.

    Returns
    -------
    pandas.DataFrame or dict
        Copies of the tables, rows and order kept, with ``eve_score``, ``uncertainty``
        and one :func:`class_column` per percentage; a dict with the same keys for a
        mapping.

    Raises
    ------
    VAEInputError
        A missing column, non-finite evol indices (their count is given), fewer than
        :data:`MIN_VARIANTS` per table, or settings out of range.
    """
    _check_settings(protein_weight, percentiles)
    single = isinstance(evol_indices, pd.DataFrame)
    tables = {source or column: evol_indices} if single else dict(evol_indices)
    if not tables:
        raise VAEInputError("evol_indices", "no variant score tables given")
    values = {name: _column(table, column, str(name)) for name, table in tables.items()}
    pooled = np.concatenate(list(values.values()))
    main = fit_eve_mixture(pooled, seed=seed, n_init=n_init, source="all proteins")
    scores = {}
    for name, x in values.items():
        score = main.pathogenic_probability(x)
        if not single and protein_weight > 0:
            local = fit_eve_mixture(x, seed=seed, init=main, source=str(name))
            score = (
                protein_weight * local.pathogenic_probability(x) + (1.0 - protein_weight) * score
            )
        scores[name] = score
    all_scores = np.concatenate(list(scores.values()))
    all_uncertainty = predictive_entropy(all_scores)
    all_classes = eve_classes(all_scores, all_uncertainty, percentiles)
    out, start = {}, 0
    for name, table in tables.items():
        stop = start + len(table)
        scored = table.copy()
        scored["eve_score"] = scores[name]
        scored["uncertainty"] = all_uncertainty[start:stop]
        for name_p, classes in all_classes.items():
            scored[name_p] = classes[start:stop]
        out[name] = scored
        start = stop
    return next(iter(out.values())) if single else out
