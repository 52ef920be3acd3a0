"""A training job killed with SIGKILL resumes from its checkpoint and ends as if uninterrupted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
TARGET = "results/protein/tinyfam/model"
CHECKPOINT = "resources/checkpoints/protein/tinyfam.ckpt"

pytestmark = pytest.mark.workflow


def _workdir(root: Path) -> Path:
    shutil.copytree(REPO / ".test" / "config", root / "config")
    shutil.copytree(REPO / ".test" / "data", root / "data")
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["model"]["protein"] |= {"encoder_hidden": [256], "decoder_hidden": [256]}
    config["train"]["protein"] |= {"max_steps": 1500, "eval_every": 50, "checkpoint_every": 50}
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def _snakemake(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        "--cores",
        "1",
        *args,
        TARGET,
    ]


def _weights(workdir: Path) -> dict[str, torch.Tensor]:
    return torch.load(workdir / TARGET / "model.pt", weights_only=False)["state_dict"]


def test_killed_training_resumes_to_the_same_model(tmp_path: Path) -> None:
    reference = _workdir(tmp_path / "reference")
    done = subprocess.run(_snakemake(reference), capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    work = _workdir(tmp_path / "interrupted")
    job = subprocess.Popen(
        _snakemake(work), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    checkpoint = work / CHECKPOINT
    deadline = time.monotonic() + 300
    while not checkpoint.exists() and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    assert checkpoint.exists(), "training finished or failed before writing a checkpoint"
    os.killpg(job.pid, signal.SIGKILL)  # the whole job: snakemake and its script
    job.wait()
    assert not (work / TARGET / "model.pt").exists()

    # a killed snakemake leaves its lock behind: the documented recovery is --unlock, then rerun
    unlock = subprocess.run(_snakemake(work, "--unlock"), capture_output=True, check=False)
    assert unlock.returncode == 0
    resumed = subprocess.run(
        _snakemake(work, "--rerun-incomplete"), capture_output=True, text=True, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (work / "logs/train_model/protein/tinyfam.log").read_text()
    assert "resumed from" in log
    assert not checkpoint.exists()  # removed once the model is saved
    expected, actual = _weights(reference), _weights(work)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name
    history = (work / "results/protein/tinyfam/history.tsv").read_text()
    assert history == (reference / "results/protein/tinyfam/history.tsv").read_text()
