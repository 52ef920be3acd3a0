"""GPU check: device, training speed and bf16 precision of both domains in one timed run.

On a CUDA machine one run finishes in under 8 minutes and writes one JSON file
(``benchmarks/out/gpu_check.json`` by default) and a short table on stdout. Each part is a
function with a time budget (seconds) and size parameters:

* ``environment``: device, driver, torch/CUDA versions, free memory, CPU kernels and BLAS;
* ``protein_train``: EVE's architecture (encoder 2000-1000-300, latent 50, Bayesian decoder
  300-1000-2000 with the output convolution and temperature) on P53 at batch 256: steps/s
  in fp32 and in bf16 autocast after a warm-up, the same fp32 steps on the CPU for the
  ratio, a ``torch.profiler`` pass (GPU busy fraction, host<->device copies, kernel mix)
  and the projected wall time of EVE's 400,000 steps;
* ``protein_score``: the evolutionary index of every single mutant of P53, 20 draws;
* ``sequence_weights``: a generated 100,000 x 500 alignment, the device path of
  :func:`vae.data.sequence_weights` (chunked one-hot products) against the CPU kernel:
  identical weights?, time ratio;
* ``expression_pbmc3k``: the ZINB model of ``config/real-data.yaml`` on pbmc3k, s/epoch in
  fp32 and bf16 and the held-out ELBO after a fixed number of epochs in both (gate: bf16
  loses at most 0.5 nats per cell);
* ``expression_1m``: a generated 1,000,000 x 2,000 matrix (``generate_counts.py``): cells/s
  of one backed epoch (row blocks read from disk, minibatches and model on the GPU).

Budgets: a part checks its clock between training steps, scoring draws and stages; when
its budget is spent it stops, keeps what it measured and is marked ``"cut": true`` (with
``cut_reason``). A single operation that cannot be interrupted is stopped by an alarm at
1.25 x its budget (``"hard stop"``; compiled code such as the numba kernel finishes first).
Every part records ``figures`` (finite numbers or ``true``/``false``); a figure that does
not apply is ``null`` with its reason under ``skipped``, and a caveat goes under ``notes``.
The parts that time the CPU (``protein_train``, ``sequence_weights``) run first; then the
1,000,000-cell file is generated in the background (one core) while the GPU parts run, and
kept in ``--work-dir`` for the next run. SIGTERM (``timeout``) stops the run and still
writes the JSON (``"terminated": true``).

Without CUDA (or with ``--tiny``) the same code runs in seconds with small sizes: a
scaled-down model of the same kind (Bayesian decoder, convolution, temperature) on the
real P53, a few steps, 2 scoring draws, a 1,000 x 100 generated alignment, 3 epochs of
pbmc3k and a generated 2,000-cell matrix; ``tests/test_gpu_check.py`` runs it (on a CUDA
machine ``--tiny`` runs those sizes on the GPU, bf16 included). On the CPU,
bf16 is skipped: the trainer autocasts on CUDA only, and wrapping it in
``torch.autocast("cpu")`` would also autocast the backward pass (which breaks the count
likelihood's hand-written backward), a path the workflow never runs. GPU busy fraction and
copy times are skipped too, and ``sequence_weights(device="cpu")`` runs the CPU kernel, so
its "device path" row is the same kernel (ratio skipped). Data come from ``../shared/data``
(``--data-dir``); when a file is absent the part uses generated data of the same shape and
says so (``data``, ``generated_fallback``).

Usage::

    .venv/bin/python benchmarks/gpu_check.py                 # CUDA: full sizes, < 8 min
    .venv/bin/python benchmarks/gpu_check.py --tiny          # seconds, any machine

Exit status: 1 when a part failed with an error or the run was terminated, else 0 (cut
parts and a failed bf16 gate are reported in the JSON and the table, not fatal).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))  # the sibling benchmark modules

from expression_vs_scvi import _heldout_terms, _project_settings  # noqa: E402
from protein_vs_eve import (  # noqa: E402
    DECODER,
    ENCODER,
    N_LATENT,
    OUR_EVE_KWARGS,
    StepClock,
    flops_per_step,
)
from sequence_weights import generate_alignment  # noqa: E402

from vae.provenance import cpu_capability  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
DEFAULT_OUT = REPO / "benchmarks" / "out" / "gpu_check.json"
P53 = "protein/P53_HUMAN_b0.1.a2m"
PBMC3K = "expression/pbmc3k_hvg2000_counts.h5ad"
EVE_STEPS = 400_000
BF16_MAX_LOSS = 0.5  # nats per held-out cell
PARTS = (
    "environment",
    "protein_train",
    "protein_score",
    "sequence_weights",
    "expression_pbmc3k",
    "expression_1m",
)

#: Parts that time the CPU run first; then the large matrix is generated in the background.
RUN_ORDER = (
    "environment",
    "protein_train",
    "sequence_weights",
    "protein_score",
    "expression_pbmc3k",
    "expression_1m",
)
START_GENERATION_AFTER = "sequence_weights"

#: Budget (s) and sizes of each part: full (CUDA) and tiny (CPU, seconds).
PLANS: dict[str, dict[str, dict]] = {
    "full": {
        "environment": {"budget": 15},
        "protein_train": {
            "budget": 90,
            "arch": "eve",
            "batch_size": 256,
            "warmup": 20,
            "steps": 200,
            "cpu_warmup": 1,
            "cpu_steps": 5,
            "profile_warmup": 5,
            "profile_steps": 10,
        },
        "protein_score": {"budget": 45, "n_draws": 20},
        "sequence_weights": {"budget": 60, "n": 100_000, "length": 500, "probe_n": 10_000},
        "expression_pbmc3k": {"budget": 75, "epochs": 100, "warmup_epochs": 1, "seeds": [0, 1]},
        "expression_1m": {
            "budget": 140,
            "n_cells": 1_000_000,
            "n_genes": 2000,
            "pool": 50_000,
            "chunk": 20_000,
            "batch_size": 128,
            "warmup_steps": 50,
        },
    },
    "tiny": {
        "environment": {"budget": 10},
        "protein_train": {
            "budget": 15,
            "arch": "tiny",
            "batch_size": 256,
            "warmup": 1,
            "steps": 3,
            "cpu_warmup": 1,
            "cpu_steps": 2,
            "profile_warmup": 1,
            "profile_steps": 2,
        },
        "protein_score": {"budget": 8, "n_draws": 2},
        "sequence_weights": {"budget": 8, "n": 1000, "length": 100, "probe_n": 300},
        "expression_pbmc3k": {"budget": 10, "epochs": 3, "warmup_epochs": 1, "seeds": [0]},
        "expression_1m": {
            "budget": 15,
            "n_cells": 2000,
            "n_genes": 2000,
            "pool": 2000,
            "chunk": 1000,
            "batch_size": 128,
            "warmup_steps": 2,
        },
    },
}
#: Model sizes: EVE's default, and a small model with the same parts for the tiny mode.
ARCHS = {
    "eve": {"n_latent": N_LATENT, "encoder_hidden": ENCODER, "decoder_hidden": DECODER},
    "tiny": {"n_latent": 8, "encoder_hidden": (64, 32), "decoder_hidden": (32, 64)},
}


# --------------------------------------------------------------------------- budgets


class Cut(Exception):
    """A part (or one of its stages) reached its time budget."""


class HardStop(Exception):
    """The alarm fired: one operation ran past 1.25 x the part's budget."""


