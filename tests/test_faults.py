"""Injected faults: diverging training, gradient clipping, two trainings at once, dying writers."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch
import yaml
from schema_check import schema_problem
from torch.optim.optimizer import register_optimizer_step_pre_hook

import vae.steps.train
from vae import steps
from vae._io import atomic_path, sha256_file, write_h5ad_atomic, write_text_atomic
from vae._script import run_logged
from vae.errors import VAEInputError
from vae.model import load_model

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".test" / "data"
MODEL = {"n_latent": 3, "n_hidden": 16}
TINY = {"max_steps": 20, "batch_size": 32, "eval_every": 10, "checkpoint_every": 0}
SENTINEL = b"an earlier result that a failed run must leave alone\n"
DIVERGED = (
    r"training diverged: (ELBO|reconstruction|KL) term is \S+ at step \d+; "
    r"lower the learning rate or set grad_clip"
)

# Each process trains after both have started (file barrier), so the two runs overlap.
PARALLEL_TRAIN = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import torch
    from vae import steps
    torch.set_num_threads(1)
    data, model, history, checkpoint, barrier, me = sys.argv[1:7]
    Path(barrier, me).touch()
    while len(list(Path(barrier).iterdir())) < 2:
        time.sleep(0.05)
    steps.train_model(
        data, model, history, domain="expression", model_kwargs={"n_latent": 3, "n_hidden": 16},
        train_kwargs={"max_steps": 60, "batch_size": 32, "eval_every": 10, "checkpoint_every": 5},
        device="cpu", checkpoint=checkpoint,
    )
    """
)


