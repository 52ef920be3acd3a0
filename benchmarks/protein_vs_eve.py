"""Benchmark: CPU training throughput of our protein VAE against EVE's own code (issue 7).

Both sides train on the same alignment (P53 by default) with EVE's preprocessing
defaults (focus columns, sequences with <= 50 % gaps, columns with <= 30 % gaps,
theta = 0.2 sequence weights), at EVE's default architecture: encoder 2000-1000-300,
latent 50, Bayesian decoder 300-1000-2000 with its 40-wide output convolution and
temperature scaler, decoder dropout 0.1, batch 256, Adam with learning rate 1e-4.

* EVE: EVE's own ``VAE_model.train_model`` (its real loop: weighted batch sampling,
  encoder, decoder with sampled weights, its loss, backward, Adam), built from
  ``EVE/default_model_params.json`` of a scratch copy of EVE's code (``--eve-src``,
  never part of this project) and fed by EVE's own ``MSA_processing``.
* ours: ``vae.train.Trainer`` on ``vae.module.SequenceVAE`` fed by
  ``vae.data`` (``read_alignment``, ``encode``, ``sequence_weights``). The EVE-style
  decoder keywords (``bayesian_decoder`` ...) are passed when ``SequenceVAE`` accepts
  them; ``--our-kwargs`` overrides them.

Per-step time: a global optimizer step post-hook stamps ``time.perf_counter()`` after
every ``optimizer.step()``, so a step is the wall time between two consecutive stamps
(batch sampling, forward, loss, backward, optimiser). Warm-up steps are dropped. Each
side runs in its own subprocess with ``torch.set_num_threads(--threads)``, and the
sides alternate (EVE, ours, EVE, ours, ...) so that machine load hits both.
An optional profiling pass per side (``torch.profiler``, separate from the timing
runs) lists the top operators and the time in labelled regions.

Usage::

    python benchmarks/protein_vs_eve.py --eve-src /work/eve_scratch

Results: ``benchmarks/out/protein_vs_eve.json`` and ``.md`` (gitignored).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MSA = REPO.parent / "shared" / "data" / "protein" / "P53_HUMAN_b0.1.a2m"
DEFAULT_OUT = REPO / "benchmarks" / "out"
# EVE's decoder options in our SequenceVAE (keywords of the EVE-style Bayesian decoder)
OUR_EVE_KWARGS = {
    "bayesian_decoder": True,
    "output_conv_depth": 40,
    "temperature_scaler": True,
    "decoder_dropout": 0.1,
}
ENCODER = (2000, 1000, 300)
DECODER = (300, 1000, 2000)
N_LATENT = 50


# --------------------------------------------------------------------------- timing


class StepClock:
    """Stamp the wall clock after every optimiser step of any optimiser."""

    def __init__(self, on_step=None) -> None:
        from torch.optim.optimizer import register_optimizer_step_post_hook  # noqa: PLC0415

        self.stamps: list[float] = []
        self.on_step = on_step
        self._handle = register_optimizer_step_post_hook(self._hook)

    def _hook(self, optimizer, args, kwargs) -> None:
        self.stamps.append(time.perf_counter())
        if self.on_step is not None:
            self.on_step()

    def remove(self) -> None:
        self._handle.remove()

    def step_seconds(self, start: float, warmup: int) -> list[float]:
        """Durations of steps ``warmup+1 ...``, each from the previous step's stamp."""
        stamps = [start, *self.stamps]
        durations = [b - a for a, b in zip(stamps[:-1], stamps[1:], strict=True)]
        return durations[warmup:]


def _param_count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


# --------------------------------------------------------------------------- EVE side


def _eve_setup(args):
    """Load the alignment with EVE's MSA_processing and build EVE's default model."""
    sys.path.insert(0, str(Path(args.eve_src).resolve()))
    from EVE import VAE_model  # noqa: PLC0415
    from utils import data_utils  # noqa: PLC0415

    weights_file = Path(args.out) / f"eve_weights_{Path(args.msa).stem}_theta_{args.theta}.npy"
    weights_file.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):
        data = data_utils.MSA_processing(
            MSA_location=str(args.msa),
            theta=args.theta,
            use_weights=True,
            weights_location=str(weights_file),
        )
    params = json.loads((Path(args.eve_src) / "EVE" / "default_model_params.json").read_text())
    model = VAE_model.VAE_model(
        model_name="benchmark",
        data=data,
        encoder_parameters=params["encoder_parameters"],
        decoder_parameters=params["decoder_parameters"],
        random_seed=42,
    )
    model = model.to(model.device)
    training = params["training_parameters"]
    training.update(
        {
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "num_training_steps": args.warmup + args.steps,
            "use_validation_set": False,
            "log_training_info": False,
            "log_training_freq": 10**9,
            "save_model_params_freq": 10**9,
            "training_logs_location": str(args.out),
            "model_checkpoint_location": str(args.out),
        }
    )
    info = {
        "n_sequences": int(data.num_sequences),
        "n_columns": int(data.seq_len),
        "alphabet_size": int(data.alphabet_size),
        "neff": float(data.Neff),
        "n_parameters": _param_count(model),
        "encoder": params["encoder_parameters"],
        "decoder": params["decoder_parameters"],
        "training_parameters": {k: v for k, v in training.items() if not k.endswith("_location")},
    }
    return model, data, training, info


