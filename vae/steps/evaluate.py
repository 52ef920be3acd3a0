"""Evaluate a trained model: held-out likelihoods, variant effects, embedding metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from vae._constants import KEYS
from vae._io import read_embedding, read_h5ad, write_json_atomic, write_text_atomic
from vae.data import preprocess_obs_keys, read_variant_labels
from vae.data._backed import stored_csr_bytes
from vae.errors import VAEInputError
from vae.metrics import (
    SCAN_SCORE_COLUMNS,
    embedding_metrics,
    evaluate_scan,
    evaluation_cells,
    eve_metrics,
    pca_baseline,
    variant_auc,
)
from vae.metrics._samples import read_samples, sample_statistics
from vae.model import load_model
from vae.steps.score import load_members, member_columns, member_seed


def evaluate_protein(
    model_dirs: str | Path | list[str | Path],
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
    evidence_examples: int = 10_000,
    seed: int = 0,
    eve_global: str | Path | None = None,
) -> dict[str, Any]:
    """Held-out ELBO and log-evidence vs the site-independent model; AUC and scan ρ.

    The site-independent model is fit on the model's training sequences and scores the
    same variants. With ``labels``, the ROC AUC of ``evol_index`` (from ``scores``); with
    ``scan`` (a deep mutational scan, :func:`vae.data.read_scan`), the Spearman ρ of both
    models on the scan's variants, scored here with ``score_settings`` (the
    :meth:`~vae.model.SequenceModel.log_likelihood` keywords of the scoring step), and the
    variants skipped by reason; ``scan_scores`` receives the per-variant table. With
    ``samples`` (``samples.fasta``), sample statistics (see :func:`sample_statistics`).

    ``eve_global``: the protein's table of EVE's global + per-protein mixture
    (:func:`~vae.steps.score_eve_global`); with labels its metrics get an ``eve_global_``
    prefix.

    Several model folders are a seed ensemble (``scores`` holds their mean evol index):
    the AUC and ρ are the ensemble's, ``members`` gives each member's seed, AUC and ρ;
    held-out likelihoods and the baseline are those of the first (main) model.
    """
    dirs = [model_dirs] if isinstance(model_dirs, (str, Path)) else list(model_dirs)
    members = load_members(dirs)
    model = members[0]
    adata = read_h5ad(data)
    val = model.validation_index
    codes = np.asarray(adata.X)
    weights = adata.obs[KEYS.WEIGHT].to_numpy()
    site = model.site_independent_baseline(adata)
    metrics: dict[str, Any] = {
        "n_sequences": int(adata.n_obs),
        "n_columns": int(adata.n_vars),
        "neff": float(weights.sum()),
        "n_heldout": int(val.size),
        # how variants were scored: the estimator, and profile's latent shrinkage
        "score_settings": dict(score_settings or {}),
    }
    if val.size:
        metrics |= _heldout_likelihoods(
            model, adata.__getitem__, "sequence", evidence_samples, seed, evidence_examples
        )
        metrics |= {
            "heldout_site_independent_loglik_per_sequence": float(
                site.log_likelihood(codes[val]).mean()
            ),
        }
    table = pd.read_csv(scores)
    metrics["n_variants_scored"] = int(len(table))
    label_table = None if labels is None else read_variant_labels(labels, protein)
    if label_table is not None:
        metrics |= variant_auc(table, label_table)
        if "eve_score" in table:
            metrics |= eve_metrics(table, label_table)
        if eve_global is not None:
            combined = eve_metrics(pd.read_csv(eve_global), label_table)
            metrics |= {f"eve_global_{k.removeprefix('eve_')}": v for k, v in combined.items()}
        site_table = site.score_single_mutants()
        metrics |= {
            f"site_independent_{k}": v for k, v in variant_auc(site_table, label_table).items()
        }
    if scan is not None:
        metrics |= evaluate_scan(
            members,
            site,
            scan,
            scan_scores,
            score_column=scan_score_column,
            higher_is_fitter=scan_higher_is_fitter,
            score_settings=score_settings or {},
        )
    elif scan_scores is not None:  # the workflow's output exists whatever the sheet says
        write_text_atomic(scan_scores, ",".join(SCAN_SCORE_COLUMNS) + "\n")
    if len(members) > 1:
        metrics["members"] = _member_metrics(members, table, metrics, label_table)
    if samples is not None:
        generated = read_samples(samples, adata.n_vars)
        metrics |= sample_statistics(generated, codes, weights)
    write_json_atomic(output, metrics)
    return metrics


def _member_metrics(
    members: list, table: pd.DataFrame, metrics: dict, label_table: pd.DataFrame | None
) -> list[dict[str, Any]]:
    """Seed, ClinVar AUC and scan ρ of each member of an ensemble."""
    seeds = [member_seed(m, i) for i, m in enumerate(members)]
    rows = [{"seed": s} for s in seeds]
    if label_table is not None:
        for row, column in zip(rows, member_columns(seeds), strict=True):
            member = table[["mutant", column]].rename(columns={column: "evol_index"})
            if "roc_auc" in (auc := variant_auc(member, label_table)):
                row["roc_auc"] = auc["roc_auc"]
    for row, rho in zip(rows, metrics.get("dms_member_spearman", []), strict=False):
        row["dms_spearman"] = rho
    return rows


def _heldout_likelihoods(
    model,
    rows: Callable[[np.ndarray], ad.AnnData],
    unit: str,
    n_samples: int,
    seed: int,
    max_evidence: int,
) -> dict[str, float | int]:
    """Held-out ELBO (posterior mean), and the log-evidence with the ELBO of its own draws.

    ``rows(index)`` gives the examples at (sorted) positions of the model's validation
    set. The ELBO uses every held-out example. The log-evidence costs ``n_samples`` passes,
    so above ``max_evidence`` examples it uses a seeded uniform random subsample of that
    many (:func:`~vae.metrics.evaluation_cells`, sorted: a backed file streams once); its
    gap is to the sampled ELBO of the same examples and draws.
    """
    val = model.validation_index
    heldout = rows(val)
    subset = evaluation_cells(val.size, max_evidence, seed)
    weighted = heldout if subset.size == val.size else rows(val[subset])
    evidence, sampled = model.log_evidence(weighted, n_samples=n_samples, seed=seed)
    return {
        f"heldout_elbo_per_{unit}": float(model.elbo(heldout).mean()),
        f"heldout_elbo_sampled_per_{unit}": float(sampled.mean()),
        f"heldout_log_evidence_per_{unit}": float(evidence.mean()),
        f"heldout_evidence_gap_per_{unit}": float((evidence - sampled).mean()),
        "evidence_samples": int(n_samples),
        f"n_heldout_{unit}s": int(heldout.n_obs),
        f"n_heldout_{unit}s_evidence": int(subset.size),
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
    evidence_examples: int = 10_000,
) -> dict[str, Any]:
    """Held-out ELBO and log-evidence per cell, label/batch metrics of X_vae and of PCA.

    The held-out log-evidence is importance-weighted with ``evidence_samples`` draws
    (:meth:`~vae.model.BaseModel.log_evidence`, as scvi-tools' ``get_marginal_ll``), next
    to the ELBO of the same draws and their gap, on at most ``evidence_examples``
    validation cells (a seeded subsample above it: at atlas scale the draws, not the
    reading, dominate the stage); the held-out ELBO uses every validation cell.

    The counts stay on disk: the validation cells (for the ELBO and the log-evidence)
    stream from the file in row blocks, one minibatch in memory at a time, when ``X``
    is CSR (as preprocessing writes it; otherwise they are loaded), and only the evaluated
    cells (:func:`evaluation_cells`; for the metrics and the PCA baseline, fitted on those
    cells) are loaded. ``metrics.json`` records ``n_cells_evaluated``.
    """
    model = load_model(model_dir)
    adata = read_h5ad(data, backed=True)
    latent = read_embedding(embedding, KEYS.X_VAE).obsm[KEYS.X_VAE]
    if latent.shape[0] != adata.n_obs:
        raise VAEInputError(
            embedding, f"{latent.shape[0]} embedded cells, but {data} has {adata.n_obs}"
        )
    val = model.validation_index
    keys = preprocess_obs_keys(adata)
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
        # CSR counts stream from disk block by block (a backed view); others are loaded
        csr = stored_csr_bytes(data) is not None

        def rows(index: np.ndarray) -> ad.AnnData:
            return adata[index] if csr else adata[index].to_memory()

        metrics |= _heldout_likelihoods(
            model, rows, "cell", evidence_samples, seed, evidence_examples
        )
    metrics["vae"] = embedding_metrics(latent[cells], labels, batches, seed=seed)
    counts = adata[cells].to_memory().X
    adata.file.close()
    baseline = pca_baseline(counts, latent.shape[1], seed=seed)
    metrics["pca_baseline"] = embedding_metrics(baseline, labels, batches, seed=seed)
    write_json_atomic(output, metrics)
    return metrics
