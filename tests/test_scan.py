"""Deep mutational scans: mutant names, scan tables, scan evaluation, learning curves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _tiny import TINY, train_tiny_protein
from scipy.stats import spearmanr

from vae import steps
from vae._io import read_h5ad
from vae.data import read_scan
from vae.data._mutants import encode_variants, parse_mutant, single_mutants
from vae.errors import VAEInputError
from vae.model import SequenceModel, SiteIndependentModel, load_model
from vae.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".test" / "data"


# --------------------------------------------------------------------------- mutant names
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("K3E", [("K", 3, "E")]),
        ("A110D:N146D", [("A", 110, "D"), ("N", 146, "D")]),
        ("A110D/N146D/I188V", [("A", 110, "D"), ("N", 146, "D"), ("I", 188, "V")]),
        ("A110D,N146D", [("A", 110, "D"), ("N", 146, "D")]),
    ],
)
def test_parse_mutant(name, expected) -> None:
    assert parse_mutant(name) == expected


@pytest.mark.parametrize("name", ["K3", "3E", "K3*", "KE", "K3E:", "B3E", "K3E:K3A", ""])
def test_parse_mutant_rejects(name) -> None:
    with pytest.raises(ValueError, match="mutant"):
        parse_mutant(name)


def test_encode_variants_counts_every_variant() -> None:
    positions, residues = [10, 11, 13], "ACD"
    encoded = encode_variants(
        ["A10C", "C11A:D13E", "A12C", "C11W", "D13A", "A10G"], positions, residues, source="x.csv"
    )
    # C11W: wild type at 11 is C -> fine; A12C: 12 is not a kept column
    assert encoded.names == ["A10C", "C11A:D13E", "C11W", "D13A", "A10G"]
    assert encoded.n_mutations == [1, 2, 1, 1, 1]
    assert encoded.skipped == {"outside_columns": ["A12C"], "wt_mismatch": []}
    assert encoded.counts() == {
        "n_scored": 5,
        "n_skipped_outside_columns": 1,
        "n_skipped_wt_mismatch": 0,
    }
    # indices in the alphabet ACDEFGHIKLMNPQRSTVWY-
    assert encoded.codes[1].tolist() == [0, 0, 3]


def test_encode_variants_mismatched_wild_type() -> None:
    positions, residues = [1, 2, 3, 4], "ACDE"
    few = encode_variants(["A1C", "W2A", "D3A"], positions, residues, source="x.csv")
    assert few.skipped["wt_mismatch"] == ["W2A"]
    with pytest.raises(VAEInputError, match=r"x.csv: 2 of 3 .*first: W2A.*numbering"):
        encode_variants(["W2A", "W3A", "E4A"], positions, residues, source="x.csv")


def test_single_mutants_one_generator_for_both_scorers() -> None:
    names = [name for name, *_ in single_mutants([5, 6], "AW")]
    assert len(names) == 38
    assert names[0] == "A5C"
    assert "W6A" in names
    assert "A5A" not in names


# --------------------------------------------------------------------------- scan tables
def test_read_scan_orients_and_counts(tmp_path) -> None:
    path = tmp_path / "scan.csv"
    path.write_text("mutant,score,other\nK3E,1.5,x\nK3A,,y\nK3W,0.5,z\n")
    table, missing = read_scan(path)
    assert table["mutant"].tolist() == ["K3E", "K3W"]
    assert missing == 1
    lower, _ = read_scan(path, higher_is_fitter=False)
    assert lower["fitness"].tolist() == [-1.5, -0.5]


def test_read_scan_semicolons_and_variant_column(tmp_path) -> None:
    path = tmp_path / "all.csv"
    path.write_text("variant;fitness\nA110D/N146D;3.1\nK3E;2.0\n")
    table, _ = read_scan(path, score_column="fitness")
    assert table["mutant"].tolist() == ["A110D/N146D", "K3E"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name,score\nK3E,1\n", "variant table needs a 'mutant' column"),
        ("mutant,fitness\nK3E,1\n", "scan has no score column 'score'"),
        ("mutant,score\nK3E,high\n", "score 'high' of K3E is not a number"),
        ("mutant,score\nK3E,1\nK3E,2\n", "mutant K3E appears more than once"),
        ("mutant,score\nK3E,\n", "scan has no variant with a score"),
        ("", "file is empty"),
        ("mutant,score\nK3E,1\nK3A,1,2,3\n", "not a readable CSV"),
    ],
)
def test_read_scan_bad_files(tmp_path, text, problem) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(VAEInputError, match=re.escape(problem)) as err:
        read_scan(path)
    assert str(err.value).startswith(str(path))


# --------------------------------------------------------------------------- models
@pytest.fixture(scope="module")
def fam(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scan")
    model = train_tiny_protein(DATA / "tinyfam.a2m", root, "fam")
    return {"model": model, "data": root / "fam.h5ad", "root": root}


def test_site_independent_model_scores(fam) -> None:
    adata = read_h5ad(fam["data"])
    model = load_model(fam["model"])
    codes = np.asarray(adata.X)
    site = SiteIndependentModel(model.info["positions"], model.info["focus_residues"])
    site.fit(codes, adata.obs["weight"].to_numpy())
    singles = site.score_single_mutants()
    assert list(singles.columns) == ["mutant", "position", "wt", "mt", "evol_index"]
    encoded = encode_variants(
        list(singles["mutant"])[:50],
        model.info["positions"],
        model.info["focus_residues"],
        source="t",
    )
    assert np.allclose(site.score_variants(encoded.codes), singles["evol_index"][:50])
    by_hand = sum(site.log_freq[i, c] for i, c in enumerate(codes[3]))
    assert np.isclose(site.log_likelihood(codes[3:4])[0], by_hand)


def test_single_and_listed_variants_score_alike(fam) -> None:
    model = load_model(fam["model"])
    table = model.score_single_mutants(n_samples=3, seed=0)
    picked = table.sample(25, random_state=0)
    encoded = encode_variants(
        list(picked["mutant"]), model.info["positions"], model.info["focus_residues"], source="t"
    )
    listed = model.score_variants(encoded.codes, n_samples=3, seed=0)
    assert np.allclose(listed, picked["evol_index"], atol=1e-4)


def test_evidence_is_at_least_the_elbo(fam) -> None:
    model = load_model(fam["model"])
    adata = read_h5ad(fam["data"])[:30]
    evidence, elbo = model.log_evidence(adata, n_samples=30, seed=1)
    # log mean exp >= mean log over the same draws (Jensen), sequence by sequence
    assert (evidence >= elbo - 1e-9).all()
    assert evidence.mean() > elbo.mean()
    # one draw: the bound is that draw's ELBO
    single, same = model.log_evidence(adata, n_samples=1, seed=1)
    assert np.allclose(single, same)
    again, _ = model.log_evidence(adata, n_samples=30, seed=1)
    assert np.array_equal(again, evidence)
    codes = np.asarray(adata.X)
    elbo_draws = model.log_likelihood(codes, n_samples=30, seed=1)
    evidence_draws = model.log_likelihood(codes, n_samples=30, seed=1, estimator="evidence")
    assert evidence_draws.mean() > elbo_draws.mean()
    with pytest.raises(ValueError, match="estimator"):
        model.log_likelihood(codes, estimator="iwae")


def test_site_offset_starts_at_the_site_independent_model(fam) -> None:
    adata = read_h5ad(fam["data"])
    model = SequenceModel.from_anndata(
        adata, n_latent=3, encoder_hidden=[16], decoder_hidden=[16], site_offset=True
    )
    train = torch.arange(adata.n_obs)
    model.initialise_from_data(adata, train)
    decoder = model.module.decoder
    with torch.no_grad():  # silence the network: only the offset is left
        decoder.out_weight.mean.zero_()
        decoder.out_bias.mean.zero_()
    site = SiteIndependentModel(model.info["positions"], model.info["focus_residues"]).fit(
        np.asarray(adata.X), adata.obs["weight"].to_numpy()
    )
    log_px = model.module.generative(torch.zeros(1, 3), sample=False)["log_probs"][0]
    assert torch.allclose(log_px.double(), torch.as_tensor(site.log_freq), atol=1e-5)
    plain = SequenceModel.from_anndata(adata, n_latent=3, encoder_hidden=[16], decoder_hidden=[16])
    assert "decoder.site_offset" not in plain.module.state_dict()  # old model files still load


def test_monitor_adds_columns_without_changing_training(fam) -> None:
    adata = read_h5ad(fam["data"])
    kwargs = {"n_latent": 3, "encoder_hidden": [16], "decoder_hidden": [16]}
    config = TrainConfig(**TINY)
    calls = []

    def monitor() -> dict[str, float]:
        calls.append(1)
        torch.randn(100)  # a monitor that draws must not move the training stream
        return {"monitor_x": 1.0}

    plain = SequenceModel.from_anndata(adata, **kwargs)
    first = plain.train(adata, config)
    watched = SequenceModel.from_anndata(adata, **kwargs)
    second = watched.train(adata, config, monitor=monitor)
    assert len(calls) == len(second.history) == 2
    assert (second.history["monitor_x"] == 1.0).all()
    pd.testing.assert_frame_equal(first.history, second.history.drop(columns="monitor_x"))


def test_evaluate_protein_with_scan(fam, tmp_path) -> None:
    scores = tmp_path / "variant_scores.csv"
    steps.score_variants(fam["model"], scores, n_samples=3, device="cpu")
    settings = {"n_samples": 3, "seed": 0}
    metrics = steps.evaluate_protein(
        fam["model"],
        fam["data"],
        scores,
        tmp_path / "metrics.json",
        scan=DATA / "tinyfam_dms.csv",
        scan_scores=tmp_path / "dms_scores.csv",
        score_settings=settings,
        evidence_samples=10,
    )
    table = pd.read_csv(tmp_path / "dms_scores.csv")
    scan = pd.read_csv(DATA / "tinyfam_dms.csv")
    skipped = metrics["dms_n_skipped_outside_columns"] + metrics["dms_n_skipped_wt_mismatch"]
    assert metrics["dms_n_scored"] + skipped == metrics["dms_n_variants"] == len(scan)
    assert metrics["dms_n_skipped_outside_columns"] >= 1  # L400A is past the focus
    assert metrics["dms_n_scored"] == len(table)
    rho = spearmanr(-table["evol_index"], table["fitness"]).statistic
    assert np.isclose(metrics["dms_spearman"], rho)
    site = spearmanr(-table["site_independent"], table["fitness"]).statistic
    assert np.isclose(metrics["site_independent_dms_spearman"], site)
    assert metrics["dms_multiples_n"] == (table["n_mutations"] > 1).sum() == 2
    # singles agree with the scoring step's table (same draws)
    singles = table[table["n_mutations"] == 1].merge(pd.read_csv(scores), on="mutant")
    assert np.allclose(singles["evol_index_x"], singles["evol_index_y"], atol=1e-4)
    assert (
        metrics["heldout_log_evidence_per_sequence"] > metrics["heldout_elbo_sampled_per_sequence"]
    )
    json.loads((tmp_path / "metrics.json").read_text())  # strict JSON: no NaN


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("mutant,fitness\nR9W,1\n", "scan has no score column 'score'"),
        ("mutant,score\nR9W,1\nR9*,2\n", "cannot parse mutant 'R9*'"),
        ("mutant,score\nW9R,1\nW10R,2\nR9A,3\n", "2 of 3 variants in the kept columns"),
    ],
)
def test_evaluate_protein_bad_scan_keeps_earlier_result(fam, tmp_path, text, problem) -> None:
    scores = tmp_path / "variant_scores.csv"
    steps.score_variants(fam["model"], scores, n_samples=1, device="cpu")
    scan = tmp_path / "scan.csv"
    scan.write_text(text)
    metrics = tmp_path / "metrics.json"
    metrics.write_text("earlier")
    with pytest.raises(VAEInputError, match=re.escape(problem)) as err:
        steps.evaluate_protein(
            fam["model"], fam["data"], scores, metrics, scan=scan, evidence_samples=2
        )
    assert str(err.value).startswith(str(scan))
    assert metrics.read_text() == "earlier"


def test_train_records_the_learning_curve(fam, tmp_path) -> None:
    steps.train_model(
        fam["data"],
        tmp_path / "model",
        tmp_path / "history.tsv",
        domain="protein",
        model_kwargs={"n_latent": 3, "encoder_hidden": [16], "decoder_hidden": [16]},
        train_kwargs=TINY | {"monitor_draws": 2},
        device="cpu",
        scan=DATA / "tinyfam_dms.csv",
        labels=DATA / "tinyfam_labels.csv",
        protein="tinyfam",
    )
    history = pd.read_csv(tmp_path / "history.tsv", sep="\t")
    assert history["monitor_dms_spearman"].between(-1, 1).all()
    assert history["monitor_roc_auc"].between(0, 1).all()


# --------------------------------------------------------------------------- vae score
def _run_vae(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from vae.cli import main

    capsys.readouterr()
    monkeypatch.setattr("sys.argv", ["vae", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_vae_score_ensemble_of_any_variants(fam, tmp_path, monkeypatch, capsys) -> None:
    second = tmp_path / "second"
    steps.train_model(
        fam["data"],
        second,
        tmp_path / "history.tsv",
        domain="protein",
        model_kwargs={"n_latent": 3, "encoder_hidden": [16], "decoder_hidden": [16]},
        train_kwargs=TINY | {"seed": 1},
        device="cpu",
    )
    out = tmp_path / "scores.csv"
    code, stdout, _ = _run_vae(
        monkeypatch,
        capsys,
        "score",
        fam["model"],
        second,
        DATA / "tinyfam_dms.csv",
        out,
        "--n-samples",
        "3",
        "--chunk-size",
        "7",
    )
    assert code == 0
    table = pd.read_csv(out)
    scan = pd.read_csv(DATA / "tinyfam_dms.csv")
    assert table["mutant"].tolist() == scan["mutant"].tolist()  # every row, in order
    assert json.loads(stdout) == table["status"].value_counts().to_dict()
    scored = table[table["status"] == "scored"]
    assert table.loc[table["mutant"] == "L400A", "status"].item() == "outside_columns"
    assert scored["evol_index"].notna().all()
    assert table.loc[table["status"] != "scored", "evol_index"].isna().all()
    assert np.allclose(
        scored[["evol_index_seed0", "evol_index_seed1"]].mean(1), scored["evol_index"]
    )
    # each member scores as it does alone (chunks do not change the draws)
    alone = tmp_path / "alone.csv"
    steps.score_variant_table([fam["model"]], DATA / "tinyfam_dms.csv", alone, n_samples=3)
    single = pd.read_csv(alone).set_index("mutant").loc[scored["mutant"], "evol_index"]
    assert np.allclose(single.to_numpy(), scored["evol_index_seed0"], atol=1e-4)
    assert "evol_index_sd" not in pd.read_csv(alone)


def test_vae_score_bad_input(fam, tmp_path, monkeypatch, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("mutant\nR9W\nR9@\n")
    out = tmp_path / "scores.csv"
    out.write_text("earlier")
    code, _, stderr = _run_vae(monkeypatch, capsys, "score", fam["model"], bad, out)
    assert code == 2
    assert (
        stderr.strip()
        == f"error: {bad}: cannot parse mutant 'R9@' (expected e.g. A110D or A110D:N146D)"
    )
    assert out.read_text() == "earlier"
    code, _, stderr = _run_vae(monkeypatch, capsys, "score", bad, out)
    assert code != 0
    assert "give one or more model folders" in stderr
