"""One function per workflow step; the Snakemake scripts and the CLI call these.

Every step reads its inputs, checks them, and writes its outputs atomically, so
a failure leaves earlier results untouched and no partial file behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from vae._constants import FILES, KEYS
from vae._device import resolve_device
from vae._io import (
    atomic_path,
    read_embedding,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from vae.data import (
    alignment_to_anndata,
    decode,
    encode_variants,
    prepare_counts,
    read_alignment,
    read_variant_labels,
    select_positions,
)
from vae.data._hmm import build_family_hmm
from vae.data._scan import read_variant_names
from vae.errors import VAEInputError, unreadable
from vae.metrics import (
    SCAN_SCORE_COLUMNS,
    embedding_metrics,
    evaluate_scan,
    evaluation_cells,
    learning_curve_monitor,
    pca_baseline,
    variant_auc,
)
from vae.model import CountModel, SequenceModel, SiteIndependentModel, load_model
from vae.provenance import write_manifest
from vae.sample_stats import read_samples, sample_statistics
from vae.train import TrainConfig
from vae.train._trainer import NonFiniteLossError

logger = logging.getLogger(__name__)

BUILTIN_SOURCES = {
    "builtin:pbmc68k": ".h5ad",
    "builtin:pf02826": ".a2m",
    "builtin:pf02826_raw": ".fasta",
}


def write_h5ad_atomic(adata: ad.AnnData, path: str | Path) -> None:
    """Write ``adata`` to ``path`` through a temporary file."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")


def read_h5ad(path: str | Path, *, backed: bool = False) -> ad.AnnData:
    """Read an ``.h5ad`` file (``backed``: leave ``X`` on disk), errors as one clear line."""
    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "file does not exist")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:
        raise VAEInputError(path, unreadable(err, "AnnData")) from err


def use_backed(path: str | Path, backed: bool | str) -> bool:
    """Decide whether counts are read from disk block by block (``backed``) or loaded.

    ``"auto"``: backed when ``X`` is CSR and would take more than
    :data:`~vae.data._backed.BACKED_AUTO_BYTES` in memory. ``True`` needs a CSR ``X``.
    """
    from vae.data._backed import BACKED_AUTO_BYTES, stored_csr_bytes

    if backed == "auto":
        size = stored_csr_bytes(path)
        return size is not None and size > BACKED_AUTO_BYTES
    if not isinstance(backed, bool):
        raise VAEInputError("backed", f"must be auto, true or false, not {backed!r}")
    return backed