class Terminated(BaseException):
    """SIGTERM (e.g. from ``timeout``): stop, but still write what was measured."""


class Budget:
    """Seconds a part (or a stage of it) may take, from its creation.

    Parameters
    ----------
    seconds
        The allowance.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the budget started."""
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds left (negative once spent)."""
        return self.seconds - self.elapsed()

    def expired(self) -> bool:
        """Whether the budget is spent."""
        return self.left() <= 0

    def check(self, what: str) -> None:
        """Raise :class:`Cut` before ``what`` when the budget is spent."""
        if self.expired():
            raise Cut(f"budget of {self.seconds:.0f} s spent before {what}")

    def share(self, fraction: float) -> Budget:
        """A stage's budget: ``fraction`` of the seconds left."""
        return Budget(max(0.0, self.left()) * fraction)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _StepTimer:
    """Optimiser-step callback: time the steps after ``warmup`` up to ``total``.

    The clock starts after step ``warmup`` and stops after step ``total``, each time after
    :func:`torch.cuda.synchronize`, so the GPU's queue is drained at both ends. When the
    budget is spent it stops the clock and raises :class:`Cut`, which leaves the trainer.
    """

    def __init__(self, device: torch.device, warmup: int, total: int, budget: Budget) -> None:
        self.device, self.warmup, self.total, self.budget = device, warmup, total, budget
        self.count = 0
        self.start: float | None = None
        self.end: float | None = None

    def begin(self) -> None:
        if self.warmup == 0:
            _sync(self.device)
            self.start = time.perf_counter()

    def __call__(self) -> None:
        self.count += 1
        if self.count == self.warmup:
            _sync(self.device)
            self.start = time.perf_counter()
        if self.count == self.total:
            _sync(self.device)
            self.end = time.perf_counter()
        elif self.budget.expired():
            _sync(self.device)
            self.end = time.perf_counter()
            raise Cut(
                f"stage budget of {self.budget.seconds:.1f} s spent after {self.count} steps"
            )

    def summary(self) -> dict:
        timed = self.count - self.warmup if self.start is not None else 0
        seconds = self.end - self.start if timed > 0 and self.end is not None else None
        return {
            "steps_done": self.count,
            "warmup_steps": self.warmup,
            "timed_steps": timed,
            "timed_seconds": seconds,
            "steps_per_s": timed / seconds if seconds else None,
        }


def timed_fit(
    fit: Callable[[], object],
    device: torch.device,
    *,
    warmup: int,
    total: int,
    budget: Budget,
    on_step: Callable[[], None] | None = None,
) -> tuple[object, dict]:
    """Run ``fit()`` (a trainer loop) and time its optimiser steps ``warmup+1 .. total``.

    Parameters
    ----------
    fit
        Runs the training (e.g. ``lambda: model.train(adata, config)``).
    device
        Where the training runs (synchronised at the clock's start and stop).
    warmup
        Steps before the clock starts.
    total
        The loop's last step.
    budget
        The stage's budget; the loop is cut at the first step after it is spent.
    on_step
        Called after every step (e.g. ``profiler.step``).

    Returns
    -------
    result, timing
        What ``fit`` returned (``None`` when cut) and the timing summary with ``cut``.
    """
    timer = _StepTimer(device, warmup, total, budget)

    def hook() -> None:
        timer()
        if on_step is not None:
            on_step()

    clock = StepClock(hook)  # a global optimizer-step post-hook (protein_vs_eve.py)
    result, reason = None, None
    try:
        timer.begin()
        result = fit()
    except Cut as err:
        reason = str(err)
    finally:
        clock.remove()
    timing = timer.summary() | {"cut": reason is not None}
    # host-side step times (enqueue times on a GPU): stamps of consecutive steps after warm-up
    between = np.diff(clock.stamps)[max(0, warmup - 1) :]
    if between.size:
        timing["host_step_ms_median"] = 1e3 * float(np.median(between))
    if reason:
        timing["cut_reason"] = reason
    return result, timing


def mark_cut(out: dict, reason: str) -> None:
    """Mark a part cut and add ``reason`` to its ``cut_reason``."""
    out["cut"] = True
    out["cut_reason"] = "; ".join(filter(None, [out.get("cut_reason"), reason]))


def stage(out: dict, label: str, fn: Callable[[], object]) -> object:
    """Run one stage of a part; an error is recorded (status ``error``) and the part goes on.

    :class:`Cut` and :class:`HardStop` pass through (the part stops); any other exception
    is stored under ``out["errors"][label]`` with the end of its traceback.
    """
    try:
        return fn()
    except (Cut, HardStop):
        raise
    except Exception as err:  # noqa: BLE001 - e.g. bf16 failing must not hide fp32
        out["status"] = "error"
        message = f"{label}: {type(err).__name__}: {err}"
        out["error"] = "; ".join(filter(None, [out.get("error"), message]))
        out.setdefault("errors", {})[label] = traceback.format_exc().splitlines()[-12:]
        return None


# --------------------------------------------------------------------------- context


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(REPO), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def compute_record() -> dict:
    """CPU kernels and BLAS as ``vae.provenance`` records them, plus CPU and numba threads."""
    import numba  # noqa: PLC0415

    return cpu_capability() | {
        "cpu_count": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
    }


