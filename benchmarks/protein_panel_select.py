"""Choose protein scoring rules by leave-one-family-out over saved score trajectories.

Reads the ``seed<k>.npz`` files of ``protein_panel_curves.py`` (one folder per family) and
evaluates rules that turn a trajectory into one score per variant:

- ``steps``: the training budget (the last checkpoint at or before it), or a budget by
  depth, ``"<a>|<b>@<c>"``: ``a`` steps for ``Neff / L < c``, else ``b``;
- ``window``: average the scores of the checkpoints in ``(steps * (1 - window), steps]``
  (0: the last checkpoint only; a snapshot average of the scores along the trajectory);
- ``shrink``: ``SI + shrink * (VAE - SI)``, a shrinkage toward the site-independent
  scores of the same training split; ``"auto:<c>"`` sets
  ``shrink = min(1, Neff / (c * L))``.

Each family's gain is ρ (scan) or ROC AUC (labels) of the rule minus that of the
site-independent model, averaged over seeds. Leave-one-family-out: for every family,
the rule with the best mean gain over the *other* families is chosen and judged on the
held-out one. Prints and writes ``lofo.json`` and ``grid.tsv`` into the trajectories'
folder.

Example::

    .venv/bin/python benchmarks/protein_panel_select.py benchmarks/out/protein_panel/default
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score


def measure(score: np.ndarray, target: np.ndarray, kind: str) -> float:
    """ρ of ``-score`` with fitness (scan) or AUC of ``score`` for 0/1 labels."""
    if kind == "scan":
        return float(spearmanr(-score, target).statistic)
    keep = ~np.isnan(target)
    return float(roc_auc_score(target[keep], score[keep]))


def load_runs(folder: Path, scorer: str = "vae") -> dict[str, list[dict]]:
    """Every family's runs (one per seed): steps, scores, baseline, target, size.

    ``scorer``: the trajectory to read, ``vae`` (the ELBO difference) or a latent probe
    of ``protein_panel_curves.py --probe`` (``probe0.25``: the decoder at a quarter of the
    wild type's latent).
    """
    runs: dict[str, list[dict]] = {}
    for path in sorted(folder.glob("*/seed*.npz")):
        data = np.load(path)
        kind = "scan" if "vae_scan" in data.files else "labels"
        if f"{scorer}_{kind}" not in data.files:
            continue
        meta = json.loads(str(data["meta"]))
        runs.setdefault(meta["name"], []).append(
            {
                "kind": kind,
                "steps": data["steps"],
                "vae": data[f"{scorer}_{kind}"].astype(float),
                "si": data[f"si_{kind}"].astype(float),
                "target": data[f"target_{kind}"].astype(float),
                "neff": meta["neff"],
                "length": meta["length"],
                "n_sequences": meta["n_sequences"],
                "seed": meta["seed"],
            }
        )
    return runs


def shrink_factor(shrink: float | str, run: dict) -> float:
    """A fixed shrinkage, or ``auto:<c>``: ``min(1, Neff / (c * L))``."""
    if isinstance(shrink, str):
        scale = float(shrink.split(":")[1])
        return min(1.0, run["neff"] / (scale * run["length"]))
    return float(shrink)


def budget(steps: int | str, run: dict) -> int:
    """A fixed budget, or ``"<a>|<b>@<c>"``: ``a`` steps below ``Neff / L = c``, else ``b``."""
    if isinstance(steps, str):
        shallow, rest = steps.split("|")
        deep, depth = rest.split("@")
        return int(deep) if run["neff"] / run["length"] >= float(depth) else int(shallow)
    return int(steps)


def apply_rule(
    run: dict, steps: int | str, window: float, shrink: float | str
) -> np.ndarray | None:
    """Scores of one run under a rule; ``None`` when the run is shorter than ``steps``."""
    steps = budget(steps, run)
    if run["steps"][-1] < steps:
        return None
    chosen = (run["steps"] <= steps) & (run["steps"] > steps * (1 - window))
    if window == 0:
        chosen = run["steps"] == run["steps"][run["steps"] <= steps].max()
    vae = run["vae"][chosen].mean(0)
    return run["si"] + shrink_factor(shrink, run) * (vae - run["si"])


def family_gain(runs: list[dict], rule: tuple) -> tuple[float, float, float]:
    """Mean gain over seeds, its standard deviation, and the mean measure of the rule."""
    values, gains = [], []
    for run in runs:
        score = apply_rule(run, *rule)
        if score is None:
            return np.nan, np.nan, np.nan
        value = measure(score, run["target"], run["kind"])
        values.append(value)
        gains.append(value - measure(run["si"], run["target"], run["kind"]))
    return (
        float(np.mean(gains)),
        float(np.std(gains, ddof=1) if len(gains) > 1 else 0),
        float(np.mean(values)),
    )


def ensemble_gain(runs: list[dict], rule: tuple) -> float:
    """Gain of the seeds' mean score under a rule over the seeds' mean site-independent score."""
    scores = [apply_rule(run, *rule) for run in runs]
    if any(score is None for score in scores):
        return np.nan
    first = runs[0]
    site = np.mean([run["si"] for run in runs], 0)
    return measure(np.mean(scores, 0), first["target"], first["kind"]) - measure(
        site, first["target"], first["kind"]
    )


def grid(runs: dict[str, list[dict]], rules: list[tuple], scorer: str = "vae") -> pd.DataFrame:
    """Gain of every rule on every family."""
    rows = []
    for rule in rules:
        for name, family in runs.items():
            gain, spread, value = family_gain(family, rule)
            rows.append(
                {
                    "scorer": scorer,
                    "steps": rule[0],
                    "window": rule[1],
                    "shrink": str(rule[2]),
                    "family": name,
                    "gain": gain,
                    "sd": spread,
                    "value": value,
                    "ensemble_gain": ensemble_gain(family, rule),
                }
            )
    return pd.DataFrame(rows)


def add_robust_gain(table: pd.DataFrame, factor: int = 4) -> pd.DataFrame:
    """Add ``robust_gain``: the lower of a rule's gain at its budget and at ``factor`` times it.

    A rule chosen on it gains at its budget *and* is not hurt by training longer; rules
    whose longer budget was not run get NaN.
    """
    keys = ["scorer", "window", "shrink", "family"]
    numeric = table[table["steps"].map(lambda v: isinstance(v, int | np.integer))]
    longer = numeric.assign(steps=numeric["steps"] // factor)[keys + ["steps", "gain"]]
    merged = table.merge(
        longer.rename(columns={"gain": f"gain_{factor}x"}), on=keys + ["steps"], how="left"
    )
    merged["robust_gain"] = np.minimum(merged["gain"], merged[f"gain_{factor}x"])
    return merged


def leave_one_out(table: pd.DataFrame, column: str = "gain") -> pd.DataFrame:
    """For each family: the rule best on the others (mean ``column``), judged on that family."""
    keys = ["scorer", "steps", "window", "shrink"]
    complete = table.groupby(keys).filter(lambda g: g[column].notna().all())
    rows = []
    for family in complete["family"].unique():
        others = complete[complete["family"] != family].groupby(keys)[column].mean()
        best = others.idxmax()
        held = complete[(complete["family"] == family)].set_index(keys).loc[best]
        rows.append(
            dict(zip(keys, best, strict=True))
            | {
                "family": family,
                "train_mean_gain": float(others.max()),
                "heldout_gain": float(held[column]),
                "heldout_sd": float(held["sd"]) if column == "gain" else np.nan,
                "heldout_gain_at_budget": float(held["gain"]),
                "heldout_gain_4x": float(held.get("gain_4x", np.nan)),
            }
        )
    return pd.DataFrame(rows)


def depth_table(runs: dict[str, list[dict]], table: pd.DataFrame, rule: tuple) -> pd.DataFrame:
    """Gain of one rule per family next to the family's depth (Neff, Neff / L), by depth."""
    keys = dict(zip(["scorer", "steps", "window", "shrink"], rule, strict=True))
    chosen = table[
        (table["scorer"] == keys["scorer"])
        & (table["steps"].astype(str) == str(keys["steps"]))
        & (table["window"] == keys["window"])
        & (table["shrink"] == str(keys["shrink"]))
    ].set_index("family")
    rows = [
        {
            "family": name,
            "neff": family[0]["neff"],
            "length": family[0]["length"],
            "neff_per_column": family[0]["neff"] / family[0]["length"],
            "gain": chosen.loc[name, "gain"],
            "sd": chosen.loc[name, "sd"],
        }
        for name, family in runs.items()
        if name in chosen.index
    ]
    return pd.DataFrame(rows).sort_values("neff_per_column", ignore_index=True)


def flatness_table(table: pd.DataFrame, rule: tuple, factor: int = 4) -> pd.DataFrame:
    """Per family: the measure at a rule's budget and at ``factor`` times it, and the change."""
    scorer, steps, window, shrink = rule
    same = table[
        (table["scorer"] == scorer)
        & (table["window"] == window)
        & (table["shrink"] == str(shrink))
    ]
    at = same[same["steps"].astype(str) == str(steps)].set_index("family")
    longer = same[same["steps"].astype(str) == str(steps * factor)].set_index("family")
    out = pd.DataFrame(
        {
            "value": at["value"],
            f"value_{factor}x": longer["value"],
            "change": longer["value"] - at["value"],
        }
    ).dropna()
    out["flat"] = out["change"] >= -0.01
    return out.sort_values("change")


def _md(frame: pd.DataFrame) -> str:
    """A frame as a Markdown table (numbers to three decimals)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    lines = [header, "|" + " --- |" * len(frame.columns)]
    plain = {"window", "neff", "length", "value", "value_4x"}
    for row in frame.itertuples(index=False):
        cells = [
            f"{v:.3f}"
            if name in plain and isinstance(v, float)
            else f"{v:+.3f}"
            if isinstance(v, float)
            else str(v)
            for name, v in zip(frame.columns, row, strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument(
        "--steps",
        nargs="+",
        default=["100", "200", "300", "400", "600", "800"],
        help="budgets: N steps, or A|B@C (A below Neff/L = C, B at or above it)",
    )
    parser.add_argument("--windows", type=float, nargs="+", default=[0.0, 0.5, 0.75])
    parser.add_argument(
        "--shrinks", nargs="+", default=["1", "0.75", "0.5", "auto:5", "auto:20", "auto:50"]
    )
    parser.add_argument("--scorers", nargs="+", default=["vae"], help="vae and/or probe<S>")
    parser.add_argument("--markdown", type=Path, help="also write the tables here (Markdown)")
    parser.add_argument(
        "--depth-rules",
        nargs="*",
        default=["vae,200,0,1"],
        help="rules (scorer,steps,window,shrink) whose gain per family is listed by depth",
    )
    args = parser.parse_args()
    shrinks = [s if s.startswith("auto") else float(s) for s in args.shrinks]
    steps = [int(s) if s.isdigit() else s for s in args.steps]
    rules = list(itertools.product(steps, args.windows, shrinks))
    by_scorer = {scorer: load_runs(args.folder, scorer) for scorer in args.scorers}
    table = pd.concat(
        [grid(runs, rules, scorer) for scorer, runs in by_scorer.items()], ignore_index=True
    )
    # only the families every scorer has, so that the rules are judged on the same panel
    families = set.intersection(*(set(runs) for runs in by_scorer.values()))
    table = table[table["family"].isin(families)]
    table = add_robust_gain(table)
    table.to_csv(args.folder / "grid.tsv", sep="\t", index=False)
    keys = ["scorer", "steps", "window", "shrink"]
    summary = table.groupby(keys)["gain"].agg(["mean", "min", "count"])
    print(summary.sort_values("mean", ascending=False).head(20).to_string())
    sections = ["### Mean gain of every rule (in-sample, all families)", ""]
    means = summary.reset_index().sort_values("mean", ascending=False)
    sections += [_md(means.rename(columns={"count": "families"})), ""]
    report = {}
    for column in ("gain", "ensemble_gain", "robust_gain"):
        lofo = leave_one_out(table, column)
        if lofo.empty:  # e.g. robust_gain without the 4x budgets
            continue
        print(lofo.to_string())
        print(
            f"leave-one-family-out ({column}): mean held-out gain "
            f"{lofo['heldout_gain'].mean():+.4f}, min {lofo['heldout_gain'].min():+.4f} "
            f"over {len(lofo)} families"
        )
        report[column] = lofo.to_dict(orient="records")
        sections += [
            f"### Leave-one-family-out, chosen on `{column}`",
            "",
            f"Mean held-out {column} {lofo['heldout_gain'].mean():+.4f}, lowest "
            f"{lofo['heldout_gain'].min():+.4f}, over {len(lofo)} families.",
            "",
            _md(lofo.drop(columns=["heldout_sd"])),
            "",
        ]
    (args.folder / "lofo.json").write_text(json.dumps(report, indent=1))
    for rule in args.depth_rules:
        scorer, steps, window, shrink = rule.split(",")
        shrink = shrink if shrink.startswith("auto") else float(shrink)
        rule = (scorer, int(steps) if steps.isdigit() else steps, float(window), shrink)
        depth = depth_table(by_scorer[scorer], table, rule)
        rho = spearmanr(depth["neff_per_column"], depth["gain"]).statistic
        print(f"gain against depth, rule {rule}: Spearman(Neff/L, gain) = {rho:+.2f}")
        print(depth.to_string(float_format=lambda v: f"{v:.3f}"))
        sections += [
            f"### Gain against depth, rule {rule}: Spearman(Neff/L, gain) = {rho:+.2f}",
            "",
            _md(depth),
            "",
        ]
        if isinstance(rule[1], int):
            flat = flatness_table(table, rule)
            print(f"flatness, rule {rule}: {int(flat['flat'].sum())} of {len(flat)} flat")
            print(flat.to_string(float_format=lambda v: f"{v:.3f}"))
            sections += [
                f"### Flatness, rule {rule}: {int(flat['flat'].sum())} of {len(flat)} "
                "families within 0.01 (or higher) at 4x the budget",
                "",
                _md(flat.reset_index()),
                "",
            ]
    if args.markdown is not None:
        args.markdown.write_text("\n".join(sections))


if __name__ == "__main__":
    main()
