"""EVmutation-style Potts model on the VAE's alignment, next to the site-independent model.

Fits fields ``h_i(a)`` and couplings ``J_ij(a, b)`` over the 21 states (20 amino acids and
the gap) of the kept columns of the same preprocessed alignment as
``benchmarks/protein_dms.py`` (the cached ``.h5ad``: focus columns, gap filters, weights
theta 0.2) by maximising the weighted pseudo-likelihood as plmc does (Hopf et al. 2017,
``debbiemarkslab/plmc``, ``src/inference.c`` ``PLMNegLogPosterior``)::

    f(h, J) = sum_s w_s sum_i -log P(x_si | x_s,-i) + lambda_h sum_i |h_i|^2
              + lambda_J sum_{i<j} |J_ij|^2

with ``P(x_i = a | x_-i) ~ exp(h_i(a) + sum_{j != i} J_ij(a, x_j))``. The weights sum to
Neff and the penalties are not scaled by it, so the prior's weight relative to the data is
``lambda / Neff`` per effective sequence, as in plmc; the script minimises ``f / Neff``
(the same minimiser, better conditioned). ``lambda_J`` is given as ``--couplings`` specs:
a plain number is plmc's ``-le`` as is (its README fits DHFR with ``-le 16``), a number
with the suffix ``xLq`` is multiplied by ``(q - 1)(L - 1)`` as EVcouplings does with
``lambda_J_times_Lq`` (its default ``lambda_J`` 0.01, ``lambda_h`` 0.01, q = 21 with
gaps; 20 under ``--ignore-gaps``, plmc's ``-g``, where a gap is neither predicted nor a
neighbour). Optimiser: torch's L-BFGS with a strong-Wolfe line search and 6 correction
pairs (liblbfgs's default), started from plmc's fields ``log(Neff f_i(a) + 1)`` in the
zero-sum gauge and ``J = 0``, stopped by liblbfgs's test as plmc runs it,
``|grad f| / max(1, |x|) < 1e-3`` on the unnormalised ``f``, or at ``--max-iter`` (plmc's
README and EVcouplings run 100 iterations). The variants are scored during the fit at
``--report-at`` iterations, so the history shows whether the figures have settled.

A variant's score is the energy difference ``E(wild type) - E(variant)`` with
``E(x) = sum_i h_i(x_i) + sum_{i<j} J_ij(x_i, x_j)`` (for a single mutant
``-[h_i(a') - h_i(a) + sum_{j != i} J_ij(a', x_j) - J_ij(a, x_j)]``), higher = more damaging
like the VAE's ``evol_index``. Also reported: the fields alone of the same fit, in the
fit's own (L2-fixed) gauge and in the zero-sum gauge, and the project's
:class:`~vae.model._site_independent.SiteIndependentModel` (pseudocount 1) fit on the same
sequences and weights and scored on the same variants. Metrics are the project's
(:func:`~vae.metrics.scan_spearman`, :func:`~vae.metrics.variant_auc`). Writes one JSON
per fit (``fit_<spec>.json``, its per-iteration ``fit_<spec>_history.tsv`` and the
variants' scores ``scores_<spec>.csv``, higher = more damaging) and ``summary.json`` (all
fits of the family) under ``--out/<name>/``. One fit of DHFR (L 155) takes 1-2 s per
iteration on one AVX-512 core, P53 (L 329) about 4 times that.

Example (paths relative to the repository root)::

    .venv/bin/python benchmarks/protein_potts.py --name DYR_ECOLI \\
        --alignment ../shared/data/protein/DYR_ECOLI.a2m \\
        --dms ../shared/data/protein/DYR_ECOLI_dms.csv --couplings 0.01xLq 16
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _variant_targets import VariantTargets, add_target_arguments

from vae._alphabet import GAP as GAP_SYMBOL
from vae._alphabet import PROTEIN_ALPHABET
from vae._io import read_h5ad
from vae.data._mutants import focus_codes
from vae.model._site_independent import SiteIndependentModel
from vae.provenance import cpu_capability
from vae.steps import preprocess_protein

log = logging.getLogger("protein_potts")
GAP = PROTEIN_ALPHABET.index(GAP_SYMBOL)


def coupling_lambda(spec: str, n_columns: int, n_states: int) -> float:
    """plmc's ``lambda_e`` from a spec: ``16`` as is, ``0.01xLq`` times ``(q - 1)(L - 1)``.

    Parameters
    ----------
    spec
        A number, optionally followed by ``xLq``.
    n_columns, n_states
        ``L`` and ``q`` of the model.

    Returns
    -------
    float
        The coupling penalty ``lambda_J`` of the objective.
    """
    if spec.endswith("xLq"):
        return float(spec[:-3]) * (n_states - 1) * (n_columns - 1)
    return float(spec)


class PottsModel:
    """Pairwise Potts model of an alignment fit by L2-penalised pseudo-likelihood (plmc).

    Parameters
    ----------
    n_columns
        Number of alignment columns ``L``.
    n_states
        Number of states ``q`` (21: the amino acids and the gap).
    dtype
        Torch dtype of the objective's tensors.
    ignore_gaps
        plmc's ``-g``: a gap is neither predicted nor a neighbour, so the conditionals run
        over the 20 amino acids and the gap's fields and couplings stay at 0.

    Attributes
    ----------
    h : numpy.ndarray
        Fields ``(L, q)`` after :meth:`fit`.
    couplings : numpy.ndarray
        Couplings ``(L, q, L, q)``, ``couplings[i, a, j, b] = J_ij(a, b)``, symmetric,
        zero for ``i == j``.
    """

    def __init__(
        self,
        n_columns: int,
        n_states: int,
        *,
        dtype: torch.dtype = torch.float32,
        ignore_gaps: bool = False,
    ):
        self.n_columns, self.n_states, self.dtype = n_columns, n_states, dtype
        self.ignore_gaps = ignore_gaps
        self.pair_i, self.pair_j = np.triu_indices(n_columns, k=1)
        # flat positions in the (L q, L q) matrix of J_ij(a, b) (upper) and J_ji(b, a) (lower)
        lq, a = n_columns * n_states, np.arange(n_states)
        row = (self.pair_i * n_states)[:, None, None] + a[None, :, None]
        col = (self.pair_j * n_states)[:, None, None] + a[None, None, :]
        self._upper = torch.as_tensor((row * lq + col).ravel())
        self._lower = torch.as_tensor((col * lq + row).ravel())
        self.h: np.ndarray | None = None
        self.couplings: np.ndarray | None = None

    @property
    def n_params(self) -> int:
        """Number of free parameters: ``L q`` fields and ``L (L - 1) / 2 q^2`` couplings."""
        return self.n_columns * self.n_states + self.pair_i.size * self.n_states**2

    def _full(self, pairs: torch.Tensor, *, extra_row: bool = False) -> torch.Tensor:
        """``(L q, L q)`` coupling matrix from the flat couplings of the pairs ``i < j``.

        With ``extra_row`` a last row of zeros follows, ``(L q + 1, L q)``: the row that
        ignored neighbours (gaps under ``ignore_gaps``) point to.
        """
        lq = self.n_columns * self.n_states
        full = pairs.new_zeros((lq + extra_row) * lq)
        full[self._upper] = pairs
        full[self._lower] = pairs
        return full.view(-1, lq)

    def _offsets(self, codes: np.ndarray) -> torch.Tensor:
        """Row index ``j q + x_j`` of every column's state, for ``embedding_bag``."""
        return torch.as_tensor(codes.astype(np.int64) + np.arange(self.n_columns) * self.n_states)

    def objective(
        self, codes: np.ndarray, weights: np.ndarray, *, lambda_h: float, lambda_j: float
    ) -> tuple[Callable, torch.Tensor, dict]:
        """plmc's penalised negative pseudo-log-likelihood, divided by Neff, and its start.

        Parameters
        ----------
        codes, weights, lambda_h, lambda_j
            As :meth:`fit`.

        Returns
        -------
        objective : callable
            ``objective(x)`` of the flat parameters ``x`` (fields, then the couplings of the
            pairs ``i < j``) returns ``f / Neff``, its gradient, and the likelihood and
            penalty terms of ``f``.
        x0 : torch.Tensor
            plmc's start: ``h_i(a) = log(Neff f_i(a) + 1)`` in the zero-sum gauge, ``J = 0``.
        stats : dict
            ``neff``, ``n_sequences`` and ``n_unique_sequences`` (duplicates are merged
            and their weights summed, which leaves the objective unchanged).
        """
        n, q = self.n_columns, self.n_states
        unique, inverse = np.unique(codes, axis=0, return_inverse=True)
        w_unique = np.bincount(inverse.ravel(), weights=np.asarray(weights, np.float64))
        neff = float(w_unique.sum())
        offsets = self._offsets(unique)
        target = torch.as_tensor(unique.astype(np.int64))
        w = torch.as_tensor(w_unique, dtype=self.dtype)[:, None].expand(-1, n)
        minus_one = torch.full(target.shape + (1,), -1.0, dtype=self.dtype)
        n_fields = n * q
        gap_logit = torch.zeros(q, dtype=self.dtype)
        if self.ignore_gaps:  # a gap is no neighbour (the zero row) and no target (weight 0)
            is_gap = target == GAP
            offsets = torch.where(is_gap, n * q, offsets)
            w = torch.where(is_gap, 0.0, w)
            target = torch.where(is_gap, 0, target)
            gap_logit[GAP] = -torch.inf

        # plmc's start: h_i(a) = log(Neff f_i(a) + 1), zero-sum gauge; J = 0
        counts = np.stack([(w_unique[:, None] * (unique == a)).sum(0) for a in range(q)], 1)
        h0 = np.log(counts + 1.0)
        if self.ignore_gaps:
            h0[:, GAP] = np.nan
        h0 = np.nan_to_num(h0 - np.nanmean(h0, 1, keepdims=True))
        x0 = torch.zeros(self.n_params, dtype=self.dtype)
        x0[:n_fields] = torch.as_tensor(h0.ravel())

        def objective(x: torch.Tensor) -> tuple[float, torch.Tensor, float, float]:
            """``f / Neff``, its gradient, and the likelihood and penalty terms of ``f``."""
            # value and gradient by hand: autograd's embedding_bag backward is 2x slower
            h, pairs = x[:n_fields].view(n, q), x[n_fields:]
            full = self._full(pairs, extra_row=True)
            field = torch.nn.functional.embedding_bag(offsets, full, mode="sum")
            log_p = torch.log_softmax(field.view(-1, n, q) + h + gap_logit, -1)
            nll = -(w * log_p.gather(2, target[..., None])[..., 0]).double().sum().item()
            # d nll / d logits = w_s (P_si(a) - [x_si = a])
            grad_logits = log_p.exp_().scatter_add_(2, target[..., None], minus_one)
            grad_logits = grad_logits.mul_(w[..., None]).view(-1, n * q)
            grad_full = torch.zeros(n * q + 1, n * q, dtype=self.dtype)
            for j in range(n):  # row j q + x_sj collects sequence s's gradient
                grad_full.index_add_(0, offsets[:, j], grad_logits)
            grad_full = grad_full.view(-1)
            grad = torch.empty_like(x)
            grad[:n_fields] = grad_logits.sum(0) + 2 * lambda_h * x[:n_fields]
            torch.add(grad_full[self._upper], grad_full[self._lower], out=grad[n_fields:])
            grad[n_fields:] += 2 * lambda_j * x[n_fields:]
            penalty = lambda_h * x[:n_fields].double().square().sum().item()
            penalty += lambda_j * x[n_fields:].double().square().sum().item()
            return (nll + penalty) / neff, grad.div_(neff), nll, penalty

        stats = {
            "neff": neff,
            "n_sequences": int(codes.shape[0]),
            "n_unique_sequences": int(unique.shape[0]),
        }
        return objective, x0, stats

    def fit(
        self,
        codes: np.ndarray,
        weights: np.ndarray,
        *,
        lambda_h: float,
        lambda_j: float,
        max_iter: int = 1000,
        epsilon: float = 1e-3,
        history_size: int = 6,
        on_iteration: Callable[[int, PottsModel], dict] | None = None,
        report_at: set[int] | None = None,
    ) -> dict:
        """Minimise the penalised negative pseudo-log-likelihood by L-BFGS.

        Parameters
        ----------
        codes
            ``(N, L)`` alphabet indices of the sequences.
        weights
            ``(N,)`` sequence weights (their sum is Neff).
        lambda_h, lambda_j
            L2 penalties of fields and couplings (plmc's ``-lh`` and ``-le``).
        max_iter
            Iteration limit.
        epsilon
            liblbfgs's stopping test ``|grad| / max(1, |x|) < epsilon`` on plmc's
            (unnormalised) objective.
        history_size
            L-BFGS correction pairs (liblbfgs's default 6).
        on_iteration
            Called as ``on_iteration(k, self)`` with the current parameters loaded at the
            iterations in ``report_at``; its dict goes into the returned history.
        report_at
            Iterations at which to call ``on_iteration`` (the last one always is).

        Returns
        -------
        dict
            Iterations, evaluations, seconds, stopping reason, final objective terms and
            ``history`` (one row per iteration).
        """
        objective, x0, stats = self.objective(codes, weights, lambda_h=lambda_h, lambda_j=lambda_j)
        x, neff, n_fields = torch.nn.Parameter(x0), stats["neff"], self.n_columns * self.n_states

        # torch's L-BFGS runs one iteration per step; the evaluation a step starts with is
        # the accepted point of the previous line search, so it is looked up, not repeated
        evaluated: list[tuple[torch.Tensor, tuple]] = []
        n_eval = 0

        def closure() -> torch.Tensor:
            nonlocal n_eval
            value = next((v for point, v in evaluated if torch.equal(point, x.data)), None)
            if value is None:
                value = objective(x.data)
                evaluated.append((x.data.clone(), value))
                n_eval += 1
            x.grad = value[1].clone()
            return torch.tensor(value[0], dtype=torch.float64)

        optimizer = torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=1,
            max_eval=25,
            tolerance_grad=-1.0,
            tolerance_change=1e-12,
            history_size=history_size,
            line_search_fn="strong_wolfe",
        )
        history: list[dict] = []
        report_at = set(report_at or ())
        started = time.perf_counter()
        reason, k, previous = "max_iter", 0, float("inf")
        for k in range(1, max_iter + 1):
            optimizer.step(closure)
            evaluated[:] = [e for e in evaluated if torch.equal(e[0], x.data)]
            if not evaluated:  # the line search returned a point it did not evaluate
                evaluated.append((x.data.clone(), objective(x.data)))
                n_eval += 1
            loss, grad, nll, penalty = evaluated[0][1]
            x_norm = x.data.double().norm().item()
            criterion = neff * grad.double().norm().item() / max(1.0, x_norm)
            row = {
                "iter": k,
                "n_eval": n_eval,
                "seconds": time.perf_counter() - started,
                "objective": loss,
                "nll_per_neff": nll / neff,
                "h_norm": x.data[:n_fields].double().norm().item(),
                "j_norm": x.data[n_fields:].double().norm().item(),
                "criterion": criterion,
            }
            if criterion < epsilon:
                reason = f"converged (|g|/max(1,|x|) < {epsilon:g})"
            elif loss >= previous:
                reason = "no decrease (line search failed)"
            if on_iteration is not None and (
                k in report_at or k == max_iter or reason != "max_iter"
            ):
                self._load(x.data.double().numpy())
                row |= on_iteration(k, self)
            history.append(row)
            log.info(" ".join(f"{key}={value:.4g}" for key, value in row.items()))
            previous = loss
            if reason != "max_iter":
                break
        seconds = time.perf_counter() - started
        self._load(x.data.double().numpy())
        return {
            "iterations": k,
            "evaluations": n_eval,
            "seconds": seconds,
            "stop": reason,
            "objective": loss,
            "nll_per_neff": nll / neff,
            "penalty_per_neff": penalty / neff,
            **stats,
            "history": history,
        }

    def _load(self, x: np.ndarray) -> None:
        n, q = self.n_columns, self.n_states
        self.h = x[: n * q].reshape(n, q).copy()
        self.couplings = self._full(torch.as_tensor(x[n * q :])).view(n, q, n, q).numpy()

    def energy(self, codes: np.ndarray) -> np.ndarray:
        """``E(x) = sum_i h_i(x_i) + sum_{i<j} J_ij(x_i, x_j)`` of each row of ``codes``."""
        n, q = self.n_columns, self.n_states
        full = torch.as_tensor(self.couplings.reshape(n * q, n * q))
        field = torch.nn.functional.embedding_bag(self._offsets(codes), full, mode="sum")
        index = torch.as_tensor(codes.astype(np.int64))[..., None]
        pair = field.view(-1, n, q).gather(2, index)[..., 0].sum(1).numpy()
        single = self.h[np.arange(n), codes.astype(np.int64)].sum(1)
        return single + 0.5 * pair

    def score_variants(self, codes: np.ndarray, focus_residues: str) -> np.ndarray:
        """``E(wild type) - E(variant)``: higher = more damaging, as ``evol_index``."""
        return self.energy(focus_codes(focus_residues)[None])[0] - self.energy(codes)

    def zero_sum_fields(self) -> np.ndarray:
        """Fields in the zero-sum (Ising) gauge, which moves the couplings' means into them."""
        coupling_mean = self.couplings.mean(3)  # (L, q, L): mean over b of J_ij(a, b)
        coupling_mean = coupling_mean - coupling_mean.mean(1, keepdims=True)
        fields = self.h - self.h.mean(1, keepdims=True)
        return fields + coupling_mean.sum(2)

    @staticmethod
    def score_fields(fields: np.ndarray, codes: np.ndarray, focus_residues: str) -> np.ndarray:
        """``sum_i h_i(wt_i) - h_i(x_i)`` of each variant: the fields alone."""
        columns = np.arange(fields.shape[0])
        wild_type = fields[columns, focus_codes(focus_residues).astype(np.int64)].sum()
        return wild_type - fields[columns, codes.astype(np.int64)].sum(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_target_arguments(parser)
    parser.add_argument("--theta", type=float, default=0.2, help="sequence-weight identity")
    parser.add_argument(
        "--cache",
        default="benchmarks/out/protein_dms",
        help="folder of protein_dms.py's preprocessed alignments (reused, or written there)",
    )
    parser.add_argument("--lambda-h", type=float, default=0.01)
    parser.add_argument(
        "--couplings",
        nargs="+",
        default=["0.01xLq"],
        help="lambda_J specs, one fit each: a number (plmc's -le) or e.g. 0.01xLq "
        "(times (q-1)(L-1), EVcouplings' lambda_J_times_Lq)",
    )
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--epsilon", type=float, default=1e-3)
    parser.add_argument(
        "--report-at",
        type=int,
        nargs="*",
        default=[10, 25, 50, 100, 150, 200, 300, 400, 600, 800],
        help="iterations at which the variants are scored during the fit",
    )
    parser.add_argument(
        "--ignore-gaps",
        action="store_true",
        help="plmc's -g: gaps are neither predicted nor neighbours (q - 1 = 19 in xLq)",
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/out/protein_potts")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    data = Path(args.cache) / args.name / f"preprocessed_theta{args.theta}.h5ad"
    if not data.exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        preprocess_protein(args.alignment, data, theta=args.theta, device="cpu")
    adata = read_h5ad(data)
    codes = np.asarray(adata.X).astype(np.int64)
    weights = adata.obs["weight"].to_numpy().astype(np.float64)
    positions = adata.var["position"].astype(int).tolist()
    residues = "".join(adata.var["wt"])
    n_columns, n_states = codes.shape[1], len(PROTEIN_ALPHABET)

    targets = VariantTargets.load(args, positions, residues)
    metrics = targets.metrics

    site = SiteIndependentModel(positions, residues).fit(codes, weights)
    site_metrics = metrics(site.score_variants)
    counts = targets.counts()
    log.info("site-independent %s, variants %s", site_metrics, counts)

    def all_metrics(model: PottsModel) -> dict[str, float]:
        out = {
            f"potts_{k}": v
            for k, v in metrics(lambda c: model.score_variants(c, residues)).items()
        }
        for gauge, fields in (("native", model.h), ("zero_sum", model.zero_sum_fields())):
            scores = metrics(lambda c, f=fields: PottsModel.score_fields(f, c, residues))
            out |= {f"fields_{gauge}_{k}": v for k, v in scores.items()}
        return out

    out = Path(args.out) / args.name
    out.mkdir(parents=True, exist_ok=True)
    for spec in args.couplings:
        lambda_j = coupling_lambda(spec, n_columns, n_states - args.ignore_gaps)
        log.info(
            "fit %s: L %d, q %d, lambda_h %g, lambda_J %g",
            spec,
            n_columns,
            n_states,
            args.lambda_h,
            lambda_j,
        )
        model = PottsModel(
            n_columns, n_states, dtype=getattr(torch, args.dtype), ignore_gaps=args.ignore_gaps
        )
        fit = model.fit(
            codes,
            weights,
            lambda_h=args.lambda_h,
            lambda_j=lambda_j,
            max_iter=args.max_iter,
            epsilon=args.epsilon,
            on_iteration=lambda k, m: all_metrics(m),
            report_at=set(args.report_at),
        )
        history = fit.pop("history")
        final = all_metrics(model)
        tag = spec.replace(".", "p") + ("_ignore_gaps" if args.ignore_gaps else "")
        zero_sum = model.zero_sum_fields()
        tables = []
        for kind, variant_codes in targets.codes().items():
            if kind == "scan":
                extra = {"mutant": targets.scan.names, "fitness": targets.fitness}
            else:
                table, names = targets.label_table, targets.labels.names
                label_of = dict(zip(table["mutant"], table["label"], strict=True))
                extra = {"mutant": names, "label": [label_of[m] for m in names]}
            scores = {
                "potts": model.score_variants(variant_codes, residues),
                "fields_native": PottsModel.score_fields(model.h, variant_codes, residues),
                "fields_zero_sum": PottsModel.score_fields(zero_sum, variant_codes, residues),
                "site_independent": site.score_variants(variant_codes),
            }
            tables.append(pd.DataFrame({"set": kind} | extra | scores))
        # evol_index convention: higher = more damaging
        pd.concat(tables).to_csv(out / f"scores_{tag}.csv", index=False)
        record = {
            "name": args.name,
            "couplings_spec": spec,
            "ignore_gaps": args.ignore_gaps,
            "lambda_h": args.lambda_h,
            "lambda_j": lambda_j,
            "n_columns": n_columns,
            "n_states": n_states,
            "n_params": model.n_params,
            "theta": args.theta,
            "dtype": args.dtype,
            "max_iter": args.max_iter,
            "epsilon": args.epsilon,
            "variants": counts,
            "fit": fit,
            "final": final,
            "site_independent": site_metrics,
            "checkpoints": [row for row in history if any(k.startswith("potts_") for k in row)],
            "machine": {"cpu": cpu_capability(), "threads": args.threads, "node": platform.node()},
            "torch": torch.__version__,
        }
        (out / f"fit_{tag}.json").write_text(json.dumps(record, indent=2))
        pd.DataFrame(history).to_csv(out / f"fit_{tag}_history.tsv", sep="\t", index=False)
        print(
            json.dumps(
                {k: record[k] for k in ("couplings_spec", "lambda_j", "final", "site_independent")}
                | {k: fit[k] for k in ("iterations", "evaluations", "seconds", "stop")}
            ),
            flush=True,
        )
    fits = [json.loads(p.read_text()) for p in sorted(out.glob("fit_*.json"))]
    summary = {
        "name": args.name,
        "fits": [
            {
                k: f.get(k)
                for k in (
                    "ignore_gaps",
                    "couplings_spec",
                    "lambda_h",
                    "lambda_j",
                    "final",
                    "checkpoints",
                    "site_independent",
                    "variants",
                    "dtype",
                )
            }
            | {k: f["fit"][k] for k in ("iterations", "evaluations", "seconds", "stop", "neff")}
            for f in fits
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
