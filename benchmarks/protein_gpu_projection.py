"""Project the protein presets' training time on a GPU from what one training step does.

No GPU is needed: one training step (forward, backward and Adam, batch of the preset) of
each preset's network, at a family's width, is run on the CPU under
:class:`torch.utils.flop_counter.FlopCounterMode` (floating-point operations) and under a
dispatch counter (the aten operators called, about one kernel launch each on a GPU). A GPU
step is then projected at ``max(flops / peak, operators * per-operator time)``: a
projection, not a measurement (the peak is optimistic; counting every operator, views
included, as a launch is pessimistic). The per-operator time is ``--launch-us`` or, when
larger, the host overhead per operator measured here on the same layers at negligible
widths. The CPU seconds per step are measured over ``--steps`` steps for comparison.
Writes ``projection.json``.

Example (paths relative to the repository root)::

    .venv/bin/python benchmarks/protein_gpu_projection.py \\
        --presets config/real-data.yaml config/presets/protein-eve.yaml --positions 155 214 329 387
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import yaml
from snakemake.utils import update_config
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from vae._alphabet import PROTEIN_ALPHABET
from vae.module import SequenceVAE
from vae.provenance import cpu_capability

CONFIG = Path(__file__).resolve().parents[1] / "config"
DEFAULT_CONFIG = CONFIG / "config.yaml"
REAL_DATA_CONFIG = CONFIG / "real-data.yaml"


class DispatchCounter(TorchDispatchMode):
    """Count the aten operators dispatched inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def preset_settings(path: Path) -> tuple[dict, dict]:
    """The ``model.protein`` and ``train.protein`` sections the workflow runs with ``path``.

    Layered as Snakemake layers them for ``--configfile config/real-data.yaml path``: the
    workflow's ``config/config.yaml``, then the real-data config, then ``path``.
    """
    config = {}
    for layer in dict.fromkeys((DEFAULT_CONFIG, REAL_DATA_CONFIG, path.resolve())):
        settings = yaml.safe_load(layer.read_text())
        if not isinstance(settings, dict):
            raise ValueError(f"{layer.name} is not a YAML mapping of config sections")
        update_config(config, settings)
    return config["model"]["protein"], config["train"]["protein"]


def one_step(module: SequenceVAE, optimizer: torch.optim.Optimizer, codes: torch.Tensor) -> None:
    """Forward, backward and optimizer step on one minibatch (the trainer's loss)."""
    optimizer.zero_grad(set_to_none=True)
    loss = module.loss(codes).loss(1.0, 1000.0)
    loss.backward()
    optimizer.step()


def measure(model_kwargs: dict, batch: int, positions: int, steps: int, seed: int) -> dict:
    """FLOPs, dispatched operators and CPU seconds of one training step."""
    torch.manual_seed(seed)
    module = SequenceVAE(positions, len(PROTEIN_ALPHABET), **model_kwargs).train()
    # foreach (not fused) Adam: fused Adam has no CPU kernel for every dtype path, and on
    # a GPU the trainer's fused Adam launches no more kernels than foreach
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-4, foreach=True)
    codes = torch.randint(0, len(PROTEIN_ALPHABET), (batch, positions), dtype=torch.uint8)
    one_step(module, optimizer, codes)  # allocate Adam's state outside the counters
    flops = FlopCounterMode(display=False)
    with flops:
        one_step(module, optimizer, codes)
    counter = DispatchCounter()
    with counter:
        one_step(module, optimizer, codes)
    started = time.perf_counter()
    for _ in range(steps):
        one_step(module, optimizer, codes)
    cpu_seconds = (time.perf_counter() - started) / steps
    return {
        "parameters": sum(p.numel() for p in module.parameters()),
        "flops_per_step": flops.get_total_flops(),
        "operators_per_step": counter.count,
        "cpu_seconds_per_step": cpu_seconds,
    }


def host_microseconds_per_operator(model_kwargs: dict, steps: int, seed: int) -> float:
    """Host time per dispatched operator: the same layers at widths where arithmetic is nil.

    With every width at 4 a step costs Python, autograd and the dispatcher only; divided by
    its operator count this is the host overhead per operator, which a GPU step pays too
    (kernels are queued asynchronously, but never faster than the host issues them).
    """
    tiny = dict(model_kwargs)
    for key in ("encoder_hidden", "decoder_hidden"):
        tiny[key] = [4] * len(model_kwargs[key])
    tiny["n_latent"] = 2
    if tiny.get("output_conv_depth"):
        tiny["output_conv_depth"] = 4
    row = measure(tiny, batch=2, positions=4, steps=steps, seed=seed)
    return row["cpu_seconds_per_step"] / row["operators_per_step"] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["config/real-data.yaml"])
    parser.add_argument(
        "--positions", type=int, nargs="+", default=[155], help="kept columns of each family"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=51.0,
        help="GPU FP32 peak, TFLOP/s (default: H100 PCIe without TF32)",
    )
    parser.add_argument(
        "--launch-us",
        type=float,
        default=5.0,
        help="least GPU time per dispatched operator, µs (the measured host overhead per "
        "operator is used when larger)",
    )
    parser.add_argument("--steps", type=int, default=10, help="CPU steps timed")
    parser.add_argument(
        "--budgets", type=int, nargs="+", default=[200, 1000, 16000, 400000], help="steps"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/out/protein_gpu_projection")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for preset in args.presets:
        try:
            model_kwargs, train_kwargs = preset_settings(Path(preset))
        except (OSError, ValueError, yaml.YAMLError) as error:
            parser.error(f"preset {preset}: " + " ".join(str(error).split()))
        host_us = host_microseconds_per_operator(model_kwargs, max(args.steps, 20), 0)
        per_operator_us = max(args.launch_us, host_us)
        for positions in args.positions:
            row = {"preset": preset, "positions": positions, "batch": train_kwargs["batch_size"]}
            row |= measure(model_kwargs, train_kwargs["batch_size"], positions, args.steps, 0)
            compute_s = row["flops_per_step"] / (args.peak_tflops * 1e12)
            row["host_us_per_operator"] = host_us
            launch_s = row["operators_per_step"] * per_operator_us * 1e-6
            row["gpu_seconds_per_step_projected"] = max(compute_s, launch_s)
            row["gpu_bound_by"] = "compute" if compute_s > launch_s else "launches"
            for budget in args.budgets:
                row[f"cpu_hours_{budget}"] = row["cpu_seconds_per_step"] * budget / 3600
                row[f"gpu_hours_{budget}"] = row["gpu_seconds_per_step_projected"] * budget / 3600
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "assumed": {"peak_tflops": args.peak_tflops, "launch_us": args.launch_us},
        "machine": {"cpu": cpu_capability(), "threads": args.threads},
        "torch": torch.__version__,
        "rows": rows,
    }
    (out / "projection.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
