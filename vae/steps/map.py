"""Map a new dataset onto a trained expression model and transfer the reference's labels."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from vae._constants import FILES, KEYS
from vae._device import resolve_device
from vae._io import (
    atomic_path,
    staged_directory,
    write_h5ad_atomic,
    write_json_atomic,
)
from vae.errors import VAEInputError
from vae.metrics import knn_label_transfer, mapping_metrics
from vae.model import CountModel, QueryTraining, load_model, map_query_model
from vae.provenance import sidecar_manifest, write_manifest
from vae.steps._map_input import read_query, reference_cells

REFERENCE_FILE = "reference.h5ad"


def mapped_model_dir(output: str | Path) -> Path:
    """Where the mapped model of ``output`` is saved: ``{output stem}_model/`` beside it."""
    output = Path(output)
    return output.with_name(f"{output.name.removesuffix('.h5ad')}_model")


def _reference_path(model_dir: Path, reference: str | Path | None) -> Path | None:
    """Find the reference's training data: given, or recorded in the model's manifest."""
    if reference is not None:
        path = Path(reference)
        if not path.is_file():
            raise VAEInputError(path, "reference data file does not exist")
        return path
    manifest = model_dir / FILES.MANIFEST
    if not manifest.is_file():
        return None
    recorded = json.loads(manifest.read_text()).get("inputs", {}).get("data", {}).get("path")
    candidates = [Path(recorded), model_dir.parent / Path(recorded).name] if recorded else []
    return next((p for p in candidates if p.is_file()), None)


def map_query(
    model_dir: str | Path,
    query: str | Path,
    output: str | Path,
    *,
    batch_key: str | None = None,
    epochs: int | None = None,
    label_key: str | None = None,
    reference: str | Path | None = None,
    uncertainty_threshold: float = 0.5,
    n_neighbors: int = 50,
    device: str = "auto",
    min_overlap: float = 0.8,
    layer: str | None = None,
    var_key: str | None = None,
    seed: int = 0,
    init: str = "zeros",
    backed: bool | str = "auto",
) -> dict[str, Any]:
    """Map new cells onto a trained expression model; transfer the reference's labels.

    New batch categories of the query get their own one-hot columns in the encoder's and
    decoder's first layers, trained on the query for ``epochs`` (``None``: scvi-tools'
    default, :func:`~vae.model.default_query_epochs`) with every reference weight frozen
    (:func:`~vae.model.map_query_model`). Queries of seen batches, and models without a
    batch covariate, are embedded as they are (``uns["mapping"]["note"]`` says so).

    Writes ``output`` (query cells, ``obsm["X_vae"]``, ``obs["predicted_<label_key>"]``
    and ``obs["<label_key>_uncertainty"]`` when labels are transferred, the gene overlap
    in ``uns``), ``{output}.manifest.json``, the mapped model folder
    (:func:`mapped_model_dir`, with the reference cells' embedding, labels and batches
    in ``reference.h5ad`` when the reference data are found) and, when the query has the
    label column, ``{output}.metrics.json``. The reference model folder is only read.

    Parameters
    ----------
    model_dir
        A trained expression model folder.
    query
        New cells: ``.h5ad``, a 10x folder or a CSV/TSV of raw counts.
    output
        The ``.h5ad`` to write.
    batch_key
        The query's batch column (default: the model's batch column name).
    epochs
        Query training epochs.
    label_key
        Reference label column to transfer (default: the one preprocessing recorded).
    reference
        The reference's training data (default: the data in the model's manifest).
    uncertainty_threshold, n_neighbors
        Cells with a larger uncertainty are ``Unknown``; neighbours of the weighted kNN.
    device, min_overlap, layer, var_key
        As for :func:`~vae.steps.embed_new`.
    seed, init
        Query training seed; start of the new batch columns (``zeros`` or ``random``).
    backed
        Read the query's counts from disk block by block (``"auto"``: when its CSR
        matrix is large, :data:`~vae.steps._map_input.BACKED_QUERY_BYTES`); training,
        embedding and label transfer then hold one block of cells at a time.
    """
    started = time.perf_counter()
    model_dir, query, output = Path(model_dir), Path(query), Path(output)
    torch_device = resolve_device(device)
    model = load_model(model_dir, torch_device)
    if model.domain != "expression":
        raise VAEInputError(model_dir, "`vae map` needs an expression model")
    if not 0.0 <= uncertainty_threshold <= 1.0:
        raise VAEInputError("uncertainty_threshold", "must be between 0 and 1")
    if epochs is not None and epochs < 0:
        raise VAEInputError("epochs", f"must be at least 0, not {epochs}")
    explicit_label = label_key is not None
    label_key = label_key or model.info.get("preprocess", {}).get("label_key")
    reference_path = _reference_path(model_dir, reference)
    if explicit_label and reference_path is None:
        raise VAEInputError(
            model_dir, "no reference data recorded with the model; give it with --reference"
        )
    cells = read_query(
        model,
        query,
        batch_key=batch_key,
        layer=layer,
        var_key=var_key,
        min_overlap=min_overlap,
        backed=backed,
    )
    try:
        ref_cells = None
        if reference_path is not None:
            ref_cells = reference_cells(model, reference_path, label_key, min_overlap)
        mapped, record = map_query_model(
            model, cells, QueryTraining(epochs=epochs, seed=seed, init=init)
        )
        latent = mapped.get_latent(cells)
    finally:
        cells.close()

    out = ad.AnnData(obs=cells.obs.copy())
    out.obsm[KEYS.X_VAE] = latent
    metrics = None
    labelled = ref_cells is not None and bool(label_key)
    if labelled:
        ref_latent, ref_labels = ref_cells.obsm[KEYS.X_VAE], ref_cells.obs[label_key].to_numpy()
        transfer = knn_label_transfer(
            ref_latent,
            ref_labels,
            latent,
            n_neighbors=n_neighbors,
            threshold=uncertainty_threshold,
        )
        out.obs[f"predicted_{label_key}"] = pd.Categorical(transfer["predicted"].to_numpy())
        out.obs[f"{label_key}_uncertainty"] = transfer["uncertainty"].to_numpy()
        if label_key in cells.obs:
            metrics = mapping_metrics(
                ref_latent,
                ref_labels,
                latent,
                cells.obs[label_key].to_numpy(),
                transfer,
                seed=seed,
            ) | {"mode": record["mode"], "uncertainty_threshold": uncertainty_threshold}
    out.uns["overlap"] = {k: v for k, v in cells.overlap.items() if not isinstance(v, list)}
    out.uns["gene_present"] = np.asarray(cells.gene_present)
    out.uns["model"] = {"path": str(model_dir), "domain": model.domain}
    summary = {k: v for k, v in record.items() if k != "history" and v is not None}
    summary["backed"] = cells.backed
    if not labelled:
        summary["label_transfer"] = (
            "no label key: no labels transferred"
            if not label_key
            else "no reference data found (give --reference): no labels transferred"
        )
    out.uns["mapping"] = summary | {
        "label_key": label_key or "",
        "batch_key": model.info.get("batch_key") or "",
        "reference": str(reference_path or ""),
        "uncertainty_threshold": uncertainty_threshold,
        "n_neighbors": n_neighbors,
    }
    _write_outputs(
        out,
        output,
        mapped,
        ref_cells,
        record,
        metrics,
        inputs={"query": query, "model": model_dir / FILES.MODEL}
        | ({"reference": reference_path} if reference_path else {}),
        config={
            "batch_key": batch_key,
            "epochs": epochs,
            "label_key": label_key,
            "uncertainty_threshold": uncertainty_threshold,
            "n_neighbors": n_neighbors,
            "min_overlap": min_overlap,
            "layer": layer,
            "var_key": var_key,
            "init": init,
            "backed": backed,
        },
        seed=seed,
        device=str(torch_device),
        started=started,
    )
    return {"mapping": summary, "overlap": out.uns["overlap"], "metrics": metrics}


def _write_outputs(
    out: ad.AnnData,
    output: Path,
    mapped: CountModel,
    ref_cells: ad.AnnData | None,
    record: dict[str, Any],
    metrics: dict[str, Any] | None,
    *,
    inputs: dict[str, Path],
    config: dict[str, Any],
    seed: int,
    device: str,
    started: float,
) -> None:
    """Write the mapped model folder (staged), the ``.h5ad``, metrics and manifest."""
    folder = mapped_model_dir(output)
    with staged_directory(folder) as staging:
        mapped.save(staging)
        if ref_cells is not None:
            write_h5ad_atomic(ref_cells, staging / REFERENCE_FILE)
        if record.get("history"):
            with atomic_path(staging / "query_history.tsv") as tmp:
                pd.DataFrame(record["history"]).to_csv(tmp, sep="\t", index=False)
    stem = output.name.removesuffix(".h5ad")
    if metrics is not None:
        write_json_atomic(output.with_name(f"{stem}.metrics.json"), metrics)
    write_h5ad_atomic(out, output)
    write_manifest(
        output.parent,
        name=sidecar_manifest(output).name,
        inputs=inputs,
        config=config,
        seed=seed,
        device=device,
        wall_seconds=time.perf_counter() - started,
        extra={
            "mapping": {k: v for k, v in record.items() if k != "history"},
            "mapped_model": str(folder),
        },
    )