class Context:
    """Settings shared by the parts, and data loaded once.

    Parameters
    ----------
    device
        The measured device (CUDA when present).
    tiny
        Small sizes (seconds on a CPU).
    data_dir
        The ``shared/data`` folder (real P53 and pbmc3k).
    work_dir
        Where generated files go (kept between runs: the 1,000,000-cell file is reused).
    seed
        Seed of splits, initialisation and draws.
    counts_file
        An existing large ``.h5ad`` for ``expression_1m`` instead of generating one.
    """

    def __init__(
        self,
        device: torch.device,
        *,
        tiny: bool,
        data_dir: Path,
        work_dir: Path,
        seed: int,
        counts_file: Path | None = None,
    ) -> None:
        self.device, self.tiny, self.seed = device, tiny, seed
        self.data_dir, self.work_dir, self.counts_file = data_dir, work_dir, counts_file
        self.data: dict[str, dict] = {}
        self._protein = None
        self._pbmc3k = None
        self.protein_model = None  # the fp32 model of protein_train, scored by protein_score
        self.protein_model_steps: int | None = None
        self.generation: Generation | None = None
        self.overlapped: list[str] = []  # parts that ran while the generation ran
        self.terminated = False

    def counts_path(self, n_cells: int, n_genes: int) -> Path:
        """The large matrix of ``expression_1m``: ``--counts-file`` or one in the work folder."""
        return self.counts_file or self.work_dir / f"counts_{n_cells}x{n_genes}.h5ad"

    def start_generation(self, *, n_cells: int, n_genes: int, pool: int, chunk: int, **_) -> None:
        """Start writing the large matrix in the background unless it exists already."""
        path = self.counts_path(n_cells, n_genes)
        if self.counts_file or _h5ad_shape(path) == (n_cells, n_genes):
            return
        log = self.work_dir / "generate_counts.log"
        self.generation = Generation(path, n_cells, n_genes, pool, chunk, log)

    def protein(self):
        """P53 as preprocessed AnnData (weights on the device), or a generated alignment."""
        if self._protein is None:
            from vae.data import (  # noqa: PLC0415
                Alignment,
                alignment_to_anndata,
                decode,
                read_alignment,
            )

            path = self.data_dir / P53
            started = time.perf_counter()
            if path.is_file():
                alignment = read_alignment(path)
                self.data["protein"] = {"source": "real", "path": str(path)}
            else:
                codes = generate_alignment(3668, 329, seed=self.seed)
                focus = codes[0]
                gaps = focus == 20
                focus[gaps] = np.random.default_rng(self.seed).integers(0, 20, gaps.sum())
                sequences = decode(codes)
                n = len(sequences)
                alignment = Alignment(
                    ids=["GENERATED/1-329", *(f"seq{i}" for i in range(1, n))],
                    sequences=sequences,
                    focus_columns=np.arange(329),
                    positions=np.arange(1, 330),
                    focus_residues=sequences[0],
                    stats={"generated": True},
                )
                self.data["protein"] = {
                    "source": "generated",
                    "why": f"{path} not found",
                    "what": "sequence_weights.generate_alignment(3668, 329), focus gap-free",
                }
            adata = alignment_to_anndata(alignment, theta=0.2, device=self.device)
            self.data["protein"] |= {
                "n_sequences": int(adata.n_obs),
                "n_columns": int(adata.n_vars),
                "neff": float(adata.uns["preprocess"]["neff"]),
                "load_seconds": time.perf_counter() - started,
            }
            self._protein = adata
        return self._protein

    def pbmc3k(self):
        """pbmc3k counts in memory, or a generated matrix of the same shape."""
        if self._pbmc3k is None:
            import anndata as ad  # noqa: PLC0415

            path = self.data_dir / PBMC3K
            if path.is_file():
                self.data["pbmc3k"] = {"source": "real", "path": str(path)}
            else:
                generated = self.work_dir / "pbmc3k_generated.h5ad"
                if not generated.is_file():
                    generate_counts(generated, 2638, 2000, pool=2638, chunk=2638, timeout=120)
                self.data["pbmc3k"] = {
                    "source": "generated",
                    "why": f"{path} not found",
                    "path": str(generated),
                }
                path = generated
            self._pbmc3k = ad.read_h5ad(path)
            self.data["pbmc3k"] |= {"shape": list(self._pbmc3k.shape)}
        return self._pbmc3k


def _generate_command(path: Path, n_cells: int, n_genes: int, pool: int, chunk: int) -> list:
    command = [sys.executable, str(HERE / "generate_counts.py"), str(path)]
    command += ["--n-cells", str(n_cells), "--n-genes", str(n_genes)]
    return command + ["--pool", str(pool), "--chunk", str(chunk)]


def generate_counts(
    path: Path, n_cells: int, n_genes: int, *, pool: int, chunk: int, timeout: float
) -> float:
    """Write a count matrix with ``generate_counts.py`` in a subprocess; return its seconds.

    Raises :class:`Cut` when it does not finish within ``timeout`` seconds (the subprocess is
    killed; it writes to a temporary name and renames at the end, so no partial file stays).
    """
    started = time.perf_counter()
    command = _generate_command(path, n_cells, n_genes, pool, chunk)
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        _remove_partial(path)
        raise Cut(f"generating {n_cells:,} cells took more than {timeout:.0f} s") from err
    return time.perf_counter() - started


