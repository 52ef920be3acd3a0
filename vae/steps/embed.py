"""Embed datasets with a trained model: its own preprocessed data, or new cells and sequences."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from vae._alphabet import ALIGNMENT_FORMATS
from vae._constants import FILES, KEYS
from vae._device import resolve_device
from vae._io import read_h5ad, write_h5ad_atomic
from vae._progress import chunk_ranges
from vae.data import preprocess_obs_keys, read_counts_file
from vae.data._backed import use_backed
from vae.errors import VAEInputError, unreadable
from vae.model import CountModel, SequenceModel, load_model
from vae.provenance import sidecar_manifest, write_manifest


def embed_preprocessed(
    model_dir: str | Path,
    data: str | Path,
    output: str | Path,
    *,
    device: str = "auto",
    backed: bool | str = "auto",
    denoised: bool = False,
) -> None:
    """Embed the model's own preprocessed data: ``obs`` kept, means in ``obsm['X_vae']``.

    Expression counts are read block by block when ``backed`` (see :func:`use_backed`);
    ``denoised`` adds ``layers['denoised']``, the decoder's mean expression at the
    posterior mean per 10,000 counts (dense cells x genes, with gene names in ``var``).
    """
    started = time.perf_counter()
    torch_device = resolve_device(device)
    model = load_model(model_dir, torch_device)
    adata = read_h5ad(data, backed=model.domain == "expression" and use_backed(data, backed))
    if list(adata.var_names) != model.var_names:
        raise VAEInputError(data, "features differ from the model's; use `vae embed` for new data")
    if denoised and model.domain == "expression":
        out = ad.AnnData(obs=adata.obs.copy(), var=pd.DataFrame(index=model.var_names))
        out.layers["denoised"] = model.get_denoised(adata)
    else:
        out = ad.AnnData(obs=adata.obs.copy())
    out.obsm[KEYS.X_VAE] = model.get_latent(adata)
    out.uns["model"] = {"path": str(model_dir), "domain": model.domain}
    out.uns["obs_keys"] = preprocess_obs_keys(adata)
    write_h5ad_atomic(out, output)
    output = Path(output)
    write_manifest(
        output.parent,
        name=sidecar_manifest(output).name,
        inputs={"data": data, "model": Path(model_dir) / FILES.MODEL},
        config={},
        seed=None,
        device=str(torch_device),
        wall_seconds=time.perf_counter() - started,
    )


def _check_domain(model_domain: str, input_path: Path) -> None:
    is_alignment = input_path.suffix.lower() in ALIGNMENT_FORMATS
    if model_domain == "expression" and is_alignment:
        raise VAEInputError(input_path, "is a sequence file but the model is an expression model")
    if model_domain == "protein" and not is_alignment:
        raise VAEInputError(
            input_path,
            f"the model is a protein model; give a FASTA/A2M/Stockholm file, not "
            f"{input_path.suffix or 'a file without suffix'}",
        )


def _open_cells(path: Path) -> ad.AnnData:
    """Open a counts file; ``.h5ad`` stays on disk (chunks are read one at a time)."""
    if path.suffix.lower() == ".h5ad" and path.is_file() and path.stat().st_size > 0:
        try:
            return ad.read_h5ad(path, backed="r")
        except Exception as err:
            raise VAEInputError(path, unreadable(err, "AnnData")) from err
    return read_counts_file(path)


def _embed_cells(
    model: CountModel,
    path: Path,
    *,
    layer: str | None,
    min_overlap: float,
    chunk_size: int,
    var_key: str | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    source = _open_cells(path)
    match = model.match_genes(source, var_key=var_key, min_overlap=min_overlap, source=path)
    latents = []
    for start, stop in chunk_ranges(source.n_obs, chunk_size, "embedding cells"):
        chunk = source[start:stop]
        chunk = chunk.to_memory() if chunk.isbacked else chunk
        latents.append(model.get_latent(match.apply(chunk, layer=layer, source=path)))
    obs = source.obs.copy()
    obs.index = obs.index.astype(str)
    latent = np.concatenate(latents) if latents else np.zeros((0, model.module.n_latent))
    report = dict(match.report) | {"gene_present": (match.present >= 0).tolist()}
    return latent, obs, report


def _embed_sequences(
    model: SequenceModel, path: Path, *, max_gap_frac: float, chunk_size: int
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    ids, codes, report = model.prepare_query(
        path, max_gap_frac=max_gap_frac, chunk_size=chunk_size
    )
    latents = [
        model.get_latent(ad.AnnData(X=codes[start:stop]))
        for start, stop in chunk_ranges(len(codes), chunk_size, "embedding sequences")
    ]
    obs = pd.DataFrame({"id": ids}, index=ad.utils.make_index_unique(pd.Index(ids)))
    return np.concatenate(latents), obs, report


def embed_new(
    model_dir: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    device: str = "auto",
    min_overlap: float = 0.8,
    layer: str | None = None,
    max_gap_frac: float = 0.5,
    chunk_size: int = 10_000,
    var_key: str | None = None,
) -> dict[str, Any]:
    """Embed a new dataset with a trained model; write ``obsm['X_vae']`` to ``output``.

    Expression: genes are matched by name (or by the ``var`` column ``var_key``, e.g.
    Ensembl ids, present in both the training data and the input), reordered and
    zero-filled (the overlap
    report goes to ``uns['overlap']``, the missing-gene mask to ``uns['gene_present']``);
    raw counts are required; ``.h5ad`` inputs are read from disk in chunks.
    Protein: an alignment is checked to hold the model's focus columns (same residue
    numbers and wild type); unaligned FASTA is aligned to the training family with
    pyhmmer's ``hmmalign`` and sequences with more than ``max_gap_frac`` gaps in the
    model's columns are reported as not aligned. A ``.manifest.json`` is written beside
    ``output``.
    """
    started = time.perf_counter()
    model_dir, input_path, output = Path(model_dir), Path(input_path), Path(output)
    torch_device = resolve_device(device)
    model = load_model(model_dir, torch_device)
    if not input_path.exists():
        raise VAEInputError(input_path, "file does not exist")
    _check_domain(model.domain, input_path)
    if model.domain == "expression":
        latent, obs, report = _embed_cells(
            model,
            input_path,
            layer=layer,
            min_overlap=min_overlap,
            chunk_size=chunk_size,
            var_key=var_key,
        )
    else:
        latent, obs, report = _embed_sequences(
            model, input_path, max_gap_frac=max_gap_frac, chunk_size=chunk_size
        )
    out = ad.AnnData(obs=obs)
    out.obsm[KEYS.X_VAE] = latent
    out.uns["overlap"] = {k: v for k, v in report.items() if not isinstance(v, list)}
    for key in ("not_aligned", "unencodable", "gene_present"):
        if key in report:
            out.uns[key] = np.asarray(report[key])
    out.uns["model"] = {"path": str(model_dir), "domain": model.domain}
    write_h5ad_atomic(out, output)
    write_manifest(
        output.parent,
        name=sidecar_manifest(output).name,
        inputs={"input": input_path, "model": model_dir / FILES.MODEL},
        config={
            "min_overlap": min_overlap,
            "layer": layer,
            "max_gap_frac": max_gap_frac,
            "var_key": var_key,
        },
        seed=None,
        device=str(torch_device),
        wall_seconds=time.perf_counter() - started,
    )
    return report