def _eve_regions(model) -> None:
    """Label EVE's forward pieces for the profiler (wrappers only, maths unchanged)."""
    from torch.profiler import record_function  # noqa: PLC0415

    def label(obj, name, tag):
        fn = getattr(obj, name)

        def wrapped(*a, **k):
            with record_function(tag):
                return fn(*a, **k)

        setattr(obj, name, wrapped)

    label(model.encoder, "forward", "region: encoder forward")
    label(model.decoder, "forward", "region: decoder forward (incl. weight sampling)")
    label(model, "KLD_global_parameters", "region: KL of decoder weights")
    label(model, "beta_vae_loss", "region: loss (incl. KL of decoder weights)")


def _run_eve(args, on_step=None, profile_model=None):
    model, data, training, info = _eve_setup(args)
    if profile_model is not None:
        profile_model(model)
    clock = StepClock(on_step)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        model.train_model(data=data, training_parameters=training)
    clock.remove()
    return clock, start, info


# --------------------------------------------------------------------------- our side


def _our_kwargs(args) -> dict:
    from vae.module import SequenceVAE  # noqa: PLC0415

    if args.our_kwargs is not None:
        return json.loads(args.our_kwargs)
    accepted = inspect.signature(SequenceVAE.__init__).parameters
    return {k: v for k, v in OUR_EVE_KWARGS.items() if k in accepted}


def _our_setup(args):
    import torch  # noqa: PLC0415

    from vae.data._msa import encode, read_alignment, sequence_weights  # noqa: PLC0415
    from vae.module import SequenceVAE  # noqa: PLC0415
    from vae.train import TrainConfig, Trainer  # noqa: PLC0415

    alignment = read_alignment(args.msa)
    codes = encode(alignment.sequences)
    weights = sequence_weights(codes, theta=args.theta)
    kwargs = _our_kwargs(args)
    torch.manual_seed(42)
    module = SequenceVAE(
        codes.shape[1],
        21,
        n_latent=N_LATENT,
        encoder_hidden=ENCODER,
        decoder_hidden=DECODER,
        **kwargs,
    )
    config = TrainConfig(
        max_steps=args.warmup + args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        kl_warmup_steps=0,
        validation_frac=0.0,  # EVE's default: no validation set
        eval_every=10**9,  # the only history row comes after the last (timed) step
        early_stopping_patience=None,
        checkpoint_every=0,
    )
    trainer = Trainer(
        module,
        {"codes": torch.as_tensor(codes)},
        config,
        device=torch.device("cpu"),
        sampling_weights=torch.as_tensor(weights),
    )
    missing = sorted(set(OUR_EVE_KWARGS) - set(kwargs))
    info = {
        "n_sequences": int(codes.shape[0]),
        "n_columns": int(codes.shape[1]),
        "alphabet_size": 21,
        "neff": float(weights.sum()),
        "n_parameters": _param_count(module),
        "sequence_vae_kwargs": kwargs,
        "eve_decoder_keywords_missing": missing,
        "train_config": {
            k: getattr(config, k)
            for k in ("batch_size", "lr", "kl_warmup_steps", "validation_frac", "eval_every")
        },
    }
    return trainer, info


def _our_regions(module) -> None:
    from torch.profiler import record_function  # noqa: PLC0415

    for name, tag in (("encoder", "region: encoder forward"), ("decoder", "region: decoder")):
        sub = getattr(module, name, None)
        if sub is None:
            continue
        fn = sub.forward

        def wrapped(*a, _fn=fn, _tag=tag, **k):
            with record_function(_tag):
                return _fn(*a, **k)

        sub.forward = wrapped


def _run_ours(args, on_step=None, profile_model=None):
    trainer, info = _our_setup(args)
    if profile_model is not None:
        profile_model(trainer.module)
    clock = StepClock(on_step)
    start = time.perf_counter()
    result = trainer.fit()
    clock.remove()
    if not result.history.empty:
        info["final_train_elbo"] = float(result.history["train_elbo"].iloc[-1])
    return clock, start, info