def _remove_partial(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.with_name(f".{path.name}.tmp").unlink()


class Generation:
    """``generate_counts.py`` running in the background (started once the CPU is measured).

    Parameters
    ----------
    path
        The ``.h5ad`` to write.
    n_cells, n_genes, pool, chunk
        ``generate_counts.py`` options.
    log
        Its stdout and stderr.
    """

    def __init__(
        self, path: Path, n_cells: int, n_genes: int, pool: int, chunk: int, log: Path
    ) -> None:
        self.path, self.log = path, log
        path.parent.mkdir(parents=True, exist_ok=True)
        command = _generate_command(path, n_cells, n_genes, pool, chunk)
        with open(log, "w") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        self.started = time.perf_counter()
        self.command = shlex.join(command)

    def wait(self, timeout: float) -> float:
        """Wait for the file; return the generator's own seconds. :class:`Cut` on timeout."""
        try:
            code = self.process.wait(timeout=max(0.1, timeout))
        except subprocess.TimeoutExpired as err:
            self.stop()
            raise Cut(
                f"the background generation ran {time.perf_counter() - self.started:.0f} s "
                "and was stopped"
            ) from err
        text = self.log.read_text()
        if code != 0:
            raise RuntimeError(f"generate_counts.py exited {code}: {text[-500:]}")
        found = re.search(r", ([0-9.]+) s, peak RSS", text)
        return float(found[1]) if found else time.perf_counter() - self.started

    def stop(self) -> None:
        """Kill the generator if it still runs (and remove its temporary file)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            _remove_partial(self.path)


def _h5ad_shape(path: Path) -> tuple[int, int] | None:
    import h5py  # noqa: PLC0415

    try:
        with h5py.File(path, "r") as handle:
            return tuple(int(v) for v in handle["X"].attrs["shape"])
    except (OSError, KeyError):
        return None


# --------------------------------------------------------------------------- parts


def part_environment(ctx: Context, budget: Budget, out: dict) -> None:
    """Device, driver, versions and free memory; CPU kernels and BLAS."""
    started = time.perf_counter()
    import torch._dynamo  # noqa: F401, PLC0415  (the first Adam imports it: seconds)

    out["dynamo_import_seconds"] = time.perf_counter() - started
    out |= {
        "device": str(ctx.device),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "compute": compute_record(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    figures, skipped = out["figures"], out["skipped"]
    figures["cpu_threads"] = torch.get_num_threads()
    if ctx.device.type != "cuda":
        for key in ("gpu_free_gib", "gpu_total_gib"):
            figures[key] = None
            skipped[key] = "no CUDA device"
        return
    index = ctx.device.index or 0
    props = torch.cuda.get_device_properties(index)
    started = time.perf_counter()
    free, total = torch.cuda.mem_get_info(index)  # creates the CUDA context
    out["cuda_init_seconds"] = time.perf_counter() - started
    out |= {
        "gpu_name": props.name,
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_multiprocessors": props.multi_processor_count,
        "gpu_count": torch.cuda.device_count(),
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "nvidia_smi": _nvidia_smi(),
    }
    out["driver"] = (out["nvidia_smi"] or {}).get("driver_version", "unknown (no nvidia-smi)")
    figures["gpu_free_gib"] = free / 2**30
    figures["gpu_total_gib"] = total / 2**30


def _nvidia_smi() -> dict | None:
    fields = "name,driver_version,memory.total,memory.free,clocks.max.sm,power.limit,pstate"
    try:
        done = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=15,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    first = done.stdout.strip().splitlines()[0]
    return dict(zip(fields.split(","), (v.strip() for v in first.split(",")), strict=False))


def _protein_model_kwargs(arch: str) -> dict:
    return {**ARCHS[arch], "dropout_rate": 0.0, **OUR_EVE_KWARGS}


def _protein_config(total: int, batch_size: int, precision: str, seed: int):
    from vae.train import TrainConfig  # noqa: PLC0415

    return TrainConfig(
        max_steps=total,
        batch_size=batch_size,
        lr=1e-4,  # EVE's
        kl_warmup_steps=0,
        validation_frac=0.0,  # EVE's default: no validation set
        eval_every=10**9,  # the only history row comes after the last step
        early_stopping_patience=None,
        checkpoint_every=0,
        precision=precision,
        seed=seed,
    )


def _protein_run(ctx, adata, kwargs, device, precision, sizes, budget, on_step=None):
    from vae.model import SequenceModel  # noqa: PLC0415

    warmup, steps, batch = sizes
    model = SequenceModel.from_anndata(adata, **kwargs).to(device)
    config = _protein_config(warmup + steps, batch, precision, ctx.seed)
    _, timing = timed_fit(
        lambda: model.train(adata, config),
        device,
        warmup=warmup,
        total=warmup + steps,
        budget=budget,
        on_step=on_step,
    )
    timing |= {"device": str(device), "precision": precision}
    return model, timing


def part_protein_train(
    ctx: Context,
    budget: Budget,
    out: dict,
    *,
    arch: str,
    batch_size: int,
    warmup: int,
    steps: int,
    cpu_warmup: int,
    cpu_steps: int,
    profile_warmup: int,
    profile_steps: int,
) -> None:
    """Steps/s at batch 256 in fp32 and bf16 on the device and fp32 on the CPU; profile."""
    adata = ctx.protein()
    kwargs = _protein_model_kwargs(arch)
    n_params = None
    out |= {"data": ctx.data["protein"], "model": {"arch": arch} | kwargs}
    figures, skipped, notes = out["figures"], out["skipped"], out["notes"]
    cuda = ctx.device.type == "cuda"
    runs = out["runs"] = {}

    # fp32 and bf16 on the device, then fp32 on the CPU; each stage gets a share of the rest
    stages = [("fp32", ctx.device, "32", 0.3), ("bf16", ctx.device, "bf16", 0.4)]
    stages.append(("cpu_fp32", torch.device("cpu"), "32", 0.7))
    for name, device, precision, share in stages:
        if precision == "bf16" and not cuda:
            runs[name] = {"skipped": "no CUDA: the trainer autocasts on CUDA only"}
            continue
        budget.check(f"the {name} run")
        sizes = (cpu_warmup, cpu_steps, batch_size) if name == "cpu_fp32" else None
        sizes = sizes or (warmup, steps, batch_size)
        ran = stage(
            out,
            name,
            lambda device=device, precision=precision, sizes=sizes, share=share: _protein_run(
                ctx, adata, kwargs, device, precision, sizes, budget.share(share)
            ),
        )
        if ran is None:
            runs[name] = {"error": out["errors"][name][-1]}
            continue
        model, timing = ran
        runs[name] = timing
        if timing["cut"]:
            mark_cut(out, f"{name}: {timing['cut_reason']}")
        n_params = n_params or int(sum(p.numel() for p in model.module.parameters()))
        if name == "fp32":
            ctx.protein_model = model  # scored by protein_score
            ctx.protein_model_steps = timing["steps_done"]
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out["model"]["n_parameters"] = n_params

    def rate(name: str) -> float | None:
        return runs.get(name, {}).get("steps_per_s")

    figures["steps_per_s_fp32"] = rate("fp32")
    figures["steps_per_s_bf16"] = rate("bf16")
    figures["steps_per_s_cpu_fp32"] = rate("cpu_fp32")
    for precision in ("fp32", "bf16"):
        if rate(precision) and rate("cpu_fp32"):
            figures[f"speedup_{precision}_over_cpu"] = rate(precision) / rate("cpu_fp32")
        else:
            figures[f"speedup_{precision}_over_cpu"] = None
        figures[f"eve_400k_steps_hours_{precision}"] = (
            EVE_STEPS / rate(precision) / 3600 if rate(precision) else None
        )
    if not cuda:
        figures["speedup_fp32_over_cpu"] = None
        skipped |= {
            "steps_per_s_bf16": "no CUDA: the trainer autocasts on CUDA only",
            "speedup_fp32_over_cpu": "no CUDA: the device is the CPU",
            "speedup_bf16_over_cpu": "no CUDA: the device is the CPU",
            "eve_400k_steps_hours_bf16": "no CUDA",
        }
    if arch != "eve":
        notes["eve_400k_steps_hours_fp32"] = f"{arch} model, not EVE's size"
    if arch == "eve" and rate("fp32"):
        flops = flops_per_step(adata.n_vars, 21, batch_size)
        out["flops"] = flops
        figures["tflop_per_s_fp32"] = flops["step_gflop_eve_order"] * rate("fp32") / 1e3
        if rate("bf16"):
            figures["tflop_per_s_bf16"] = flops["step_gflop_eve_order"] * rate("bf16") / 1e3

    # a profiled run: GPU busy time, host<->device copies, kernel mix
    budget.check("the profile")
    from torch.profiler import ProfilerActivity, profile, schedule  # noqa: PLC0415

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=profile_warmup, active=profile_steps, repeat=1),
    )
    with prof:
        ran = stage(
            out,
            "profile",
            lambda: _protein_run(
                ctx,
                adata,
                kwargs,
                ctx.device,
                "32",
                (0, profile_warmup + profile_steps, batch_size),
                budget.share(0.9),
                on_step=prof.step,
            ),
        )
    timing = ran[1] if ran is not None else {"cut": False, "steps_done": 0}
    profiled = timing["steps_done"] - profile_warmup
    if ran is None:
        out["profile"] = {"error": "see errors.profile"}
    elif timing["cut"] or profiled < profile_steps:
        mark_cut(out, f"profile: {timing['steps_done']} of {profile_warmup + profile_steps} steps")
        out["profile"] = {"cut": True, "steps": timing["steps_done"]}
    else:
        unprofiled_ms = 1e3 / rate("fp32") if rate("fp32") else None
        out["profile"] = profile_summary(prof, profile_steps, ctx.device, unprofiled_ms)
    prof_figures = ("gpu_busy_fraction", "memcpy_ms_per_step", "kernel_ms_per_step")
    for key in prof_figures:
        figures[key] = out["profile"].get(key)
        if not cuda:
            skipped[key] = "no CUDA: the CPU has no device timeline"
    out["verdict"] = out["profile"].get("verdict", "no CUDA: not applicable")


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for start, stop in sorted(intervals):
        if start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def profile_summary(prof, n_steps: int, device: torch.device, step_ms: float | None) -> dict:
    """Per-step times from a ``torch.profiler`` run of ``n_steps`` active steps.

    ``gpu_busy_fraction``: the union of all device activity (kernels, copies, memsets) per
    step divided by the unprofiled fp32 step time (``step_ms``; the profiled window's own
    fraction is ``gpu_busy_fraction_profiled``, lowered by the profiler's host overhead).
    ``memcpy_ms_per_step``: host<->device copy time per step (device to device separately).
    """
    from torch.autograd import DeviceType  # noqa: PLC0415

    events = list(prof.events())
    averages = prof.key_averages()
    top_cpu = sorted(averages, key=lambda e: -e.self_cpu_time_total)[:6]
    summary = {
        "steps": n_steps,
        "top_host_ops_ms_per_step": {
            e.key: e.self_cpu_time_total / 1e3 / n_steps for e in top_cpu
        },
    }
    if device.type != "cuda":
        return summary
    # device activity; user annotations (ProfilerStep#N mirrored on the GPU) are not work
    gpu = [
        e
        for e in events
        if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)
    ]
    spans = [(e.time_range.start, e.time_range.end) for e in gpu]
    window = [
        (e.time_range.start, e.time_range.end)
        for e in events
        if e.device_type in (DeviceType.CPU, DeviceType.CUDA)
    ]
    window_us = max(s for _, s in window) - min(s for s, _ in window) if window else 0.0
    busy_us = _union_us(spans)
    copies = {"HtoD": 0.0, "DtoH": 0.0, "DtoD": 0.0}
    n_copies = {"HtoD": 0, "DtoH": 0, "DtoD": 0}
    kernels: dict[str, float] = {}
    for e in gpu:
        span = e.time_range.end - e.time_range.start
        if e.name.startswith("Memcpy"):
            kind = next((k for k in copies if k in e.name), "DtoD")
            copies[kind] += span
            n_copies[kind] += 1
        elif not e.name.startswith("Memset"):
            kernels[e.name] = kernels.get(e.name, 0.0) + span
    kernel_us = sum(kernels.values())
    gemm_us = sum(v for k, v in kernels.items() if _is_gemm(k))
    syncs = sum(1 for e in events if "Synchronize" in e.name and e.device_type == DeviceType.CPU)
    busy_ms = busy_us / 1e3 / n_steps
    memcpy_ms = (copies["HtoD"] + copies["DtoH"]) / 1e3 / n_steps
    summary |= {
        "gpu_busy_ms_per_step": busy_ms,
        "kernel_ms_per_step": kernel_us / 1e3 / n_steps,
        "memcpy_ms_per_step": memcpy_ms,
        "memcpy_ms_per_step_by_kind": {k: v / 1e3 / n_steps for k, v in copies.items()},
        "memcpy_count_per_step": {k: v / n_steps for k, v in n_copies.items()},
        "host_syncs_per_step": syncs / n_steps,
        "kernels_per_step": sum(1 for e in gpu if not e.name.startswith("Mem")) / n_steps,
        "gemm_fraction_of_kernel_time": gemm_us / kernel_us if kernel_us else None,
        "profiled_window_ms_per_step": window_us / 1e3 / n_steps,
        "gpu_busy_fraction_profiled": busy_us / window_us if window_us else None,
        "unprofiled_step_ms": step_ms,
        "gpu_busy_fraction": busy_ms / step_ms if step_ms else None,
        "top_kernels_ms_per_step": {
            k[:90]: v / 1e3 / n_steps
            for k, v in sorted(kernels.items(), key=lambda kv: -kv[1])[:8]
        },
    }
    busy = summary["gpu_busy_fraction"] or summary["gpu_busy_fraction_profiled"] or 0.0
    if step_ms and memcpy_ms > 0.1 * step_ms:
        verdict = "copy-bound: host<->device copies take more than 10 % of the step"
    elif busy >= 0.9:
        verdict = (
            f"GPU-bound: the device is busy {busy:.0%} of the step "
            f"(GEMMs {summary['gemm_fraction_of_kernel_time'] or 0:.0%} of kernel time)"
        )
    else:
        verdict = (
            f"host-bound: the device idles {1 - busy:.0%} of the step "
            "(kernel launches and Python between them)"
        )
    summary["verdict"] = verdict
    return summary


def _is_gemm(name: str) -> bool:
    lowered = name.lower()
    tags = ("gemm", "gemv", "xmma", "cutlass", "matmul", "nvjet", "ampere_", "sm90")
    return any(tag in lowered for tag in tags)


def part_protein_score(ctx: Context, budget: Budget, out: dict, *, n_draws: int) -> None:
    """Evolutionary index of every single mutant, ``n_draws`` draws, one draw per call."""
    from vae.model import SequenceModel  # noqa: PLC0415

    adata = ctx.protein()
    model = ctx.protein_model
    if model is None:  # protein_train did not run: an untrained model times the same
        arch = "tiny" if ctx.tiny else "eve"
        model = SequenceModel.from_anndata(adata, **_protein_model_kwargs(arch)).to(ctx.device)
        out["model"] = f"untrained {arch} model (protein_train did not run)"
    else:
        out["model"] = f"the fp32 model of protein_train after {ctx.protein_model_steps} steps"
    out["data"] = ctx.data["protein"]
    # warm-up at the scoring batch size (kernel selection, allocator) outside the timing
    model.log_likelihood(np.asarray(adata.X[:2048]), n_samples=1, seed=ctx.seed)
    figures = out["figures"]
    total, seconds, done = None, [], 0
    for draw in range(n_draws):
        if seconds and statistics.mean(seconds) > budget.left():
            mark_cut(out, f"budget reached after {done} of {n_draws} draws")
            break
        started = time.perf_counter()
        table = model.score_single_mutants(n_samples=1, seed=ctx.seed + draw)
        seconds.append(time.perf_counter() - started)
        values = table["evol_index"].to_numpy()
        total = values if total is None else total + values
        done += 1
    mean = total / done
    out |= {
        "n_mutants": int(mean.size),
        "n_draws": done,
        "draw_seconds": seconds,
        "how": "score_single_mutants(n_samples=1, seed=seed+k) per draw, averaged: the "
        "same estimator as n_samples=n_draws (common draws), so the budget can stop it",
        "evol_index_all_finite": bool(np.isfinite(mean).all()),
        "evol_index_mean": float(np.mean(mean)),
    }
    figures["n_mutants"] = int(mean.size)
    figures["n_draws"] = done
    figures["seconds"] = float(sum(seconds))
    figures["seconds_per_draw"] = float(statistics.mean(seconds))
    figures[f"seconds_{n_draws}_draws_projected"] = float(statistics.mean(seconds) * n_draws)


def part_sequence_weights(
    ctx: Context, budget: Budget, out: dict, *, n: int, length: int, probe_n: int
) -> None:
    """Device path against the CPU kernel on a generated ``n x length`` alignment."""
    from vae.data import sequence_weights  # noqa: PLC0415

    started = time.perf_counter()
    codes = generate_alignment(n, length, seed=ctx.seed)
    out["generate_seconds"] = time.perf_counter() - started
    out["alignment"] = {"n": n, "length": length, "generator": "sequence_weights.py"}
    cpu = torch.device("cpu")
    figures, skipped = out["figures"], out["skipped"]

    def timed(rows: np.ndarray, device: torch.device) -> tuple[np.ndarray, float]:
        _sync(device)
        begun = time.perf_counter()
        weights = sequence_weights(rows, theta=0.2, device=device)
        _sync(device)
        return weights, time.perf_counter() - begun

    # compile the numba kernel / start cuBLAS outside the timing
    sequence_weights(codes[:300], theta=0.2, device=ctx.device)
    sequence_weights(codes[:300], theta=0.2, device=cpu)
    cuda = ctx.device.type == "cuda"
    on_device = None
    if cuda:  # the GPU path on the whole alignment
        budget.check("the device path")
        on_device, device_s = timed(codes, ctx.device)
        out["device_path"] = {"n": n, "seconds": device_s, "neff": float(on_device.sum())}
    # the CPU kernel: probe on a subset, project (pairs grow as n^2), cut to what fits
    budget.check("the CPU kernel")
    probe = min(probe_n, n)
    _, probe_s = timed(codes[:probe], cpu)
    projected = probe_s * (n / probe) ** 2
    out["cpu_probe"] = {"n": probe, "seconds": probe_s, "projected_full_seconds": projected}
    compared_n = n
    if projected > 0.8 * budget.left():
        # without CUDA the "device path" is the CPU kernel too: two runs share the rest
        usable = (0.6 if cuda else 0.3) * max(0.0, budget.left())
        compared_n = int(probe * math.sqrt(usable / max(probe_s, 1e-9)))
        compared_n = max(probe, min(n, compared_n))
        mark_cut(
            out,
            f"the CPU kernel would take ~{projected:.0f} s on {n:,} sequences; "
            f"compared on the first {compared_n:,}",
        )
    if on_device is None or compared_n < n:
        on_device, device_s = timed(codes[:compared_n], ctx.device)
    out["device_path"] = out.get("device_path", {}) | {
        "device": str(ctx.device),
        "compared_n": compared_n,
        "compared_seconds": device_s,
        "what": "chunked one-hot products in torch"
        if cuda
        else "no CUDA: sequence_weights(device='cpu') runs the bit-packed kernel",
    }
    on_cpu, cpu_s = timed(codes[:compared_n], cpu)
    out["cpu_kernel"] = {"n": compared_n, "seconds": cpu_s, "neff": float(on_cpu.sum())}
    out["max_abs_difference"] = float(np.max(np.abs(on_device - on_cpu)))
    figures["compared_n"] = compared_n
    figures["device_seconds"] = device_s
    figures["cpu_seconds"] = cpu_s
    figures["identical"] = bool(np.array_equal(on_device, on_cpu))
    figures["neff"] = float(on_cpu.sum())
    if cuda:
        figures["cpu_over_device_time"] = cpu_s / device_s
    else:
        figures["cpu_over_device_time"] = None
        skipped["cpu_over_device_time"] = "no CUDA: both rows ran the CPU kernel"
    if cuda and compared_n < n:
        figures["device_seconds_full"] = out["device_path"]["seconds"]


def part_expression_pbmc3k(
    ctx: Context,
    budget: Budget,
    out: dict,
    *,
    epochs: int,
    warmup_epochs: int,
    seeds: list[int],
    heldout_frac: float = 0.1,
) -> None:
    """s/epoch in fp32 and bf16 and the held-out ELBO after ``epochs`` epochs in both."""
    from vae.model import CountModel  # noqa: PLC0415
    from vae.train import TrainConfig  # noqa: PLC0415

    adata = ctx.pbmc3k()
    out["data"] = ctx.data["pbmc3k"]
    model_kwargs, train_kwargs = _project_settings()  # config/real-data.yaml
    train_kwargs.pop("backed", None)
    # the held-out cells (never trained on), drawn as expression_vs_scvi.py draws them
    order = np.random.default_rng(ctx.seed).permutation(adata.n_obs)
    n_heldout = int(round(adata.n_obs * heldout_frac))
    train = adata[np.sort(order[n_heldout:])].copy()
    heldout = adata[np.sort(order[:n_heldout])].copy()
    n_inner = train.n_obs - int(round(train.n_obs * train_kwargs["validation_frac"]))
    per_epoch = math.ceil(n_inner / train_kwargs["batch_size"])
    out |= {
        "model": model_kwargs,
        "epochs": epochs,
        "steps_per_epoch": per_epoch,
        "n_train_cells": int(train.n_obs),
        "n_heldout_cells": int(heldout.n_obs),
        "heldout_elbo": "nats per held-out cell, full ZINB likelihood, KL weight 1, evaluated "
        "in fp32 on the CPU after training: mean_z at the posterior mean, sampled_z one z per "
        "cell averaged over 5 draws (expression_vs_scvi._heldout_terms)",
        "timing": f"seconds per epoch over epochs {warmup_epochs + 1}-{epochs} of the same run "
        "(validation every 50 steps included)",
    }
    cuda = ctx.device.type == "cuda"
    precisions = ["32", "bf16"] if cuda else ["32"]
    runs = out["runs"] = []
    plan = [(p, s) for p in precisions for s in seeds]
    for index, (precision, seed) in enumerate(plan):
        budget.check(f"the {precision} run with seed {seed}")
        budget_ = budget.share(1 / (len(plan) - index))
        config = TrainConfig(
            **train_kwargs
            | {
                "max_steps": epochs * per_epoch,
                "checkpoint_every": 0,
                "seed": seed,
                "precision": precision,
            }
        )
        model = CountModel.from_anndata(train, **model_kwargs).to(ctx.device)
        ran = stage(
            out,
            f"{precision}_seed{seed}",
            lambda model=model, config=config, budget_=budget_: timed_fit(
                lambda: model.train(train, config),
                ctx.device,
                warmup=warmup_epochs * per_epoch,
                total=epochs * per_epoch,
                budget=budget_,
            ),
        )
        if ran is None:
            runs.append({"precision": precision, "seed": seed, "cut": False, "error": True})
            continue
        result, timing = ran
        run = {"precision": precision, "seed": seed} | timing
        if timing["steps_per_s"]:
            run["seconds_per_epoch"] = per_epoch / timing["steps_per_s"]
        if result is not None:
            run["best_step"] = result.extra["best_step"]
        model.to("cpu")
        run["heldout_elbo_mean_z"] = _heldout_terms(
            model, heldout, sample=False, repeats=1, seed=seed
        )[0]
        run["heldout_elbo_sampled_z"] = _heldout_terms(
            model, heldout, sample=True, repeats=5, seed=seed
        )[0]
        runs.append(run)
        if timing["cut"]:
            mark_cut(out, f"{precision} seed {seed}: {timing['cut_reason']}")

    figures, skipped = out["figures"], out["skipped"]

    def pick(precision: str, key: str) -> list[float]:
        return [r[key] for r in runs if r["precision"] == precision and r.get(key) is not None]

    for precision, label in (("32", "fp32"), ("bf16", "bf16")):
        times = pick(precision, "seconds_per_epoch")
        figures[f"seconds_per_epoch_{label}"] = statistics.median(times) if times else None
        elbos = pick(precision, "heldout_elbo_mean_z")
        figures[f"heldout_elbo_{label}"] = statistics.mean(elbos) if elbos else None
    fp32_elbos = pick("32", "heldout_elbo_mean_z")
    if len(fp32_elbos) > 1:
        out["fp32_seed_spread_nats"] = max(fp32_elbos) - min(fp32_elbos)
    full = all(not r["cut"] and not r.get("error") for r in runs) and len(runs) == len(plan)
    if cuda and full:
        loss = figures["heldout_elbo_fp32"] - figures["heldout_elbo_bf16"]
        figures["bf16_loss_nats_per_cell"] = loss
        figures["bf16_within_0_5_nats"] = loss <= BF16_MAX_LOSS
        out["gate"] = "pass" if loss <= BF16_MAX_LOSS else "FAIL"
    else:
        figures["bf16_loss_nats_per_cell"] = figures["bf16_within_0_5_nats"] = None
        reason = "no CUDA: the trainer autocasts on CUDA only" if not cuda else "a run was cut"
        reason = "a run failed" if out["status"] == "error" else reason
        out["gate"] = f"not decided ({reason})"
        for key in ("bf16_loss_nats_per_cell", "bf16_within_0_5_nats"):
            skipped[key] = reason
        if not cuda:
            skipped["seconds_per_epoch_bf16"] = skipped["heldout_elbo_bf16"] = reason


def part_expression_1m(
    ctx: Context,
    budget: Budget,
    out: dict,
    *,
    n_cells: int,
    n_genes: int,
    pool: int,
    chunk: int,
    batch_size: int,
    warmup_steps: int,
) -> None:
    """Cells/s of one backed epoch of a generated matrix, minibatches and model on the device."""
    import anndata as ad  # noqa: PLC0415

    from vae.model import CountModel  # noqa: PLC0415
    from vae.train import TrainConfig  # noqa: PLC0415

    path = ctx.counts_path(n_cells, n_genes)
    out["path"] = str(path)
    figures = out["figures"]
    if ctx.generation is None and not (ctx.counts_file or _h5ad_shape(path) == (n_cells, n_genes)):
        ctx.start_generation(n_cells=n_cells, n_genes=n_genes, pool=pool, chunk=chunk)
    if ctx.generation is None:
        out["generated"] = f"reused {path}"
        figures["generate_seconds"] = None
        out["skipped"]["generate_seconds"] = "reused an existing file"
    else:
        generation = ctx.generation
        out["generated"] = generation.command
        out["generation_overlapped"] = ctx.overlapped
        # leave a third of the budget for the epoch
        figures["generate_seconds"] = generation.wait(budget.left() - budget.seconds / 3)
        out["generation_waited_seconds"] = budget.elapsed()
        ctx.generation = None
        if ctx.overlapped:
            out["notes"]["generate_seconds"] = "in the background during " + ", ".join(
                ctx.overlapped
            )
    budget.check("the epoch")
    started = time.perf_counter()
    adata = ad.read_h5ad(path, backed="r")
    model_kwargs, _ = _project_settings()
    model = CountModel.from_anndata(adata, **model_kwargs).to(ctx.device)
    out["setup_seconds"] = time.perf_counter() - started  # open + library-size pass
    steps = math.ceil(adata.n_obs / batch_size)
    config = TrainConfig(
        max_steps=steps,
        batch_size=batch_size,
        validation_frac=0.0,
        eval_every=max(1, steps // 10),
        kl_warmup_steps=400,
        checkpoint_every=0,
        seed=ctx.seed,
    )
    started = time.perf_counter()
    _, timing = timed_fit(
        lambda: model.train(adata, config),
        ctx.device,
        warmup=min(warmup_steps, steps - 1),
        total=steps,
        budget=Budget(budget.left()),
    )
    out["epoch_seconds"] = time.perf_counter() - started
    adata.file.close()
    out |= {"n_cells": int(adata.n_obs), "n_genes": int(adata.n_vars), "timing": timing}
    out |= {"model": model_kwargs, "batch_size": batch_size, "steps": steps}
    if timing["cut"]:
        mark_cut(out, f"epoch: {timing['cut_reason']}")
    rate = timing["steps_per_s"]
    figures["n_cells"] = int(adata.n_obs)
    figures["cells_per_s"] = rate * batch_size if rate else None
    figures["epoch_seconds"] = out["epoch_seconds"]


FUNCTIONS = {
    "environment": part_environment,
    "protein_train": part_protein_train,
    "protein_score": part_protein_score,
    "sequence_weights": part_sequence_weights,
    "expression_pbmc3k": part_expression_pbmc3k,
    "expression_1m": part_expression_1m,
}


# --------------------------------------------------------------------------- driver


def _alarm(signum, frame) -> None:
    raise HardStop("hard stop: one operation ran past 1.25 x the part's budget")


def _terminate(signum, frame) -> None:
    raise Terminated()


def run_part(name: str, ctx: Context, budget_s: float, sizes: dict) -> dict:
    """Run one part under its budget; never raises (errors are recorded)."""
    out = {"budget_s": budget_s, "sizes": sizes, "status": "ok", "cut": False}
    out |= {"figures": {}, "skipped": {}, "notes": {}}
    budget = Budget(budget_s)
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    use_alarm = hasattr(signal, "setitimer")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, budget_s + max(5.0, 0.25 * budget_s))
    try:
        FUNCTIONS[name](ctx, budget, out, **sizes)
    except (Cut, HardStop) as err:
        mark_cut(out, str(err))
    except Terminated:
        mark_cut(out, "terminated (SIGTERM): the remaining parts did not run")
        ctx.terminated = True
    except Exception as err:  # noqa: BLE001 - a failed part is reported, the others run
        out["status"] = "error"
        out["error"] = f"{type(err).__name__}: {err}"
        out["traceback"] = traceback.format_exc().splitlines()[-12:]
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    out["seconds"] = budget.elapsed()
    if out["cut"] and out["status"] == "ok":
        out["status"] = "cut"
    if ctx.device.type == "cuda":
        out["gpu_peak_allocated_gib"] = torch.cuda.max_memory_allocated(ctx.device) / 2**30
    return out


def _clean(value, path: str, bad: list[str]):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to ``None`` (listed)."""
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{path}.{k}", bad) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, f"{path}[{i}]", bad) for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(path)
        return None
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def table(report: dict) -> str:
    """The short stdout table: one row per figure, parts' status and notes."""
    env = report["parts"].get("environment", {})
    head = (
        f"gpu_check ({report['mode']}, {report['device']}"
        + (f": {env.get('gpu_name')}, driver {env.get('driver')}" if env.get("gpu_name") else "")
        + f"), torch {report['torch']}, CUDA {report['torch_cuda']}, "
        f"commit {report['git_commit']}, {report['wall_seconds']:.0f} s"
    )
    sources = ", ".join(f"{k} {v.get('source')}" for k, v in report.get("data", {}).items())
    rows = [head, f"data: {sources or '-'}", ""]
    rows.append(f"{'part':<18} {'figure':<32} {'value':>12}  note")
    rows.append("-" * 90)
    for name, part in report["parts"].items():
        status = part["status"] + (f" ({part['seconds']:.0f}/{part['budget_s']:.0f} s)")
        note = part.get("cut_reason") or part.get("skip_reason", "")
        rows.append(f"{name:<18} {'[status]':<32} {status:>12}  {note}")
        if part["status"] == "error":
            rows.append(f"{'':<18} {'error':<32} {'':>12}  {part['error'][:80]}")
        for key, value in part.get("figures", {}).items():
            note = part.get("skipped", {}).get(key) or part.get("notes", {}).get(key, "")
            rows.append(f"{'':<18} {key:<32} {_fmt(value):>12}  {note[:60]}")
        if "verdict" in part:
            rows.append(f"{'':<18} {'verdict':<32} {'':>12}  {part['verdict'][:90]}")
        if "gate" in part:
            rows.append(f"{'':<18} {'bf16 gate (<= 0.5 nats/cell)':<32} {'':>12}  {part['gate']}")
    return "\n".join(rows)


def _drive(name: str, selected: list, ctx: Context, plan: dict, scale: float, report: dict):
    """Run part ``name`` (or mark it not selected); start the background generation after
    the parts that time the CPU, so that it does not slow them."""
    if name not in selected or ctx.terminated:
        report["parts"][name] = {
            "status": "skipped",
            "cut": False,
            "skip_reason": "terminated (SIGTERM)" if ctx.terminated else "not selected (--parts)",
            "figures": {},
            "skipped": {},
            "seconds": 0.0,
            "budget_s": 0.0,
        }
    else:
        sizes = {k: v for k, v in plan[name].items() if k != "budget"}
        budget_s = plan[name]["budget"] * scale
        print(f"[gpu_check] {name} (budget {budget_s:.0f} s) ...", file=sys.stderr, flush=True)
        generating = ctx.generation is not None and ctx.generation.process.poll() is None
        report["parts"][name] = part = run_part(name, ctx, budget_s, sizes)
        print(
            f"[gpu_check] {name}: {part['status']} in {part['seconds']:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        if generating and name != "expression_1m":
            ctx.overlapped.append(name)
    if name == START_GENERATION_AFTER and "expression_1m" in selected:
        ctx.start_generation(**plan["expression_1m"])


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the parts, write the JSON and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the JSON file")
    parser.add_argument("--tiny", action="store_true", help="small sizes (automatic w/o CUDA)")
    parser.add_argument("--full", action="store_true", help="full sizes even without CUDA")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--parts", default=",".join(PARTS), help="comma list of parts")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiplies budgets")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work-dir", type=Path, help="generated files (default: next to --out)")
    parser.add_argument("--counts-file", type=Path, help="an existing matrix for expression_1m")
    parser.add_argument("--threads", type=int, help="torch/numba CPU threads (tiny: 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    tiny = args.tiny or (device.type != "cuda" and not args.full)
    reason = "--tiny" if args.tiny else ("no CUDA" if tiny else None)
    threads = args.threads or (1 if tiny else None)
    if threads:  # tiny models: more threads only add contention on a shared machine
        import numba  # noqa: PLC0415

        torch.set_num_threads(threads)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    selected = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(selected) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    work_dir = args.work_dir or args.out.with_suffix("")
    work_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        device,
        tiny=tiny,
        data_dir=args.data_dir,
        work_dir=work_dir,
        seed=args.seed,
        counts_file=args.counts_file,
    )
    plan = PLANS["tiny" if tiny else "full"]
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    report = {
        "schema": "gpu_check/1",
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "mode": "tiny" if tiny else "full",
        "tiny_reason": reason,
        "device": str(device),
        "seed": args.seed,
        "git_commit": (commit or "unknown") + ("-dirty" if dirty else ""),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "compute": compute_record(),
        "bf16_on_cpu": "skipped: TrainConfig.precision autocasts on CUDA only; "
        "torch.autocast('cpu') around the trainer would also cast the backward pass",
        "plan": plan,
        "parts": {},
    }
    signal.signal(signal.SIGTERM, _terminate)
    try:
        for name in RUN_ORDER:
            try:
                _drive(name, selected, ctx, plan, args.budget_scale, report)
            except Terminated:  # between parts
                ctx.terminated = True
                if name not in report["parts"]:
                    _drive(name, selected, ctx, plan, args.budget_scale, report)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # write the JSON whatever comes
        if ctx.generation is not None:
            ctx.generation.stop()
    report["parts"] = {name: report["parts"][name] for name in PARTS}
    report["data"] = ctx.data
    report["generated_fallback"] = sorted(
        k for k, v in ctx.data.items() if v.get("source") == "generated"
    )
    report["terminated"] = ctx.terminated
    report["wall_seconds"] = time.perf_counter() - started
    with contextlib.suppress(ImportError):
        import resource  # noqa: PLC0415

        report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    non_finite: list[str] = []
    clean = _clean(report, "report", non_finite)
    clean["non_finite"] = non_finite
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n")
    print(table(clean))
    print(f"\nwrote {args.out}", file=sys.stderr)
    failed = any(p["status"] == "error" for p in clean["parts"].values())
    return 1 if failed or ctx.terminated else 0


if __name__ == "__main__":
    sys.exit(main())
