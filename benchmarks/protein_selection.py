"""Scan-free model-selection criteria for the protein VAE, next to the scan they should track.

Trains a protein model (``model.protein`` / ``train.protein`` of ``--preset``, with
``--steps`` and ``--eval-every`` over it) and at every evaluation records, for the
validation sequences of the trainer's split:

- ``val_elbo``: the trainer's held-out ELBO (unweighted mean, what it selects on);
- ``val_elbo_w``: the same ELBO as a mean weighted by the sequence weights, so a cluster
  of near-copies counts once, as it does in training;
- ``mpll`` / ``mpll_w``: the held-out *masked pseudo-log-likelihood*: positions are split
  into ``--folds`` random folds; for each fold the encoder sees the sequence with that
  fold's residues replaced by their expected one-hot under the training profile, and the
  decoder (posterior-mean latent and weights) predicts the hidden residues. Summed over
  the non-gap positions of all folds, per sequence; unweighted and weighted means. A
  variant's score asks the same question: how probable a residue is given the rest;

and the scan's Spearman ρ (or ClinVar AUC) with 4 draws, which no criterion sees. Writes
``curve.tsv`` per seed and prints, for every criterion, the step it would choose and the
ρ / AUC there.

Example (paths relative to the repository root)::

    .venv/bin/python benchmarks/protein_selection.py --name DYR_ECOLI \\
        --alignment ../shared/data/protein/DYR_ECOLI.a2m \\
        --dms ../shared/data/protein/DYR_ECOLI_dms.csv --steps 1500 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _variant_targets import VariantTargets, add_target_arguments

from vae._alphabet import PROTEIN_ALPHABET
from vae._io import read_h5ad
from vae.model import SequenceModel
from vae.model._site_independent import SiteIndependentModel
from vae.steps import preprocess_protein
from vae.train import TrainConfig

GAP = PROTEIN_ALPHABET.index("-")
CRITERIA = ("val_elbo", "val_elbo_w", "mpll", "mpll_w")


@torch.no_grad()
def masked_pseudo_log_likelihood(
    model: SequenceModel,
    codes: np.ndarray,
    profile: np.ndarray,
    folds: np.ndarray,
    chunk: int = 64,
) -> np.ndarray:
    """Per-sequence log-probability of each non-gap residue with its fold hidden.

    Parameters
    ----------
    model
        Trained (or training) protein model.
    codes
        ``(n, L)`` alphabet indices.
    profile
        ``(L, A)`` training frequencies: a hidden position enters the encoder as its
        expected one-hot, ``profile[i] @ W_i``.
    folds
        ``(L,)`` fold number of each position.
    """
    module = model.module.eval()
    layer = module.input_layer
    n_tokens = module.n_tokens
    weight = layer.weight.view(module.n_positions, n_tokens, -1)
    expected = torch.einsum("la,lah->lh", torch.as_tensor(profile, dtype=weight.dtype), weight)
    out = np.zeros(len(codes))
    for start in range(0, len(codes), chunk):
        batch = torch.as_tensor(codes[start : start + chunk]).long()
        full = layer(batch)
        own = weight[torch.arange(module.n_positions), batch]  # (B, L, H)
        delta = expected - own
        total = torch.zeros(len(batch), dtype=torch.float64)
        for fold in np.unique(folds):
            hidden = torch.as_tensor(folds == fold)
            h = full + delta[:, hidden].sum(1)
            qz = module.encoder(module.input_dropout(torch.relu(h)))
            log_p = module.generative(qz.loc, sample=False)["log_probs"]
            picked = log_p.gather(-1, batch.unsqueeze(-1)).squeeze(-1)
            counted = hidden & (batch != GAP)
            total += (picked * counted).sum(1).double()
        out[start : start + chunk] = total.numpy()
    return out


def _weighted_mean(values: np.ndarray, weights: np.ndarray) -> float:
    return float((values * weights).sum() / weights.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--preset", default="config/real-data.yaml")
    parser.add_argument("--train", default="{}", help="JSON of training settings over the preset")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", default="benchmarks/out/protein_selection")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--neighbourhood",
        type=float,
        default=None,
        metavar="IDENTITY",
        help="leave the focus and every sequence at least this identical to it (over the "
        "sequence's non-gap focus columns) out of training; report their held-out ELBO and "
        "masked pseudo-log-likelihood as criteria (elbo_near, mpll_near)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out) / args.name
    out.mkdir(parents=True, exist_ok=True)
    data = out / "preprocessed.h5ad"
    if not data.exists():
        preprocess_protein(args.alignment, data, device="cpu")
    adata = read_h5ad(data)
    preset = yaml.safe_load(Path(args.preset).read_text())
    model_kwargs = preset["model"]["protein"]
    train_kwargs = preset["train"]["protein"] | json.loads(args.train)
    train_kwargs.pop("monitor_draws", None)
    train_kwargs |= {"max_steps": args.steps, "eval_every": args.eval_every}
    train_kwargs |= {"checkpoint_every": 0, "early_stopping_patience": None}
    codes = np.asarray(adata.X)
    weights = adata.obs["weight"].to_numpy()
    probe = SequenceModel.from_anndata(adata, **model_kwargs)
    positions, residues = probe.info["positions"], probe.info["focus_residues"]
    targets = VariantTargets.load(args, positions, residues)
    target = "spearman" if args.dms else "roc_auc"

    def measure(score) -> float:
        return targets.metrics(score)[target]

    folds = np.random.default_rng(12345).permutation(adata.n_vars) % args.folds
    near = np.zeros(len(codes), dtype=bool)
    if args.neighbourhood is not None:
        residue = codes != GAP
        same = (codes == codes[0]) & residue
        near = same.sum(1) >= args.neighbourhood * np.maximum(residue.sum(1), 1)
        print(json.dumps({"neighbourhood": int(near.sum()), "weight": float(weights[near].sum())}))
    criteria = CRITERIA + (("elbo_near", "mpll_near") if near.any() else ())
    choices = []
    for seed in args.seeds:
        config = TrainConfig(**train_kwargs | {"seed": seed})
        model = SequenceModel.from_anndata(adata, **model_kwargs)
        train, val = (t.numpy() for t in model.validation_split(adata, config))
        site = SiteIndependentModel(positions, residues).fit(codes[train], weights[train])
        site_all = site_value = measure(site.score_variants)
        if near.any():  # the baseline of the training that leaves the neighbourhood out
            train, val = train[~near[train]], val[~near[val]]
            split = (torch.as_tensor(train), torch.as_tensor(val))
            model.validation_split = lambda adata, config, split=split: split
            site = SiteIndependentModel(positions, residues).fit(codes[train], weights[train])
            site_value = measure(site.score_variants)
        profile = np.exp(site.log_freq)  # normalised per column
        val_adata = adata[val]
        rows, clock = [], {"start": time.perf_counter(), "monitor": 0.0}

        def monitor(
            model=model, val_adata=val_adata, val=val, rows=rows, clock=clock, profile=profile
        ):
            started = time.perf_counter()
            elbo = model.elbo(val_adata)
            mpll = masked_pseudo_log_likelihood(model, codes[val], profile, folds)
            extra = {}
            if near.any():
                extra["elbo_near"] = _weighted_mean(model.elbo(adata[near]), weights[near])
                extra["mpll_near"] = _weighted_mean(
                    masked_pseudo_log_likelihood(model, codes[near], profile, folds), weights[near]
                )
            row = extra | {
                target: measure(lambda c: model.score_variants(c, n_samples=4)),
                "val_elbo_w": _weighted_mean(elbo, weights[val]),
                "mpll": float(mpll.mean()),
                "mpll_w": _weighted_mean(mpll, weights[val]),
            }
            clock["monitor"] += time.perf_counter() - started
            row["train_seconds"] = time.perf_counter() - clock["start"] - clock["monitor"]
            rows.append(row)
            return row

        result = model.train(adata, config, monitor=monitor)
        curve = result.history.assign(
            seed=seed, site_independent=site_value, site_independent_all=site_all
        )
        curve.to_csv(out / f"curve_seed{seed}.tsv", sep="\t", index=False)
        choice = {"seed": seed, "site_independent": site_value, "site_all": site_all}
        peak = curve.loc[curve[target].idxmax()]
        choice["best"] = {"step": int(peak["step"]), target: float(peak[target])}
        at_200 = curve.loc[curve["step"] == 200, target]
        choice["step_200"] = float(at_200.iloc[0]) if len(at_200) else None
        for criterion in criteria:
            chosen = curve.loc[curve[criterion].idxmax()]
            choice[criterion] = {"step": int(chosen["step"]), target: float(chosen[target])}
        choices.append(choice)
        print(json.dumps(choice), flush=True)
    (out / "choices.json").write_text(json.dumps(choices, indent=1))


if __name__ == "__main__":
    main()
