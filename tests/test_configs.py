"""The shipped configurations and presets validate against the workflow's schema."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from schema_check import schema_problem
from snakemake.utils import update_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _layered(*files: str) -> dict:
    """The config Snakemake builds: config/config.yaml, then each --configfile over it."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for name in files:
        update_config(config, yaml.safe_load((REPO / name).read_text()))
    return config


@pytest.mark.parametrize(
    "files",
    [
        (),
        ("config/real-data.yaml",),
        ("config/real-data.yaml", "config/presets/protein-eve.yaml"),
        ("benchmarks/p53_eve.yaml",),
    ],
)
def test_shipped_configs_validate(files) -> None:
    assert schema_problem(_layered(*files), SCHEMA) is None


def test_eve_preset_sets_eves_architecture() -> None:
    protein = _layered("config/real-data.yaml", "config/presets/protein-eve.yaml")["model"][
        "protein"
    ]
    assert protein["encoder_hidden"] == [2000, 1000, 300]
    assert protein["decoder_hidden"] == [300, 1000, 2000]
    assert protein["n_latent"] == 50
    assert protein["site_offset"] is False


def test_default_protein_preset_is_what_the_real_data_config_uses() -> None:
    preset = _layered("config/presets/protein-default.yaml")
    real = _layered("config/real-data.yaml")
    assert preset["model"]["protein"] == real["model"]["protein"]
    assert preset["train"]["protein"] == real["train"]["protein"]
    for key in ("estimator", "latent_shrink"):
        assert preset["score"][key] == real["score"][key]
    assert schema_problem(preset, SCHEMA) is None
    # the preset holds protein settings only: nothing that points at the developers' data
    text = (REPO / "config/presets/protein-default.yaml").read_text()
    assert "../shared" not in text
    assert set(yaml.safe_load(text)) == {"model", "train", "score"}