# --------------------------------------------------------------------------- workers


def _label_backward() -> None:
    """Put every ``Tensor.backward`` under a profiler label (instrumentation only)."""
    import torch  # noqa: PLC0415
    from torch.profiler import record_function  # noqa: PLC0415

    original = torch.Tensor.backward

    def backward(self, *a, **k):
        with record_function("region: backward"):
            return original(self, *a, **k)

    torch.Tensor.backward = backward


def worker(args) -> dict:
    """Run one side in this process; return its step times (or its profile)."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    run, regions = (_run_eve, _eve_regions) if args.worker == "eve" else (_run_ours, _our_regions)
    if not args.profile_only:
        clock, start, info = run(args)
        seconds = clock.step_seconds(start, args.warmup)
        if len(seconds) != args.steps:
            raise RuntimeError(f"expected {args.steps} timed steps, got {len(seconds)}")
        return {"side": args.worker, "step_seconds": seconds, "info": info}

    from torch.profiler import ProfilerActivity, profile, schedule  # noqa: PLC0415

    _label_backward()
    warm = max(args.warmup, 1)
    prof = profile(
        activities=[ProfilerActivity.CPU],
        schedule=schedule(wait=warm - 1, warmup=1, active=args.steps, repeat=1),
    )
    with prof:
        _, _, info = run(args, on_step=prof.step, profile_model=regions)
    averages = prof.key_averages()
    rows = []
    for evt in averages:
        rows.append(
            {
                "name": evt.key,
                "count_per_step": evt.count / args.steps,
                "self_ms_per_step": evt.self_cpu_time_total / 1e3 / args.steps,
                "total_ms_per_step": evt.cpu_time_total / 1e3 / args.steps,
            }
        )
    regions_rows = sorted(
        (
            r
            for r in rows
            if r["name"].startswith("region: ") or r["name"].startswith("Optimizer.")
        ),
        key=lambda r: -r["total_ms_per_step"],
    )
    top = sorted(
        (r for r in rows if not r["name"].startswith("region: ")),
        key=lambda r: -r["self_ms_per_step"],
    )[: args.top]
    return {
        "side": args.worker,
        "profiled_steps": args.steps,
        "self_ms_per_step_all_ops": sum(r["self_ms_per_step"] for r in rows),
        "regions": regions_rows,
        "top_ops": top,
        "table": averages.table(sort_by="self_cpu_time_total", row_limit=args.top),
        "info": info,
    }


def _child(args, side: str, *, profile_steps: int | None = None) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        side,
        "--msa",
        str(args.msa),
        "--theta",
        str(args.theta),
        "--threads",
        str(args.threads),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--warmup",
        str(args.warmup),
        "--steps",
        str(profile_steps or args.steps),
        "--out",
        str(args.out),
        "--top",
        str(args.top),
    ]
    if args.eve_src:
        cmd += ["--eve-src", str(args.eve_src)]
    if args.our_kwargs is not None:
        cmd += ["--our-kwargs", args.our_kwargs]
    if profile_steps:
        cmd.append("--profile-only")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = Path(args.out) / f"protein_vs_eve_{side}{'_profile' if profile_steps else ''}.log"
    started = time.perf_counter()
    with open(log, "a") as err:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} worker failed (exit {proc.returncode}); see {log}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------- report


def flops_per_step(n_columns: int, alphabet: int, batch: int, conv_depth: int = 40) -> dict:
    """Matrix-multiply FLOPs (2 per multiply-add) of one training step.

    Forward: encoder L*A-2000-1000-300-(50, 50), decoder 50-300-1000-2000-L*A. Backward:
    twice the forward of each batch product, except the first encoder layer (no input
    gradient). The output convolution can be folded into the weight first, as EVE does
    (``(L*2000 x 40) @ (40 x A)`` once per step, then a ``2000 -> L*A`` product), or applied
    per example (``2000 -> 40*L`` then ``40 -> A`` at each position); both are listed.
    """
    la = n_columns * alphabet
    enc = [(la, ENCODER[0]), (ENCODER[0], ENCODER[1]), (ENCODER[1], ENCODER[2])]
    enc += [(ENCODER[2], N_LATENT)] * 2
    dec = [(N_LATENT, DECODER[0]), (DECODER[0], DECODER[1]), (DECODER[1], DECODER[2])]
    body_fwd = sum(2 * batch * i * o for i, o in enc + dec)
    first_layer = 2 * batch * la * ENCODER[0]
    h = DECODER[-1]
    # EVE's order: fold the convolution into the weight, then one 2000 -> L*A product
    fold = 2 * n_columns * h * conv_depth * alphabet
    out_folded = 2 * batch * h * la
    folded_fwd = body_fwd + fold + out_folded
    folded = 3 * (body_fwd + out_folded) - first_layer + 3 * fold
    # per-example order: 2000 -> 40*L, then 40 -> A at each position
    per_example = (
        2 * batch * h * n_columns * conv_depth + 2 * batch * n_columns * conv_depth * alphabet
    )
    unfolded = 3 * (body_fwd + per_example) - first_layer
    no_conv = 3 * (body_fwd + out_folded) - first_layer
    return {
        "n_columns": n_columns,
        "alphabet": alphabet,
        "batch": batch,
        "forward_gflop_eve_order": folded_fwd / 1e9,
        "step_gflop_eve_order": folded / 1e9,
        "step_gflop_conv_per_example": unfolded / 1e9,
        "step_gflop_without_conv": no_conv / 1e9,
    }


def _machine() -> dict:
    model = platform.processor() or platform.machine()
    with contextlib.suppress(Exception):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    import numpy  # noqa: PLC0415
    import torch  # noqa: PLC0415

    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "git_commit": commit + ("-dirty" if dirty else ""),
    }


def _summary(runs: list[dict], batch: int) -> dict:
    seconds = [s for r in runs for s in r["step_seconds"]]
    per_run = [statistics.median(r["step_seconds"]) for r in runs]
    median = statistics.median(seconds)
    return {
        "seconds_per_step_median": median,
        "seconds_per_step_mean": statistics.fmean(seconds),
        "seconds_per_step_min": min(seconds),
        "seconds_per_step_max": max(seconds),
        "sequences_per_second": batch / median,
        "per_repeat_median": per_run,
        "n_timed_steps": len(seconds),
        "step_seconds": [r["step_seconds"] for r in runs],
    }


def _markdown(report: dict) -> str:
    m, s = report["machine"], report["sides"]
    lines = [
        "# Protein VAE training throughput: ours vs EVE (CPU)",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['cpu_model']}, {m['cpu_count']} CPUs "
        f"({m['affinity']} usable), torch {m['torch']}, numpy {m['numpy']}, "
        f"Python {m['python']}, threads per side {report['settings']['threads']}",
        f"- project commit: {m['git_commit']}",
        f"- data: {report['settings']['msa']}",
        f"- {report['settings']['warmup']} warm-up + {report['settings']['steps']} timed steps "
        f"per run, {report['settings']['repeats']} runs per side, interleaved "
        + ", ".join(report["order"]),
        "",
        "| side | L x A | sequences (Neff) | parameters | s/step (median) | mean | min "
        "| sequences/s | GFLOP/s (EVE-order FLOPs) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for side in ("eve", "ours"):
        if side not in s:
            continue
        x = s[side]
        i = x["info"]
        lines.append(
            f"| {side} | {i['n_columns']} x {i['alphabet_size']} | {i['n_sequences']} "
            f"({i['neff']:.1f}) | {i['n_parameters']:,} | {x['seconds_per_step_median']:.3f} "
            f"| {x['seconds_per_step_mean']:.3f} | {x['seconds_per_step_min']:.3f} "
            f"| {x['sequences_per_second']:.1f} | {x['achieved_gflop_per_s']:.1f} |"
        )
    if "ratio_eve_over_ours" in report:
        r = report["ratio_eve_over_ours"]
        lines += [
            "",
            f"**Speed-up (EVE time / our time): {r['median']:.2f}x median, "
            f"{r['mean']:.2f}x mean; per interleaved pair: "
            + ", ".join(f"{v:.2f}x" for v in r["per_pair"])
            + "**",
        ]
    if s.get("ours", {}).get("info", {}).get("eve_decoder_keywords_missing"):
        lines += [
            "",
            "NOTE: our SequenceVAE does not accept "
            + ", ".join(s["ours"]["info"]["eve_decoder_keywords_missing"])
            + " in this checkout; our side ran WITHOUT the Bayesian decoder, so the ratio "
            "compares different models.",
        ]
    f = report["flops"]
    lines += [
        "",
        "## FLOPs per step (matrix products, 2 per multiply-add)",
        "",
        "| count | L x A | GFLOP/step |",
        "| --- | --- | --- |",
    ]
    for key, x in f.items():
        lines += [
            f"| {key}: EVE's order (conv folded into the weight) | {x['n_columns']} x "
            f"{x['alphabet']} | {x['step_gflop_eve_order']:.1f} |",
            f"| {key}: convolution applied per example | {x['n_columns']} x {x['alphabet']} "
            f"| {x['step_gflop_conv_per_example']:.1f} |",
            f"| {key}: without output convolution | {x['n_columns']} x {x['alphabet']} "
            f"| {x['step_gflop_without_conv']:.1f} |",
        ]
    for side, p in report.get("profiles", {}).items():
        lines += [
            "",
            f"## Profile: {side} ({p['profiled_steps']} steps, ms per step)",
            "",
            "| region | total ms/step |",
            "| --- | --- |",
        ]
        lines += [f"| {r['name']} | {r['total_ms_per_step']:.1f} |" for r in p["regions"]]
        lines += [
            "",
            "| op | calls/step | self ms/step | total ms/step |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['name']} | {r['count_per_step']:.0f} | {r['self_ms_per_step']:.1f} "
            f"| {r['total_ms_per_step']:.1f} |"
            for r in p["top_ops"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments; run a worker, or the interleaved comparison and its report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eve-src", help="scratch copy of EVE's code (EVE/, utils/)")
    parser.add_argument("--msa", type=Path, default=DEFAULT_MSA)
    parser.add_argument("--theta", type=float, default=0.2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, interleaved")
    parser.add_argument("--profile-steps", type=int, default=3, help="0 skips profiling")
    parser.add_argument("--top", type=int, default=15, help="profiler rows")
    parser.add_argument(
        "--our-kwargs", help="JSON of SequenceVAE keywords (default: EVE's decoder options)"
    )
    parser.add_argument("--sides", default="eve,ours", help="comma list of eve, ours")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=["eve", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--profile-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.msa = args.msa.resolve()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.worker:
        if args.worker == "eve" and not args.eve_src:
            parser.error("the EVE side needs --eve-src")
        print(json.dumps(worker(args)))
        return

    sides = [s for s in args.sides.split(",") if s]
    if "eve" in sides and not args.eve_src:
        print("no --eve-src: measuring our side only", file=sys.stderr)
        sides.remove("eve")
    for side in sides:
        (args.out / f"protein_vs_eve_{side}.log").write_text("")
        (args.out / f"protein_vs_eve_{side}_profile.log").write_text("")
    runs: dict[str, list[dict]] = {s: [] for s in sides}
    order = []
    for rep in range(args.repeats):
        for side in sides:
            result = _child(args, side)
            runs[side].append(result)
            order.append(side)
            med = statistics.median(result["step_seconds"])
            print(
                f"[{rep + 1}/{args.repeats}] {side}: {med:.3f} s/step median "
                f"({args.batch_size / med:.1f} seq/s), process {result['process_seconds']:.0f} s",
                file=sys.stderr,
            )

    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "machine": _machine(),
        "settings": {
            "msa": str(args.msa),
            "theta": args.theta,
            "threads": args.threads,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "warmup": args.warmup,
            "steps": args.steps,
            "repeats": args.repeats,
            "eve_src": args.eve_src,
            "step_definition": "wall time between consecutive optimizer.step() post-hooks",
        },
        "order": order,
        "sides": {},
        "flops": {},
    }
    for side in sides:
        info = runs[side][0]["info"]
        summary = _summary(runs[side], args.batch_size)
        flops = flops_per_step(info["n_columns"], info["alphabet_size"], args.batch_size)
        report["flops"][side] = flops
        summary["achieved_gflop_per_s"] = (
            flops["step_gflop_eve_order"] / summary["seconds_per_step_median"]
        )
        report["sides"][side] = summary | {"info": info}
    if {"eve", "ours"} <= set(sides):
        eve, ours = report["sides"]["eve"], report["sides"]["ours"]
        report["ratio_eve_over_ours"] = {
            "median": eve["seconds_per_step_median"] / ours["seconds_per_step_median"],
            "mean": eve["seconds_per_step_mean"] / ours["seconds_per_step_mean"],
            "per_pair": [
                e / o
                for e, o in zip(eve["per_repeat_median"], ours["per_repeat_median"], strict=True)
            ],
        }
    if args.profile_steps > 0:
        report["profiles"] = {}
        for side in sides:
            prof = _child(args, side, profile_steps=args.profile_steps)
            report["profiles"][side] = prof
            print(f"--- profile: {side} ---\n{prof['table']}", file=sys.stderr)

    json_path = args.out / "protein_vs_eve.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md = _markdown(report)
    (args.out / "protein_vs_eve.md").write_text(md)
    print(md)
    print(f"wrote {json_path} and {json_path.with_suffix('.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
