"""How much pbmc3k's labels favour the PCA geometry they were made from.

The ``cell_type`` labels of pbmc3k come from the Seurat tutorial: Louvain clusters of a
kNN graph on PCA(10) of log-normalised, per-gene scaled counts. This script scores, with
the same :func:`vae.metrics.embedding_metrics` as every other comparison, PCA embeddings
that differ from that recipe only in the number of components or the scaling step. If
kNN accuracy peaks at the recipe's own geometry and falls with more or fewer components,
the labels measure closeness to that geometry as much as biology, and no embedding
trained on another objective can be expected to match PCA(10) on them.

Usage::

    .venv/bin/python benchmarks/label_provenance.py
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import anndata as ad
import scanpy as sc

from vae.metrics import embedding_metrics, pca_baseline

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared/data/expression/pbmc3k_hvg2000_counts.h5ad"


def main() -> None:
    """Score PCA variants against the labels; print a table and write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--label-key", default="cell_type")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/label_provenance.json")
    args = parser.parse_args()

    adata = ad.read_h5ad(args.data)
    labels = adata.obs[args.label_key].to_numpy()
    embeddings = {
        f"PCA({n}) of log1p-CP10k": pca_baseline(adata.X, n, seed=args.seed)
        for n in (5, 10, 20, 50)
    }
    scaled = adata.copy()
    sc.pp.normalize_total(scaled, target_sum=1e4)
    sc.pp.log1p(scaled)
    sc.pp.scale(scaled, max_value=10)
    sc.pp.pca(scaled, n_comps=10, random_state=args.seed)
    embeddings["PCA(10) of scaled log1p-CP10k (the labels' recipe)"] = scaled.obsm["X_pca"]

    results = {
        name: embedding_metrics(embedding, labels, seed=args.seed)
        for name, embedding in embeddings.items()
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print("| embedding | KMeans ARI | Leiden ARI | kNN(15) acc. | label silh. |")
    print("| --- | --- | --- | --- | --- |")
    for name, m in results.items():
        print(
            f"| {name} | {m['kmeans_ari']:.3f} | {m['leiden_ari']:.3f} "
            f"| {m['knn_accuracy']:.3f} | {m['silhouette_label']:.3f} |"
        )


if __name__ == "__main__":
    main()