# --------------------------------------------------------------------------- sources
def fetch_source(source: str, output: str | Path, *, sha256: str | None = None) -> None:
    """Materialise a dataset source: a built-in demo set or an https URL.

    Parameters
    ----------
    source
        ``builtin:pbmc68k`` (scanpy's 700-cell PBMC subset, raw counts recovered),
        ``builtin:pf02826`` (family emitted from pyhmmer's Pfam PF02826 profile),
        ``builtin:pf02826_raw`` (new unaligned sequences from that profile plus random
        decoys, for batch embedding),
        or an ``https://`` URL (``sha256`` required).
    output
        Destination file.
    sha256
        Expected checksum of a downloaded file.
    """
    from vae.data._demo import emit_family_alignment, emit_raw_sequences, pbmc68k_counts

    output = Path(output)
    if source == "builtin:pbmc68k":
        write_h5ad_atomic(pbmc68k_counts(), output)
    elif source == "builtin:pf02826":
        rows = emit_family_alignment(n_sequences=3000, seed=0)
        write_text_atomic(output, "".join(f">{name}\n{row}\n" for name, row in rows))
    elif source == "builtin:pf02826_raw":
        rows = emit_raw_sequences(n_sequences=300, n_decoys=5, seed=1)
        write_text_atomic(output, "".join(f">{name}\n{seq}\n" for name, seq in rows))
    elif source.startswith("https://"):
        if not sha256:
            raise VAEInputError(source, "an https source needs a sha256 in the dataset sheet")
        with atomic_path(output) as tmp:
            with urllib.request.urlopen(source, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
            if sha256_file(tmp) != sha256:
                raise VAEInputError(source, "downloaded file does not match its sha256")
    else:
        raise VAEInputError(source, "unknown source; use a path, builtin:NAME or an https URL")


# --------------------------------------------------------------------------- preprocess
def preprocess_protein(
    alignment: str | Path,
    output: str | Path,
    *,
    focus_id: str | None = None,
    max_seq_gap_frac: float = 0.5,
    max_col_gap_frac: float = 0.3,
    theta: float = 0.2,
    device: str = "auto",
) -> dict[str, Any]:
    """Filter, encode and weight an alignment; write it as ``.h5ad``. Returns the stats."""
    msa = read_alignment(
        alignment,
        focus_id=focus_id,
        max_seq_gap_frac=max_seq_gap_frac,
        max_col_gap_frac=max_col_gap_frac,
    )
    adata = alignment_to_anndata(msa, theta=theta, device=resolve_device(device))
    adata.uns["preprocess"] |= {
        "source": str(alignment),
        "max_seq_gap_frac": max_seq_gap_frac,
        "max_col_gap_frac": max_col_gap_frac,
    }
    write_h5ad_atomic(adata, output)
    return dict(adata.uns["preprocess"])


def preprocess_expression(
    counts: str | Path,
    output: str | Path,
    *,
    layer: str | None = None,
    label_key: str | None = None,
    batch_key: str | None = None,
    min_genes: int = 1,
    min_cells: int = 1,
    n_top_genes: int | None = None,
) -> dict[str, Any]:
    """Check raw counts, QC-filter, optionally select HVGs; write ``.h5ad``. Returns the stats."""
    adata, stats = prepare_counts(
        counts,
        layer=layer,
        label_key=label_key,
        batch_key=batch_key,
        min_genes=min_genes,
        min_cells=min_cells,
        n_top_genes=n_top_genes,
    )
    adata.uns["preprocess"] = stats | {
        "source": str(counts),
        "layer": layer,
        "label_key": label_key,
        "batch_key": batch_key,
        "min_genes": min_genes,
        "min_cells": min_cells,
        "n_top_genes": n_top_genes,
    }
    write_h5ad_atomic(adata, output)
    return stats


# --------------------------------------------------------------------------- train
def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def train_model(
    data: str | Path,
    model_dir: str | Path,
    history: str | Path,
    *,
    domain: str,
    model_kwargs: dict[str, Any],
    train_kwargs: dict[str, Any],
    device: str = "auto",
    checkpoint: str | Path | None = None,
    scan: str | Path | None = None,
    scan_score_column: str = "score",
    scan_higher_is_fitter: bool = True,
    labels: str | Path | None = None,
    protein: str | None = None,
) -> dict[str, Any]:
    """Train a model on a preprocessed ``.h5ad``; write the model folder and history.

    Parameters
    ----------
    data
        Output of :func:`preprocess_protein` or :func:`preprocess_expression`.
    model_dir
        Folder to create (written whole, then renamed into place).
    history
        TSV with one row per evaluation.
    domain
        ``protein`` or ``expression``.
    model_kwargs
        Module settings (e.g. ``n_latent``, ``likelihood``).
    train_kwargs
        :class:`~vae.train.TrainConfig` fields, plus for expression ``backed``: ``"auto"``
        (default), ``True`` or ``False``; backed training reads the counts from the file
        block by block instead of loading them (:func:`use_backed`).
    device
        ``auto``, ``cpu`` or ``cuda``.
    checkpoint
        Checkpoint file for resuming an interrupted run (kept outside ``model_dir``).
    scan, scan_score_column, scan_higher_is_fitter, labels, protein
        Protein: a deep mutational scan and/or ClinVar-style labels (rows of ``protein``)
        to follow during training. With ``train_kwargs["monitor_draws"] > 0`` (default 4)
        every history row gains ``monitor_dms_spearman`` / ``monitor_roc_auc`` from that
        many draws: the learning curve of what users need, next to the ELBO. Model
        selection never uses them.
    """
    started = time.perf_counter()
    train_kwargs = dict(train_kwargs)
    backed = train_kwargs.pop("backed", "auto")
    monitor_draws = train_kwargs.pop("monitor_draws", 4)
    if domain != "expression" and backed is True:
        raise VAEInputError(f"train.{domain}.backed", "backed reading is for expression data")
    backed = domain == "expression" and use_backed(data, backed)
    adata = read_h5ad(data, backed=backed)
    torch_device = resolve_device(device)
    config = TrainConfig(**train_kwargs)
    if domain == "protein":
        model = SequenceModel.from_anndata(adata, **model_kwargs)
    elif domain == "expression":
        batch_key = adata.uns.get("preprocess", {}).get("batch_key")
        model = CountModel.from_anndata(adata, batch_key=batch_key, **model_kwargs)
    else:
        raise VAEInputError("domain", f"unknown domain {domain!r}")
    model.to(torch_device)
    monitor = None
    if domain == "protein" and monitor_draws > 0 and (scan is not None or labels is not None):
        monitor = learning_curve_monitor(
            model,
            scan=scan,
            score_column=scan_score_column,
            higher_is_fitter=scan_higher_is_fitter,
            labels=None if labels is None else read_variant_labels(labels, protein),
            n_samples=monitor_draws,
            seed=config.seed,
        )
    key = _fingerprint(sha256_file(data), domain, model_kwargs)
    try:
        result = model.train(
            adata, config, checkpoint_path=checkpoint, checkpoint_key=key, monitor=monitor
        )
    except NonFiniteLossError as err:  # one line naming the settings; no model is written
        raise VAEInputError(f"train.{domain}", str(err)) from err
    model.info["train"] = (
        asdict(config)
        | {
            "steps": result.steps,
            "val_index": result.val_index.tolist(),
        }
        | result.extra
    )

    model_dir = Path(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.", dir=model_dir.parent))
    staging.chmod(0o755)
    try:
        model.save(staging)
        if domain == "protein":
            build_family_hmm(decode(np.asarray(adata.X)), staging / FILES.FAMILY_HMM)
        write_manifest(
            staging,
            inputs={"data": data},
            config={"domain": domain, "model": model_kwargs, "train": asdict(config)},
            seed=config.seed,
            device=str(torch_device),
            wall_seconds=time.perf_counter() - started,
            extra={"train_seconds": result.seconds, "steps": result.steps, "backed": backed},
        )
        with atomic_path(history) as tmp:
            result.history.to_csv(tmp, sep="\t", index=False)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        staging.rename(model_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return {"steps": result.steps, "seconds": result.seconds}


# --------------------------------------------------------------------------- embed/sample/score
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
    out.uns["obs_keys"] = _obs_keys(adata)
    write_h5ad_atomic(out, output)
    output = Path(output)
    write_manifest(
        output.parent,
        name=f"{output.name.removesuffix('.h5ad')}.manifest.json",
        inputs={"data": data, "model": Path(model_dir) / FILES.MODEL},
        config={},
        seed=None,
        device=str(torch_device),
        wall_seconds=time.perf_counter() - started,
    )


def _obs_keys(adata: ad.AnnData) -> dict[str, str]:
    """Return the label and batch columns recorded by preprocessing."""
    settings = adata.uns.get("preprocess", {})
    return {k: settings[k] for k in ("label_key", "batch_key") if settings.get(k)}


def sample_protein(model_dir: str | Path, output: str | Path, *, n: int, seed: int = 0) -> None:
    """Write ``n`` sequences generated from the prior as FASTA."""
    model = load_model(model_dir)
    sequences = model.sample(n, seed=seed)
    write_text_atomic(output, "".join(f">sample_{i}\n{s}\n" for i, s in enumerate(sequences)))


def sample_expression(
    model_dir: str | Path,
    output: str | Path,
    *,
    n: int,
    seed: int = 0,
    condition_on: str | Path | None = None,
    batch: str | None = None,
) -> None:
    """Write ``n`` posterior-predictive cells as ``.h5ad`` (gene names kept).

    From the prior, or with ``condition_on`` (an ``.h5ad`` with the model's genes, e.g. its
    preprocessed data) conditioned on cells drawn from that file; ``batch`` puts every
    sample in that training batch (see :meth:`vae.model.CountModel.sample`).
    """
    model = load_model(model_dir)
    cells = None
    if condition_on is not None:
        cells = read_h5ad(condition_on)
        if list(cells.var_names) != model.var_names:
            raise VAEInputError(condition_on, "genes differ from the model's (names or order)")
    write_h5ad_atomic(model.sample(n, seed=seed, cells=cells, batch=batch), output)


def _load_protein_model(model_dir: str | Path, device) -> SequenceModel:
    """Load a model folder that must hold a protein model."""
    model = load_model(model_dir, device)
    if model.domain != "protein":
        raise VAEInputError(model_dir, "variant scores need a protein model")
    return model


def score_variants(
    model_dir: str | Path,
    output: str | Path,
    *,
    n_samples: int = 20,
    seed: int = 0,
    device: str = "auto",
    common_draws: bool = True,
    estimator: str = "elbo",
) -> None:
    """Write the evolutionary index of every single substitution of the focus sequence.

    ``estimator``: ``elbo`` (difference of ELBOs, DeepSequence/EVE) or ``evidence``
    (difference of importance-weighted log-evidence estimates over the same draws).
    """
    model = _load_protein_model(model_dir, resolve_device(device))
    table = model.score_single_mutants(
        n_samples=n_samples, seed=seed, common_draws=common_draws, estimator=estimator
    )
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")


def score_variant_table(
    model_dirs: list[str | Path],
    variants: str | Path,
    output: str | Path,
    *,
    n_samples: int = 20,
    seed: int = 0,
    device: str = "auto",
    common_draws: bool = True,
    estimator: str = "elbo",
    chunk_size: int = 10_000,
) -> dict[str, int]:
    """Score the variants of a table (single or multiple mutants) with one model or several.

    Every row of ``variants`` (a ``mutant`` or ``variant`` column, ``A110D:N146D``; ``/``
    and ``,`` also separate) comes back in ``output`` with its ``status``: ``scored``,
    ``outside_columns`` (a position the models do not model) or ``wt_mismatch``. Scored
    rows get ``evol_index`` (log-likelihood of the wild type minus the variant's, the same
    draws as the single-mutant scan), averaged over the models when several are given
    (an ensemble; ``evol_index_sd`` and one ``evol_index_<i>`` column per model then).
    Variants are encoded and scored ``chunk_size`` at a time, so memory is bounded by the
    chunk, not by the table.

    Returns
    -------
    dict
        Counts per status.
    """
    if chunk_size < 1:
        raise VAEInputError("chunk_size", f"must be at least 1, not {chunk_size}")
    torch_device = resolve_device(device)
    models = [_load_protein_model(m, torch_device) for m in model_dirs]
    for path, model in zip(model_dirs, models, strict=True):
        same = (model.info["positions"], model.info["focus_residues"])
        if same != (models[0].info["positions"], models[0].info["focus_residues"]):
            raise VAEInputError(
                path, f"models the columns of another alignment than {model_dirs[0]}"
            )
    names = read_variant_names(variants)
    info = models[0].info
    settings = {"n_samples": n_samples, "seed": seed, "common_draws": common_draws}
    parts = []
    for start in range(0, len(names), chunk_size):
        chunk = names[start : start + chunk_size]
        encoded = encode_variants(
            chunk, info["positions"], info["focus_residues"], source=variants
        )
        status = {name: reason for reason, skipped in encoded.skipped.items() for name in skipped}
        part = pd.DataFrame({"mutant": chunk, "status": [status.get(n, "scored") for n in chunk]})
        scores = np.stack(
            [m.score_variants(encoded.codes, estimator=estimator, **settings) for m in models]
        )
        columns = {"n_mutations": encoded.n_mutations, "evol_index": scores.mean(0)}
        if len(models) > 1:
            columns["evol_index_sd"] = scores.std(0, ddof=1)
            columns |= {f"evol_index_{i}": values for i, values in enumerate(scores)}
        for column, values in columns.items():
            part[column] = part["mutant"].map(dict(zip(encoded.names, values, strict=True)))
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    return {k: int(v) for k, v in table["status"].value_counts().items()}


# --------------------------------------------------------------------------- evaluate
def evaluate_protein(
    model_dir: str | Path,
    data: str | Path,
    scores: str | Path,
    output: str | Path,
    *,
    labels: str | Path | None = None,
    protein: str | None = None,
    samples: str | Path | None = None,
    scan: str | Path | None = None,
    scan_scores: str | Path | None = None,
    scan_score_column: str = "score",
    scan_higher_is_fitter: bool = True,
    score_settings: dict[str, Any] | None = None,
    evidence_samples: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """Held-out ELBO and log-evidence vs the site-independent model; AUC and scan ρ.

    The site-independent model is fit on the model's training sequences and scores the
    same variants. With ``labels``, the ROC AUC of ``evol_index`` (from ``scores``); with
    ``scan`` (a deep mutational scan, :func:`vae.data.read_scan`), the Spearman ρ of both
    models on the scan's variants, scored here with ``score_settings`` (the
    :meth:`~vae.model.SequenceModel.log_likelihood` keywords of the scoring step), and the
    variants skipped by reason; ``scan_scores`` receives the per-variant table. With
    ``samples`` (``samples.fasta``), sample statistics (see :func:`sample_statistics`).
    """
    model = load_model(model_dir)
    adata = read_h5ad(data)
    val = np.asarray(model.info["train"]["val_index"], dtype=int)
    train = np.setdiff1d(np.arange(adata.n_obs), val)
    codes = np.asarray(adata.X)
    weights = adata.obs[KEYS.WEIGHT].to_numpy()
    positions, residues = model.info["positions"], model.info["focus_residues"]
    site = SiteIndependentModel(positions, residues).fit(codes[train], weights[train])
    metrics: dict[str, Any] = {
        "n_sequences": int(adata.n_obs),
        "n_columns": int(adata.n_vars),
        "neff": float(weights.sum()),
        "n_heldout": int(val.size),
    }
    if val.size:
        metrics |= _heldout_likelihoods(model, adata[val], "sequence", evidence_samples, seed)
        metrics |= {
            "heldout_site_independent_loglik_per_sequence": float(
                site.log_likelihood(codes[val]).mean()
            ),
        }
    table = pd.read_csv(scores)
    metrics["n_variants_scored"] = int(len(table))
    if labels is not None:
        label_table = read_variant_labels(labels, protein)
        metrics |= variant_auc(table, label_table)
        site_table = pd.DataFrame(
            site.score_single_mutants().items(), columns=["mutant", "evol_index"]
        )
        metrics |= {
            f"site_independent_{k}": v for k, v in variant_auc(site_table, label_table).items()
        }
    if scan is not None:
        metrics |= evaluate_scan(
            model,
            site,
            scan,
            scan_scores,
            score_column=scan_score_column,
            higher_is_fitter=scan_higher_is_fitter,
            score_settings=score_settings or {},
        )
    elif scan_scores is not None:  # the workflow's output exists whatever the sheet says
        write_text_atomic(scan_scores, ",".join(SCAN_SCORE_COLUMNS) + "\n")
    if samples is not None:
        generated = read_samples(samples, adata.n_vars)
        metrics |= sample_statistics(generated, codes, weights)
    write_json_atomic(output, metrics)
    return metrics


def _heldout_likelihoods(
    model, heldout: ad.AnnData, unit: str, n_samples: int, seed: int
) -> dict[str, float | int]:
    """Held-out ELBO (posterior mean), and the log-evidence with the ELBO of its own draws."""
    evidence, sampled = model.log_evidence(heldout, n_samples=n_samples, seed=seed)
    return {
        f"heldout_elbo_per_{unit}": float(model.elbo(heldout).mean()),
        f"heldout_elbo_sampled_per_{unit}": float(sampled.mean()),
        f"heldout_log_evidence_per_{unit}": float(evidence.mean()),
        f"heldout_evidence_gap_per_{unit}": float((evidence - sampled).mean()),
        "evidence_samples": int(n_samples),
    }


def evaluate_expression(
    model_dir: str | Path,
    data: str | Path,
    embedding: str | Path,
    output: str | Path,
    *,
    seed: int = 0,
    max_cells: int = 50_000,
    evidence_samples: int = 100,
) -> dict[str, Any]:
    """Held-out ELBO and log-evidence per cell, label/batch metrics of X_vae and of PCA.

    The held-out log-evidence is importance-weighted with ``evidence_samples`` draws
    (:meth:`~vae.model.BaseModel.log_evidence`, as scvi-tools' ``get_marginal_ll``), next
    to the ELBO of the same draws and their gap.

    The counts stay on disk: only the validation cells (for the ELBO) and the evaluated
    cells (:func:`evaluation_cells`; for the metrics and the PCA baseline, fitted on
    those cells) are read. ``metrics.json`` records ``n_cells_evaluated``.
    """
    model = load_model(model_dir)
    adata = read_h5ad(data, backed=True)
    latent = read_embedding(embedding, KEYS.X_VAE).obsm[KEYS.X_VAE]
    if latent.shape[0] != adata.n_obs:
        raise VAEInputError(
            embedding, f"{latent.shape[0]} embedded cells, but {data} has {adata.n_obs}"
        )
    val = np.sort(np.asarray(model.info["train"]["val_index"], dtype=int))
    keys = _obs_keys(adata)
    cells = evaluation_cells(adata.n_obs, max_cells, seed)
    obs = adata.obs.iloc[cells]
    labels = obs[keys["label_key"]].to_numpy() if "label_key" in keys else None
    batches = obs[keys["batch_key"]].to_numpy() if "batch_key" in keys else None
    metrics: dict[str, Any] = {
        "n_cells": int(adata.n_obs),
        "n_genes": int(adata.n_vars),
        "n_cells_evaluated": int(cells.size),
    }
    if val.size:
        heldout = adata[val].to_memory()
        metrics |= _heldout_likelihoods(model, heldout, "cell", evidence_samples, seed)
    metrics["vae"] = embedding_metrics(latent[cells], labels, batches, seed=seed)
    counts = adata[cells].to_memory().X
    adata.file.close()
    baseline = pca_baseline(counts, latent.shape[1], seed=seed)
    metrics["pca_baseline"] = embedding_metrics(baseline, labels, batches, seed=seed)
    write_json_atomic(output, metrics)
    return metrics


# --------------------------------------------------------------------------- new data
def overlap_report(
    var_names: list[str], reference: list[str], *, min_overlap: float, source: str | Path
) -> tuple[np.ndarray, dict[str, Any]]:
    """Match ``var_names`` to the model's genes; fail below ``min_overlap``.

    Returns the index of each reference gene in ``var_names`` (-1 when missing) and a
    report of the overlap.
    """
    present = pd.Index(var_names).get_indexer(reference)
    found = present >= 0
    overlap = float(found.mean()) if len(reference) else 0.0
    report = {
        "n_reference_genes": len(reference),
        "n_input_genes": len(var_names),
        "n_shared_genes": int(found.sum()),
        "overlap": overlap,
        "min_overlap": min_overlap,
    }
    if not found.any():
        raise VAEInputError(source, f"none of the model's {len(reference)} genes is present")
    if overlap < min_overlap:
        raise VAEInputError(
            source,
            f"only {found.sum()} of {len(reference)} model genes present ({overlap:.0%} < "
            f"{min_overlap:.0%}); pass --allow-low-overlap to embed anyway",
        )
    return present, report


def align_genes(adata: ad.AnnData, present: np.ndarray, reference: list[str]) -> ad.AnnData:
    """Reorder genes to ``reference`` (indices from :func:`overlap_report`), zero-filling gaps.

    ``var["present"]`` marks the genes that were observed.
    """
    import scipy.sparse as sp

    found = present >= 0
    # a 0/1 selection matrix maps input genes onto model columns; absent columns stay zero
    selection = sp.csr_matrix(
        (np.ones(found.sum(), dtype=np.float32), (present[found], np.flatnonzero(found))),
        shape=(adata.n_vars, len(reference)),
    )
    columns = sp.csr_matrix(adata.X, dtype=np.float32) @ selection
    aligned = ad.AnnData(X=columns, obs=adata.obs.copy(), var=pd.DataFrame(index=reference))
    aligned.var["present"] = found
    return aligned


_ALIGNMENT_SUFFIXES = {".a2m", ".a3m", ".fasta", ".fa", ".faa", ".afa", ".sto", ".stk"}


def _check_domain(model_domain: str, input_path: Path) -> None:
    is_alignment = input_path.suffix.lower() in _ALIGNMENT_SUFFIXES
    if model_domain == "expression" and is_alignment:
        raise VAEInputError(input_path, "is a sequence file but the model is an expression model")
    if model_domain == "protein" and not is_alignment:
        raise VAEInputError(
            input_path,
            f"the model is a protein model; give a FASTA/A2M/Stockholm file, not "
            f"{input_path.suffix or 'a file without suffix'}",
        )


def _chunks(n: int, size: int, what: str):
    from tqdm import tqdm

    for start in tqdm(range(0, n, size), desc=f"embedding {what}", unit="chunk", disable=None):
        yield start, min(start + size, n)


def _gene_ids(model: CountModel, source: ad.AnnData, var_key: str | None, path: Path):
    """Gene identifiers of the input and of the model, by name or by a ``var`` column."""
    if var_key is None:
        return list(source.var_names.astype(str)), model.var_names
    if var_key not in source.var:
        raise VAEInputError(path, f"var column {var_key!r} not found; columns: {list(source.var)}")
    reference = model.info.get("var_ids", {}).get(var_key)
    if reference is None:
        raise VAEInputError(path, f"the model has no training var column {var_key!r} to match")
    return list(source.var[var_key].astype(str)), reference


def _embed_cells(
    model: CountModel,
    path: Path,
    *,
    layer: str | None,
    min_overlap: float,
    chunk_size: int,
    var_key: str | None = None,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    from vae.data import counts_matrix, read_counts_file

    if path.suffix.lower() == ".h5ad" and path.is_file() and path.stat().st_size > 0:
        try:
            source = ad.read_h5ad(path, backed="r")  # chunks are read from disk one at a time
        except Exception as err:
            raise VAEInputError(path, unreadable(err, "AnnData")) from err
    else:
        source = read_counts_file(path)
    query_ids, reference_ids = _gene_ids(model, source, var_key, path)
    present, report = overlap_report(
        query_ids, reference_ids, min_overlap=min_overlap, source=path
    )
    report["matched_by"] = var_key or "var_names"
    batch_key = model.info.get("batch_key")
    if batch_key and batch_key not in source.obs:
        raise VAEInputError(path, f"batch key {batch_key!r} of the model is not an obs column")
    latents = []
    for start, stop in _chunks(source.n_obs, chunk_size, "cells"):
        chunk = source[start:stop]
        chunk = chunk.to_memory() if chunk.isbacked else chunk
        chunk = ad.AnnData(X=counts_matrix(chunk, layer, path), obs=chunk.obs)
        latents.append(model.get_latent(align_genes(chunk, present, model.var_names)))
    obs = source.obs.copy()
    obs.index = obs.index.astype(str)
    latent = np.concatenate(latents) if latents else np.zeros((0, model.module.n_latent))
    report["gene_present"] = (present >= 0).tolist()
    return latent, obs, report


def _embed_sequences(
    model: SequenceModel,
    model_dir: Path,
    path: Path,
    *,
    max_gap_frac: float,
    chunk_size: int,
) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    from vae.data import encode, read_records
    from vae.data._hmm import align_to_family

    records = read_records(path)
    aligned = any(c in seq for _, seq in records for c in "-.") or any(
        any(ch.islower() for ch in seq) and any(ch.isupper() for ch in seq) for _, seq in records
    )
    if aligned:
        msa = read_alignment(path, max_seq_gap_frac=1.0, max_col_gap_frac=1.0)
        msa = select_positions(msa, model.info["positions"], path)
        if msa.focus_residues != model.info["focus_residues"]:
            raise VAEInputError(
                path, "focus residues differ from the model's at the same positions"
            )
        ids, rows = msa.ids, msa.sequences
        report = {
            "mode": "aligned",
            "n_sequences_read": len(records),
            "n_dropped_ambiguous": msa.stats["n_dropped_ambiguous_sequences"],
            "not_aligned": [],
        }
    else:
        hmm = model_dir / FILES.FAMILY_HMM
        if not hmm.is_file():
            raise VAEInputError(model_dir, f"no {FILES.FAMILY_HMM}: cannot align raw sequences")
        ids, rows, not_aligned, unencodable = [], [], [], []
        for start, stop in _chunks(len(records), chunk_size, "sequences (hmmalign)"):
            batch = records[start:stop]
            for (rid, _), row in zip(batch, align_to_family(hmm, batch), strict=True):
                if row is None or any(c in row for c in "BZXJUO*"):
                    unencodable.append(rid)
                elif row.count("-") / len(row) > max_gap_frac:
                    not_aligned.append(rid)
                else:
                    ids.append(rid)
                    rows.append(row)
        report = {
            "mode": "unaligned (hmmalign to the training family)",
            "n_sequences_read": len(records),
            "max_gap_frac": max_gap_frac,
            "not_aligned": not_aligned,
            "unencodable": unencodable,
        }
    if not rows:
        raise VAEInputError(path, "no sequence could be aligned to the model's family")
    latents = []
    for start, stop in _chunks(len(rows), chunk_size, "sequences"):
        codes = encode(rows[start:stop])
        latents.append(model.get_latent(ad.AnnData(X=codes)))
    report["n_embedded"] = len(rows)
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
            model, model_dir, input_path, max_gap_frac=max_gap_frac, chunk_size=chunk_size
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
        name=f"{output.name.removesuffix('.h5ad')}.manifest.json",
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
