"""Seed ensembles: members trained as separate jobs, scores averaged, metrics per member."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _tiny import TINY

from vae import steps

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".test" / "data"
MODEL = {"n_latent": 3, "encoder_hidden": [16], "decoder_hidden": [16]}


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("ensemble")
    data = root / "fam.h5ad"
    steps.preprocess_protein(DATA / "tinyfam.a2m", data, device="cpu")
    models = []
    for seed in (0, 1):
        steps.train_model(
            data,
            root / f"seed{seed}",
            root / f"history{seed}.tsv",
            domain="protein",
            model_kwargs=MODEL,
            train_kwargs=TINY | {"seed": seed},
            device="cpu",
        )
        models.append(root / f"seed{seed}")
    return {"data": data, "models": models, "root": root}


def test_ensemble_scores_are_the_members_mean(members, tmp_path) -> None:
    both, alone = tmp_path / "both.csv", tmp_path / "alone.csv"
    steps.score_variants(members["models"], both, n_samples=2, device="cpu")
    steps.score_variants(members["models"][1], alone, n_samples=2, device="cpu")
    table, single = pd.read_csv(both), pd.read_csv(alone)
    members_mean = table[["evol_index_seed0", "evol_index_seed1"]].mean(1)
    np.testing.assert_allclose(table["evol_index"], members_mean, atol=1e-5)
    np.testing.assert_allclose(table["evol_index_seed1"], single["evol_index"], atol=1e-5)
    assert (table["evol_index_sd"] > 0).any()
    assert {"eve_score", "uncertainty", "eve_class_75pct", "eve_class_100pct"} <= set(table)
    assert "evol_index_sd" not in single
    assert set(table["eve_class_100pct"]) <= {"Benign", "Pathogenic"}
    assert (table["eve_class_75pct"] == "Uncertain").mean() == pytest.approx(0.25, abs=0.01)


def test_ensemble_metrics_report_every_member(members, tmp_path) -> None:
    scores = tmp_path / "scores.csv"
    steps.score_variants(members["models"], scores, n_samples=2, device="cpu")
    metrics = steps.evaluate_protein(
        members["models"],
        members["data"],
        scores,
        tmp_path / "metrics.json",
        labels=DATA / "tinyfam_labels.csv",
        protein="tinyfam",
        scan=DATA / "tinyfam_dms.csv",
        score_settings={"n_samples": 2},
        evidence_samples=2,
    )
    assert [m["seed"] for m in metrics["members"]] == [0, 1]
    rhos = [m["dms_spearman"] for m in metrics["members"]]
    assert rhos == metrics["dms_member_spearman"]
    assert all(-1 <= r <= 1 for r in rhos)
    assert all(0 <= m["roc_auc"] <= 1 for m in metrics["members"])
    assert 0 <= metrics["eve_roc_auc"] <= 1


def test_models_of_other_columns_are_no_ensemble(members, tmp_path) -> None:
    other = tmp_path / "other"
    steps.preprocess_protein(
        DATA / "tinyfam.a2m", tmp_path / "o.h5ad", device="cpu", max_col_gap_frac=0.9
    )
    steps.train_model(
        tmp_path / "o.h5ad",
        other,
        tmp_path / "h.tsv",
        domain="protein",
        model_kwargs=MODEL,
        train_kwargs=TINY,
        device="cpu",
    )
    with pytest.raises(Exception, match="another alignment"):
        steps.score_variants([members["models"][0], other], tmp_path / "x.csv", n_samples=1)


@pytest.mark.workflow
def test_workflow_fans_an_ensemble_out_into_one_job_per_seed(tmp_path) -> None:
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump({"tinyfam": {"train": {"ensemble": 3}}}))
    run = _dry_run(
        REPO / ".test",
        "results/protein/tinyfam/metrics.json",
        "--configfile",
        str(REPO / ".test" / "config" / "config.yaml"),
        "--config",
        f"overrides={overrides}",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout + run.stderr
    for seed in (1, 2):
        assert f"results/protein/tinyfam/ensemble/seed{seed}/model" in out
    assert "ensemble/seed0" not in out  # seed 0 is the main model
    assert "train_member" in out
    assert "train_model" in out


def test_global_and_per_protein_mixture_over_two_proteins(members, tmp_path) -> None:
    """EVE's global + per-protein mixture rewrites each protein's EVE columns."""
    scores = {}
    for name, model in zip(("famA", "famB"), members["models"], strict=True):
        scores[name] = tmp_path / f"{name}.csv"
        steps.score_variants(model, scores[name], n_samples=2, device="cpu")
    outputs = {name: tmp_path / f"{name}_global.csv" for name in scores}
    steps.score_eve_global(scores, outputs, protein_weight=0.3, seed=0)
    for name in scores:
        alone, combined = pd.read_csv(scores[name]), pd.read_csv(outputs[name])
        assert combined["mutant"].tolist() == alone["mutant"].tolist()
        np.testing.assert_array_equal(combined["evol_index"], alone["evol_index"])
        assert not np.allclose(combined["eve_score"], alone["eve_score"])
    pooled = pd.concat([pd.read_csv(p) for p in outputs.values()])
    assert (pooled["eve_class_75pct"] == "Uncertain").mean() == pytest.approx(0.25, abs=0.01)
    with pytest.raises(Exception, match="two or more protein datasets"):
        steps.score_eve_global({"famA": scores["famA"]}, {"famA": outputs["famA"]})


@pytest.mark.workflow
def test_workflow_gathers_every_protein_for_the_global_mixture(tmp_path) -> None:
    work = tmp_path / "work"
    shutil.copytree(REPO / ".test", work)
    sheet = work / "config" / "datasets.tsv"
    rows = sheet.read_text().splitlines()
    second = next(r for r in rows if r.startswith("tinyfam\t")).replace(
        "tinyfam\t", "tinyfam2\t", 1
    )
    sheet.write_text("\n".join([*rows, second]) + "\n")
    extra = tmp_path / "eve.yaml"
    extra.write_text(yaml.safe_dump({"score": {"eve_global_weight": 0.3}}))
    run = _dry_run(work, "--configfile", str(work / "config" / "config.yaml"), str(extra))
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout + run.stderr
    assert "score_eve_global" in out
    for name in ("tinyfam", "tinyfam2"):
        assert f"results/protein/{name}/eve_global.csv" in out
    one = _dry_run(work, "--configfile", str(work / "config" / "config.yaml"))
    assert "score_eve_global" not in one.stdout + one.stderr


def _dry_run(work: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(REPO / "workflow" / "Snakefile"),
            "--directory",
            str(work),
            *args,
            "--dry-run",
            "--cores",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=work,
        check=False,
        timeout=300,
    )
