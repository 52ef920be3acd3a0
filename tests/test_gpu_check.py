"""benchmarks/gpu_check.py: the tiny mode end to end, and its GPU-only arithmetic on fakes.

The tiny mode runs on any machine (the CPU without CUDA, small sizes on a GPU), so this
test keeps the GPU check from rotting; it carries no ``gpu`` marker on purpose.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from _benchmarks import load_benchmark

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
PARTS = (
    "environment",
    "protein_train",
    "protein_score",
    "sequence_weights",
    "expression_pbmc3k",
    "expression_1m",
)


def _finite(value) -> bool:
    if isinstance(value, bool):
        return True
    return isinstance(value, int | float) and math.isfinite(value)


def test_tiny_mode_reports_every_part(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())

    assert report["mode"] == "tiny"
    assert report["non_finite"] == []
    for key in ("git_commit", "seed", "torch", "compute", "device", "data"):
        assert key in report
    assert {"torch_cpu_capability", "torch_blas"} <= set(report["compute"])
    assert tuple(report["parts"]) == PARTS
    for name, part in report["parts"].items():
        assert part["status"] in ("ok", "cut"), (name, part.get("error"))
        assert part["seconds"] <= 1.25 * part["budget_s"] + 5, name
        assert part["figures"], name
        for key, value in part["figures"].items():
            assert _finite(value) or key in part["skipped"] or part["cut"], (name, key, value)
        if part["cut"]:
            assert part.get("cut_reason") or any(r.get("cut") for r in _runs(part)), name
    # the data: real files from ../shared when present, generated ones otherwise (and said)
    for name, source in report["data"].items():
        assert source["source"] in ("real", "generated"), name
        assert (source["source"] == "generated") == (name in report["generated_fallback"])
    # figures that only exist on a GPU are explicitly skipped on the CPU
    if report["device"] == "cpu":
        train = report["parts"]["protein_train"]
        for key in ("gpu_busy_fraction", "memcpy_ms_per_step", "steps_per_s_bf16"):
            assert key in train["skipped"]
        assert "bf16_loss_nats_per_cell" in report["parts"]["expression_pbmc3k"]["skipped"]
    assert report["parts"]["sequence_weights"]["figures"]["identical"] is True
    assert "protein_train" in done.stdout
    assert "cells_per_s" in done.stdout
    print(f"tiny gpu_check: {wall:.1f} s wall, {report['wall_seconds']:.1f} s in the script")


def _runs(part: dict) -> list[dict]:
    runs = part.get("runs", [])
    return list(runs.values()) if isinstance(runs, dict) else runs


def test_timed_fit_cuts_at_the_budget():
    gpu_check = load_benchmark("gpu_check")
    layer = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.01)

    def fit():
        while True:  # a loop that never ends by itself
            optimizer.zero_grad()
            layer(torch.ones(2, 4)).sum().backward()
            optimizer.step()
            time.sleep(0.002)

    budget = gpu_check.Budget(0.1)
    result, timing = gpu_check.timed_fit(
        fit, torch.device("cpu"), warmup=2, total=10**9, budget=budget
    )
    assert result is None
    assert timing["cut"]
    assert "budget" in timing["cut_reason"]
    assert timing["timed_steps"] == timing["steps_done"] - 2 > 0
    assert timing["steps_per_s"] > 0
    assert budget.elapsed() < 1.0
    # the hook is gone: more steps are not counted
    optimizer.step()


def _event(name, start, end, device="cpu", annotation=False):
    kind = torch.autograd.DeviceType.CUDA if device == "cuda" else torch.autograd.DeviceType.CPU
    return SimpleNamespace(
        name=name,
        device_type=kind,
        time_range=SimpleNamespace(start=start, end=end),
        is_user_annotation=annotation,
    )


def test_profile_summary_reads_the_device_timeline():
    gpu_check = load_benchmark("gpu_check")
    # two steps of 1,000 us: kernels overlap in part, one copy each way, a step annotation
    events = [
        _event("ProfilerStep#1", 0, 1000),
        _event("cudaStreamSynchronize", 900, 950),
        _event("ProfilerStep#1", 0, 2000, "cuda", annotation=True),
        _event("sm90_xmma_gemm_f32", 100, 500, "cuda"),
        _event("elementwise_kernel", 400, 600, "cuda"),
        _event("Memcpy HtoD (Pageable -> Device)", 700, 720, "cuda"),
        _event("Memcpy DtoH (Device -> Pageable)", 900, 910, "cuda"),
        _event("sm90_xmma_gemm_f32", 1100, 1500, "cuda"),
        _event("ProfilerStep#2", 1000, 2000),
    ]
    averages = [SimpleNamespace(key="aten::mm", self_cpu_time_total=300.0)]
    prof = SimpleNamespace(events=lambda: events, key_averages=lambda: averages)
    summary = gpu_check.profile_summary(prof, 2, torch.device("cuda"), step_ms=1.0)
    # busy: 100-600 (500), 700-720 (20), 900-910 (10), 1100-1500 (400) = 930 us over 2 steps
    assert summary["gpu_busy_ms_per_step"] == pytest.approx(0.465)
    assert summary["gpu_busy_fraction"] == pytest.approx(0.465)
    assert summary["memcpy_ms_per_step"] == pytest.approx(0.015)
    assert summary["memcpy_count_per_step"] == {"HtoD": 0.5, "DtoH": 0.5, "DtoD": 0.0}
    assert summary["kernel_ms_per_step"] == pytest.approx(0.5)
    assert summary["gemm_fraction_of_kernel_time"] == pytest.approx(0.8)
    assert summary["host_syncs_per_step"] == 0.5
    assert summary["verdict"].startswith("host-bound")
    # the same timeline with a 0.5 ms unprofiled step: the device is busy 93 % of it
    busy = gpu_check.profile_summary(prof, 2, torch.device("cuda"), step_ms=0.5)
    assert busy["verdict"].startswith("GPU-bound")
    # on the CPU there is no device timeline
    cpu = gpu_check.profile_summary(prof, 2, torch.device("cpu"), step_ms=1.0)
    assert "gpu_busy_fraction" not in cpu
    assert cpu["top_host_ops_ms_per_step"]
