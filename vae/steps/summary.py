"""Summarise a run across datasets: the protein scoreboard (``results/summary/protein.tsv``)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from vae._constants import FILES
from vae._io import atomic_path
from vae.errors import VAEInputError
from vae.metrics import protein_summary
from vae.plotting import plot_protein_gain


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise VAEInputError(path, f"not a readable JSON file ({type(err).__name__})") from err


def summarise_protein(
    datasets: list[str],
    metrics: list[str | Path],
    models: list[list[str | Path]],
    output: str | Path,
    figure: str | Path,
) -> pd.DataFrame:
    """Write the scoreboard of the protein datasets and its figure.

    Parameters
    ----------
    datasets
        Dataset names, in the order of ``metrics`` and ``models``.
    metrics
        Each dataset's ``metrics.json``.
    models
        Each dataset's model folders (the main model first, then ensemble members); their
        ``manifest.json`` gives the steps and training time.
    output
        The table (TSV, columns :data:`~vae.metrics.PROTEIN_SUMMARY_COLUMNS`).
    figure
        The gain per dataset (PNG, :func:`~vae.plotting.plot_protein_gain`).

    Returns
    -------
    pandas.DataFrame
        The table written to ``output``.
    """
    if not len(datasets) == len(metrics) == len(models):
        raise ValueError("datasets, metrics and models must have the same length")
    entries = [
        (
            name,
            _read_json(Path(path)),
            [_read_json(Path(folder) / FILES.MANIFEST) for folder in folders],
        )
        for name, path, folders in zip(datasets, metrics, models, strict=True)
    ]
    table = protein_summary(entries)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.4f")
    plot_protein_gain(table, figure)
    return table
