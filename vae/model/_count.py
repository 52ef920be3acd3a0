"""Single-cell count model: setup from counts, embeddings and posterior-predictive samples."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from vae.data._csr import CSRCounts
from vae.errors import VAEInputError
from vae.model._base import BaseModel
from vae.module import CountVAE


class CountModel(BaseModel):
    """scVI-style model of raw counts in ``X`` with an optional batch covariate."""

    domain = "expression"
    module_cls = CountVAE

    @classmethod
    def from_anndata(
        cls, adata: ad.AnnData, *, batch_key: str | None = None, **module_kwargs
    ) -> CountModel:
        """Build an untrained model sized for ``adata`` (batch categories recorded)."""
        categories = (
            [str(c) for c in pd.Categorical(adata.obs[batch_key].astype(str)).categories]
            if batch_key
            else []
        )
        library = np.log(np.asarray(adata.X.sum(1)).ravel().clip(min=1))
        info = {
            "batch_key": batch_key,
            "batch_categories": categories,
            "log_library_mean": float(library.mean()),
            "log_library_std": float(library.std()),
            "preprocess": dict(adata.uns.get("preprocess", {})),
            # other gene identifiers of the training data (e.g. Ensembl ids), for matching
            "var_ids": {
                str(column): adata.var[column].astype(str).tolist()
                for column in adata.var.columns
                if adata.var[column].dtype == object or str(adata.var[column].dtype) == "category"
            },
        }
        kwargs = {"n_genes": adata.n_vars, "n_batches": len(categories)} | module_kwargs
        return cls(kwargs, list(adata.var_names), info)

    def batch_codes(self, adata: ad.AnnData) -> torch.Tensor:
        """Integer batch codes in the model's category order (zeros without batches)."""
        key, categories = self.info["batch_key"], self.info["batch_categories"]
        if not key:
            return torch.zeros(adata.n_obs, dtype=torch.long)
        if key not in adata.obs:
            raise VAEInputError(key, f"batch key {key!r} not in obs")
        codes = pd.Categorical(adata.obs[key].astype(str), categories=categories).codes
        if (codes < 0).any():
            unknown = sorted(set(adata.obs[key].astype(str)) - set(categories))
            raise VAEInputError(key, f"batches {unknown[:5]} were not seen in training")
        return torch.as_tensor(np.array(codes), dtype=torch.long)

    def tensors(self, adata: ad.AnnData) -> dict[str, CSRCounts | torch.Tensor]:
        """``x``: the counts as a CSR store (minibatches carry their nonzeros); ``batch``."""
        return {"x": CSRCounts.from_scipy(adata.X), "batch": self.batch_codes(adata)}

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0) -> ad.AnnData:
        """Posterior-predictive counts for ``n`` prior draws.

        Library sizes are drawn from the log-normal fitted to the training data and
        batches uniformly from the training batches.
        """
        self.module.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            log_lib = torch.randn(n) * self.info["log_library_std"] + self.info["log_library_mean"]
            n_batches = max(len(self.info["batch_categories"]), 1)
            batch = torch.randint(n_batches, (n,))
            counts = self.module.sample_counts(
                log_lib.exp().to(self.device), batch.to(self.device)
            )
        obs = pd.DataFrame(
            {"library_size": counts.sum(1).cpu().numpy()}, index=[f"sample_{i}" for i in range(n)]
        )
        if self.info["batch_categories"]:
            obs[self.info["batch_key"]] = pd.Categorical.from_codes(
                batch.numpy(), self.info["batch_categories"]
            )
        return ad.AnnData(
            X=sp.csr_matrix(counts.cpu().numpy()), obs=obs, var=pd.DataFrame(index=self.var_names)
        )