def _background(*args: str | Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Two preprocessed count sets; starts the two parallel trainings in the background."""
    root = tmp_path_factory.mktemp("faults")
    steps.preprocess_expression(DATA / "tinycells.h5ad", root / "a.h5ad")
    other = ad.read_h5ad(DATA / "tinycells.h5ad")[:100, :30].copy()
    other.var_names = [f"h{i}" for i in range(other.n_vars)]
    other.write_h5ad(root / "b_raw.h5ad")
    steps.preprocess_expression(root / "b_raw.h5ad", root / "b.h5ad")

    parallel = root / "parallel"
    (root / "barrier").mkdir()
    procs = {
        name: _background(
            PARALLEL_TRAIN,
            root / f"{name}.h5ad",
            parallel / f"{name}_model",
            parallel / f"{name}_history.tsv",
            parallel / f"{name}.ckpt",
            root / "barrier",
            name,
        )
        for name in ("a", "b")
    }
    yield {"root": root, "parallel": parallel, "procs": procs}
    for process in procs.values():
        if process.poll() is None:
            process.kill()
            process.wait()


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- non-finite loss
def test_nonfinite_loss_from_poisoned_data_writes_no_model(prepared, tmp_path) -> None:
    poisoned = ad.read_h5ad(prepared["root"] / "a.h5ad")
    dense = poisoned.X.toarray()
    dense[3, 2] = np.nan  # slipped past preprocessing
    poisoned.X = dense
    poisoned.write_h5ad(tmp_path / "poisoned.h5ad")
    out = tmp_path / "out"
    (out / "model").mkdir(parents=True)
    (out / "model" / "manifest.json").write_bytes(SENTINEL)
    before = _snapshot(out)
    with pytest.raises(VAEInputError) as info:
        steps.train_model(
            tmp_path / "poisoned.h5ad",
            out / "model",
            out / "history.tsv",
            domain="expression",
            model_kwargs=MODEL,
            train_kwargs=TINY,
            device="cpu",
            checkpoint=out / "train.ckpt",
        )
    assert re.fullmatch(rf"train\.expression: {DIVERGED}", str(info.value)), str(info.value)
    print(f"observed: {info.value}")
    assert "at step 10" in str(info.value)
    assert _snapshot(out) == before  # no new model, history, staging folder or checkpoint
    assert sorted(p.name for p in out.iterdir()) == ["model"]


def test_nonfinite_loss_in_workflow_rule_is_one_line(prepared, tmp_path, capsys) -> None:
    """What workflow/scripts/train_model.py does (run_logged), with a diverging learning rate."""
    rule = tmp_path
    (rule / "model").mkdir()
    (rule / "model" / "manifest.json").write_bytes(SENTINEL)  # an earlier trained model
    root_logger = logging.getLogger()
    handlers, level = list(root_logger.handlers), root_logger.level
    try:
        with pytest.raises(SystemExit) as exit_info:
            run_logged(
                str(rule / "train.log"),
                steps.train_model,
                prepared["root"] / "a.h5ad",
                rule / "model",
                rule / "history.tsv",
                domain="expression",
                model_kwargs=MODEL,
                train_kwargs=TINY | {"lr": 1000.0},
                device="cpu",
                threads=1,
            )
    finally:  # run_logged points the root logger at the rule's log file; undo that
        for handler in list(root_logger.handlers):
            if handler not in handlers:
                root_logger.removeHandler(handler)
                handler.close()
        for handler in handlers:
            if handler not in root_logger.handlers:
                root_logger.addHandler(handler)
        root_logger.setLevel(level)
    assert exit_info.value.code == 1
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert re.fullmatch(rf"error: train\.expression: {DIVERGED}", lines[0]), stderr
    print(f"observed: {lines[0]}")
    log = (rule / "train.log").read_text()
    assert "Traceback" not in log
    assert re.search(rf"ERROR vae\.steps\.train: train\.expression: {DIVERGED}", log), log
    assert (rule / "model" / "manifest.json").read_bytes() == SENTINEL
    assert sorted(p.name for p in rule.iterdir()) == ["model", "train.log"]
    assert sorted(p.name for p in (rule / "model").iterdir()) == ["manifest.json"]


# --------------------------------------------------------------------------- grad_clip
def test_grad_clip_is_a_config_key_for_both_domains() -> None:
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    for domain in ("protein", "expression"):
        assert "grad_clip" in config["train"][domain]
        config["train"][domain]["grad_clip"] = 0.5
    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert schema_problem(config, schema) is None
    config["train"]["expression"]["grad_clip"] = -1
    assert schema_problem(config, schema).startswith("train.expression.grad_clip:")


def _gradient_norms(prepared, tmp_path: Path, grad_clip: float | None) -> list[float]:
    """Total gradient norm seen by each optimiser step of a tiny training run."""
    norms: list[float] = []

    def record(optimizer, args, kwargs) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads]))))

    handle = register_optimizer_step_pre_hook(record)
    try:
        steps.train_model(
            prepared["root"] / "a.h5ad",
            tmp_path / f"model_{grad_clip}",
            tmp_path / f"history_{grad_clip}.tsv",
            domain="expression",
            model_kwargs=MODEL,
            train_kwargs=TINY | {"grad_clip": grad_clip},
            device="cpu",
        )
    finally:
        handle.remove()
    assert len(norms) == TINY["max_steps"]
    return norms


def test_grad_clip_is_honoured(prepared, tmp_path) -> None:
    clip = 0.05
    unclipped = _gradient_norms(prepared, tmp_path, None)
    assert max(unclipped) > 10 * clip  # the bound below is not met by chance
    clipped = _gradient_norms(prepared, tmp_path, clip)
    assert max(clipped) <= clip * (1 + 1e-4)
    manifest = json.loads((tmp_path / f"model_{clip}" / "manifest.json").read_text())
    assert manifest["config"]["train"]["grad_clip"] == clip


# --------------------------------------------------------------------------- concurrency
def test_two_trainings_at_once_keep_to_their_own_files(prepared) -> None:
    for name in ("a", "b"):
        code, stderr = _finish(prepared["procs"][name])
        assert code == 0, stderr[-3000:]
    parallel = prepared["parallel"]
    # no staging folder, temp file or checkpoint left beside the results
    assert sorted(p.name for p in parallel.iterdir()) == [
        "a_history.tsv",
        "a_model",
        "b_history.tsv",
        "b_model",
    ]
    for name, n_genes in (("a", 40), ("b", 30)):
        data = prepared["root"] / f"{name}.h5ad"
        model_dir = parallel / f"{name}_model"
        manifest = json.loads((model_dir / "manifest.json").read_text())
        assert manifest["inputs"]["data"]["path"] == str(data)
        assert manifest["inputs"]["data"]["sha256"] == sha256_file(data)
        var_names = list(ad.read_h5ad(data).var_names)
        assert len(var_names) == n_genes
        assert json.loads((model_dir / "model.json").read_text())["var_names"] == var_names
        assert load_model(model_dir).var_names == var_names
        history = (parallel / f"{name}_history.tsv").read_text().splitlines()
        assert len(history) == 1 + 6  # header + one row per 10 of 60 steps


# --------------------------------------------------------------------------- atomic writes
def _dying_writer(path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("half of the")
        raise RuntimeError("writer died")


def test_writer_raising_inside_atomic_path_leaves_nothing(tmp_path) -> None:
    with pytest.raises(RuntimeError, match="writer died"):
        _dying_writer(tmp_path / "fresh.txt")
    assert list(tmp_path.iterdir()) == []

    earlier = tmp_path / "earlier.txt"
    earlier.write_bytes(SENTINEL)
    with pytest.raises(RuntimeError, match="writer died"):
        _dying_writer(earlier)
    assert earlier.read_bytes() == SENTINEL
    assert list(tmp_path.iterdir()) == [earlier]


def test_h5ad_writer_dying_midway_keeps_earlier_file(tmp_path, monkeypatch) -> None:
    output = tmp_path / "embedding.h5ad"
    output.write_bytes(SENTINEL)

    def dies_midway(self, filename, **kwargs) -> None:
        Path(filename).write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ad.AnnData, "write_h5ad", dies_midway)
    with pytest.raises(OSError, match="No space left"):
        write_h5ad_atomic(ad.AnnData(np.zeros((2, 2), dtype=np.float32)), output)
    assert output.read_bytes() == SENTINEL
    assert list(tmp_path.iterdir()) == [output]


def test_train_dying_while_saving_leaves_earlier_model(prepared, tmp_path, monkeypatch) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "manifest.json").write_bytes(SENTINEL)
    (tmp_path / "history.tsv").write_bytes(SENTINEL)
    before = _snapshot(tmp_path)

    def dies(*args, **kwargs) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vae.steps.train, "write_manifest", dies)
    with pytest.raises(OSError, match="No space left"):
        steps.train_model(
            prepared["root"] / "a.h5ad",
            tmp_path / "model",
            tmp_path / "history.tsv",
            domain="expression",
            model_kwargs=MODEL,
            train_kwargs=TINY,
            device="cpu",
        )
    assert _snapshot(tmp_path) == before  # the staging folder with the new weights is gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.tsv", "model"]


def test_killed_writer_never_leaves_a_complete_looking_file(tmp_path) -> None:
    output = tmp_path / "metrics.json"
    output.write_bytes(SENTINEL)
    code = textwrap.dedent(
        f"""
        import os
        from vae._io import atomic_path
        with atomic_path({str(output)!r}) as tmp:
            tmp.write_text('{{"half":')
            os._exit(9)  # like SIGKILL: no cleanup runs
        """
    )
    result = subprocess.run([sys.executable, "-c", code], check=False)
    assert result.returncode == 9
    assert output.read_bytes() == SENTINEL
    leftovers = [p.name for p in tmp_path.iterdir() if p != output]
    # only a hidden temp file can stay behind, never something at the real path
    assert all(re.fullmatch(r"\.metrics\.json\..+\.tmp", name) for name in leftovers), leftovers
    write_text_atomic(output, "{}\n")  # the next run replaces the result as usual
    assert output.read_text() == "{}\n"
