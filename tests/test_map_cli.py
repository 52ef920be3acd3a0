"""`vae map` on the command line: a new batch mapped and labelled, and bad input refused."""

from __future__ import annotations

import json
from pathlib import Path

import anndata as ad
import pytest
from test_cli import vae_cli
from test_mapping import train_reference

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    return train_reference(tmp_path_factory.mktemp("map_cli"))


def test_map_command_writes_labels_metrics_and_mapped_model(trained, tmp_path) -> None:
    output = tmp_path / "out" / "query.h5ad"
    result = vae_cli(
        "map", str(trained["model"]), str(trained["query"]), str(output),
        "--epochs", "2", "--label-key", "cell_type", "--reference", str(trained["data"]),
        "--uncertainty-threshold", "0.0", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mapping"]["mode"] == "surgery"
    assert report["mapping"]["epochs"] == 2
    out = ad.read_h5ad(output)
    # threshold 0: only unanimous votes keep their label
    unknown = out.obs["predicted_cell_type"] == "Unknown"
    assert (unknown == (out.obs["cell_type_uncertainty"] > 0)).all()
    assert (tmp_path / "out" / "query_model" / "model.pt").is_file()
    assert (tmp_path / "out" / "query.manifest.json").is_file()
    metrics = json.loads((tmp_path / "out" / "query.metrics.json").read_text())
    assert metrics["confident_share"] == pytest.approx(1 - unknown.mean())


def _bad_inputs(trained: dict[str, Path], root: Path) -> dict[str, tuple[list[str], str]]:
    query = ad.read_h5ad(trained["query"])
    no_batch = query.copy()
    del no_batch.obs["batch"]
    no_batch.write_h5ad(root / "no_batch.h5ad")
    query[:, : query.n_vars // 2].copy().write_h5ad(root / "few_genes.h5ad")
    normalised = query.copy()
    normalised.X = normalised.X * 0.5
    normalised.write_h5ad(root / "normalised.h5ad")
    model, good = str(trained["model"]), str(trained["query"])
    return {
        "no batch column": ([model, str(root / "no_batch.h5ad")], "batch column 'batch'"),
        "label key": ([model, good, "--label-key", "nope"], "label key 'nope'"),
        "overlap": ([model, str(root / "few_genes.h5ad")], "model genes present"),
        "not counts": ([model, str(root / "normalised.h5ad")], "non-integer"),
    }


@pytest.mark.parametrize("case", ["no batch column", "label key", "overlap", "not counts"])
def test_bad_input_is_one_line_and_writes_nothing(trained, tmp_path, case) -> None:
    args, expected = _bad_inputs(trained, tmp_path)[case]
    out_dir = tmp_path / "out"
    result = vae_cli("map", *args, str(out_dir / "mapped.h5ad"), "--epochs", "1")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error:")
    assert expected in lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir())
