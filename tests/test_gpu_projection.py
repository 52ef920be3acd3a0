"""The step counts behind ``benchmarks/protein_gpu_projection.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from _benchmarks import load_benchmark

REPO = Path(__file__).resolve().parents[1]
TINY = {
    "n_latent": 4,
    "encoder_hidden": [32, 16],
    "decoder_hidden": [16, 32],
    "output_conv_depth": 8,
    "site_offset": True,
}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("protein_gpu_projection")


def test_flops_scale_with_batch_and_operators_do_not(bench):
    small = bench.measure(TINY, batch=64, positions=30, steps=1, seed=0)
    large = bench.measure(TINY, batch=128, positions=30, steps=1, seed=0)
    assert small["parameters"] == large["parameters"] > 0
    # the matrix products dominate and grow with the batch; the per-parameter work does not
    assert 1.8 < large["flops_per_step"] / small["flops_per_step"] <= 2.0
    assert large["operators_per_step"] == small["operators_per_step"] > 50
    assert small["cpu_seconds_per_step"] > 0


def test_host_overhead_is_per_operator_of_a_network_with_nil_arithmetic(bench):
    per_operator_us = bench.host_microseconds_per_operator(TINY, steps=3, seed=0)
    # PyTorch's eager host overhead is microseconds per operator on any current CPU: a
    # figure in seconds or per step instead of per operator falls outside this range
    assert 0.1 < per_operator_us < 1000


def test_presets_merge_over_the_real_data_config(bench):
    model, train = bench.preset_settings(REPO / "config/presets/protein-eve.yaml")
    assert model["encoder_hidden"] == [2000, 1000, 300]
    assert model["site_offset"] is False
    assert train["batch_size"] == 256
    assert train["max_steps"] == 1000


def test_a_preset_that_is_not_a_mapping_is_named(bench, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.yaml is not a YAML mapping"):
        bench.preset_settings(empty)
