"""EVE's mixture scores, uncertainty and classes; their metrics and figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.mixture import GaussianMixture

from vae.errors import VAEInputError
from vae.metrics import eve_metrics
from vae.model import eve_classes, eve_scores, fit_eve_mixture
from vae.model._eve_mixture import predictive_entropy
from vae.plotting import plot_eve_mixture

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _table(n: int = 600, seed: int = 0, shift: float = 0.0) -> pd.DataFrame:
    """Benign N(0, 1) (60 %) and pathogenic N(5, 1) (40 %) evol indices, shuffled."""
    rng = np.random.default_rng(seed)
    n_path = int(0.4 * n)
    x = np.concatenate([rng.normal(0, 1, n - n_path), rng.normal(5, 1, n_path)]) + shift
    label = np.r_[np.zeros(n - n_path, int), np.ones(n_path, int)]
    order = rng.permutation(n)
    return pd.DataFrame(
        {"mutant": [f"A{i + 1}C" for i in range(n)], "evol_index": x[order], "truth": label[order]}
    )


def test_pathogenic_component_has_higher_mean_and_matches_sklearn():
    table = _table()
    mixture = fit_eve_mixture(table["evol_index"], seed=0)
    means = np.asarray(mixture.means)
    assert mixture.pathogenic == int(np.argmax(means))
    assert means[mixture.pathogenic] == pytest.approx(5, abs=0.3)
    assert means[1 - mixture.pathogenic] == pytest.approx(0, abs=0.3)
    assert mixture.weights[mixture.pathogenic] == pytest.approx(0.4, abs=0.05)
    assert mixture.to_dict()["mean_pathogenic"] == max(mixture.means)
    reference = GaussianMixture(
        2, covariance_type="full", max_iter=1000, n_init=30, tol=1e-4, random_state=0
    ).fit(table[["evol_index"]].to_numpy())
    expected = reference.predict_proba(table[["evol_index"]].to_numpy())[
        :, np.argmax(reference.means_.ravel())
    ]
    np.testing.assert_allclose(mixture.pathogenic_probability(table["evol_index"]), expected)


def test_scores_monotone_rows_kept_and_classes():
    table = _table()
    scored = eve_scores(table, seed=0)
    assert list(scored.columns) == [
        *table.columns,
        "eve_score",
        "uncertainty",
        "eve_class_75pct",
        "eve_class_100pct",
    ]
    pd.testing.assert_frame_equal(scored[table.columns], table)
    ordered = scored.sort_values("evol_index")
    assert (np.diff(ordered["eve_score"]) >= -1e-12).all()
    assert ((scored["eve_score"] > 0.5) == (scored["truth"] == 1)).mean() > 0.97

    full = scored["eve_class_100pct"]
    assert set(full) == {"Pathogenic", "Benign"}
    assert ((full == "Pathogenic") == (scored["eve_score"] > 0.5)).all()
    partial = scored["eve_class_75pct"]
    uncertain = partial == "Uncertain"
    assert uncertain.mean() == pytest.approx(0.25, abs=1 / len(table))
    assert (partial[~uncertain] == full[~uncertain]).all()
    assert scored["uncertainty"][uncertain].min() > scored["uncertainty"][~uncertain].max()


def test_uncertainty_is_eve_entropy_and_cutoffs_match_eve_qcut():
    assert predictive_entropy(np.array([0.5]))[0] == pytest.approx(np.log(2))
    p = np.array([0.0, 1.0, 0.2])
    eps = np.array([1e-8, 1 - 1e-8, 0.2])
    np.testing.assert_allclose(
        predictive_entropy(p), -(eps * np.log(eps) + (1 - eps) * np.log(1 - eps))
    )
    # EVE's recomputed thresholds: the largest uncertainty of each pd.qcut quartile
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=401)
    uncertainty = predictive_entropy(scores)
    quartile = pd.qcut(uncertainty, q=4, labels=range(1, 5)).astype(int)
    base = np.where(scores > 0.5, "Pathogenic", "Benign")
    ours = eve_classes(scores, uncertainty, (25, 75, 100))
    for q, percent in ((1, 25), (3, 75), (4, 100)):
        cutoff = uncertainty[quartile == q].max()
        expected = np.where(uncertainty > cutoff, "Uncertain", base)
        assert (ours[f"eve_class_{percent}pct"] == expected).all()


def test_global_and_per_protein_combination():
    tables = {"A": _table(400, seed=2), "B": _table(300, seed=3, shift=1.5)}
    scored = eve_scores(tables, protein_weight=0.3, seed=0)
    assert list(scored) == ["A", "B"]
    pooled = np.concatenate([t["evol_index"] for t in tables.values()])
    main = fit_eve_mixture(pooled, seed=0)
    for name, table in tables.items():
        local = fit_eve_mixture(table["evol_index"], seed=0, init=main)
        expected = 0.3 * local.pathogenic_probability(table["evol_index"]) + 0.7 * (
            main.pathogenic_probability(table["evol_index"])
        )
        np.testing.assert_allclose(scored[name]["eve_score"], expected)
        assert list(scored[name]["mutant"]) == list(table["mutant"])
    # the class cut-offs are pooled over both proteins
    classes = pd.concat([s["eve_class_75pct"] for s in scored.values()])
    assert (classes == "Uncertain").mean() == pytest.approx(0.25, abs=1 / len(classes))
    global_only = eve_scores(tables, protein_weight=0.0, seed=0)
    np.testing.assert_allclose(
        global_only["B"]["eve_score"], main.pathogenic_probability(tables["B"]["evol_index"])
    )


def test_deterministic_for_a_seed():
    table = _table(seed=4)
    first = eve_scores(table, seed=7, percentiles=(50, 87.5, 100))
    pd.testing.assert_frame_equal(first, eve_scores(table, seed=7, percentiles=(50, 87.5, 100)))
    assert "eve_class_87.5pct" in first


@pytest.mark.parametrize(
    ("table", "settings", "message"),
    [
        (
            pd.DataFrame({"evol_index": np.r_[np.arange(48.0), np.nan, np.inf]}),
            {},
            "evol_index: 2 of 50 evol indices are NaN or infinite",
        ),
        (pd.DataFrame({"evol_index": np.arange(9.0)}), {}, "9 evol indices; a mixture needs"),
        (pd.DataFrame({"evol_index": np.ones(20)}), {}, "all 20 evol indices are equal"),
        (pd.DataFrame({"score": np.arange(20.0)}), {}, "lacks column 'evol_index'"),
        (_table(), {"percentiles": (0, 75)}, "percentiles: must be in (0, 100]"),
        (_table(), {"protein_weight": 1.5}, "protein_weight: must be in [0, 1]"),
    ],
)
def test_bad_input_messages(table, settings, message):
    with pytest.raises(VAEInputError) as err:
        eve_scores(table, **settings)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_table_among_several_is_named():
    tables = {"good": _table(), "short": _table().head(5)}
    with pytest.raises(VAEInputError, match="^short: 5 evol indices"):
        eve_scores(tables)


def test_eve_metrics():
    scored = eve_scores(_table(), seed=0)
    labels = scored[["mutant", "truth"]].rename(columns={"truth": "label"}).iloc[::3]
    metrics = eve_metrics(scored, labels)
    assert metrics["eve_n_labelled_scored"] == len(labels)
    assert metrics["eve_roc_auc"] > 0.97
    assert metrics["eve_coverage_100pct"] == 1.0
    assert metrics["eve_coverage_75pct"] == pytest.approx(0.75, abs=0.06)
    assert metrics["eve_accuracy_75pct"] >= metrics["eve_accuracy_100pct"] > 0.95
    merged = scored.merge(labels, on="mutant")
    kept = merged[merged["eve_class_75pct"] != "Uncertain"]
    assert metrics["eve_n_classified_75pct"] == len(kept)
    one_class = eve_metrics(scored, labels[labels["label"] == 1])
    assert "eve_roc_auc" not in one_class
    assert "eve_accuracy_75pct" in one_class


def test_plot_eve_mixture_writes_png(tmp_path):
    table = eve_scores(_table(300), seed=0, n_init=5)
    scores = tmp_path / "variant_scores.csv"
    table.drop(columns="truth").to_csv(scores, index=False)
    labels = tmp_path / "labels.csv"
    pd.DataFrame(
        {"mutations": table["mutant"][::4], "ClinVar_labels": table["truth"][::4]}
    ).to_csv(labels, index=False)
    plain, labelled = tmp_path / "plain.png", tmp_path / "labelled.png"
    plot_eve_mixture(scores, plain, n_init=5)
    plot_eve_mixture(scores, labelled, labels=labels, n_init=5)
    for png in (plain, labelled):
        assert png.read_bytes().startswith(PNG_MAGIC)
    again = tmp_path / "again.png"
    plot_eve_mixture(scores, again, labels=labels, n_init=5)
    assert again.read_bytes() == labelled.read_bytes()
