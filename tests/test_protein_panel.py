"""The leave-one-family-out choice and the BENCHMARKS.md block of the protein panel scripts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from _benchmarks import load_benchmark


@pytest.fixture(scope="module")
def select():
    return load_benchmark("protein_panel_select")


@pytest.fixture(scope="module")
def panel():
    return load_benchmark("protein_panel")


def _run(vae: np.ndarray, neff: float = 100.0) -> dict:
    """A run whose site-independent score is the target's negative plus noise."""
    rng = np.random.default_rng(0)
    target = rng.normal(size=vae.shape[1])
    return {
        "kind": "scan",
        "steps": np.array([100, 200, 300, 400]),
        "vae": vae,
        "si": -target + rng.normal(scale=2.0, size=target.size),
        "target": target,
        "neff": neff,
        "length": 10,
        "n_sequences": 50,
        "seed": 0,
    }


def test_rules_pick_checkpoints_average_and_shrink(select) -> None:
    vae = np.arange(4 * 3, dtype=float).reshape(4, 3)
    run = _run(vae) | {"si": np.zeros(3)}
    assert select.apply_rule(run, 200, 0.0, 1.0).tolist() == vae[1].tolist()
    # the checkpoints in (200, 400]: 300 and 400
    assert select.apply_rule(run, 400, 0.5, 1.0).tolist() == vae[2:].mean(0).tolist()
    assert select.apply_rule(run, 200, 0.0, 0.5).tolist() == (0.5 * vae[1]).tolist()
    assert select.apply_rule(run, 800, 0.0, 1.0) is None  # longer than the run
    # auto:<c>: min(1, Neff / (c L)) = 100 / (20 * 10)
    assert select.shrink_factor("auto:20", run) == pytest.approx(0.5)
    assert select.budget("200|400@5", run) == 400  # Neff / L = 10 >= 5
    assert select.budget("200|400@50", run) == 200


def test_leave_one_out_never_judges_a_rule_on_the_family_it_was_chosen_on(select) -> None:
    rows = []
    for family, gains in {"A": (0.10, -0.05), "B": (0.08, 0.0), "C": (-0.20, 0.01)}.items():
        for steps, gain in zip((100, 200), gains, strict=True):
            rows.append(
                {"scorer": "vae", "steps": steps, "window": 0.0, "shrink": "1.0"}
                | {"family": family, "gain": gain, "sd": 0.0}
            )
    lofo = select.leave_one_out(pd.DataFrame(rows)).set_index("family")
    # without C, 100 steps wins (A and B); C is then judged at 100 steps: -0.20
    assert lofo.loc["C", "steps"] == 100
    assert lofo.loc["C", "heldout_gain"] == pytest.approx(-0.20)
    # without A: B and C prefer 200 steps (mean +0.005 against -0.06)
    assert lofo.loc["A", "steps"] == 200
    assert lofo.loc["A", "heldout_gain"] == pytest.approx(-0.05)


def test_benchmarks_block_is_replaced_in_place(panel) -> None:
    text = f"# Top\n\n{panel.START}\nold table\n{panel.END}\n\n## Next\n"
    new = panel.replace_block(text, "new table")
    assert new == f"# Top\n\n{panel.START}\nnew table\n{panel.END}\n\n## Next\n"
    assert panel.replace_block("# Top\n", "t").endswith(f"{panel.START}\nt\n{panel.END}\n")
    table = pd.DataFrame(
        [
            {
                "dataset": "FAM",
                "measure": "spearman",
                "n_scored": 900,
                "vae": 0.55,
                "site_independent": 0.5,
                "gain": 0.05,
                "seed_sd": 0.01,
                "n_seeds": 3,
                "member_gain_min": 0.04,
                "neff": 250.0,
                "neff_per_column": 5.0,
                "n_columns": 50,
                "train_seconds": 12.0,
            }
        ]
    )
    markdown = panel.markdown_table(table)
    assert "| FAM | spearman | 900 | 0.550 | 0.500 | +0.050 ± 0.010 (3) | +0.040 |" in markdown
    assert markdown.endswith("mean gain in spearman: +0.050 over 1 datasets (lowest +0.050).")
