"""Protein family model: setup from a preprocessed alignment, variant scores, samples."""

from __future__ import annotations

import contextlib
import math

import anndata as ad
import numpy as np
import pandas as pd
import torch

from vae._constants import KEYS, PROTEIN_ALPHABET
from vae.data import decode
from vae.data._mutants import focus_codes, single_mutant_codes, single_mutants
from vae.model._base import BaseModel
from vae.model._site_independent import SiteIndependentModel
from vae.module import SequenceVAE


class SequenceModel(BaseModel):
    """DeepSequence/EVE-style model of a protein family alignment.

    The AnnData it works on holds alphabet indices in ``X`` (``n_sequences x L``),
    sequence weights in ``obs["weight"]``, and per column ``var["position"]`` and
    ``var["wt"]`` (see :func:`vae.data.alignment_to_anndata`).
    """

    domain = "protein"
    module_cls = SequenceVAE

    @classmethod
    def from_anndata(cls, adata: ad.AnnData, **module_kwargs) -> SequenceModel:
        """Build an untrained model sized for ``adata``."""
        kwargs = {"n_positions": adata.n_vars, "n_tokens": len(PROTEIN_ALPHABET)} | module_kwargs
        info = {
            "positions": adata.var["position"].astype(int).tolist(),
            "focus_residues": "".join(adata.var["wt"]),
            "focus_id": adata.uns.get("focus_id"),
            "preprocess": dict(adata.uns.get("preprocess", {})),
        }
        return cls(kwargs, list(adata.var_names), info)

    def tensors(self, adata: ad.AnnData) -> dict[str, torch.Tensor]:
        """``codes``: the index matrix."""
        return {"codes": torch.as_tensor(np.asarray(adata.X), dtype=torch.uint8)}

    def sampling_weights(self, adata: ad.AnnData) -> torch.Tensor:
        """Sequence weights: minibatches are drawn in proportion to them."""
        return torch.as_tensor(adata.obs[KEYS.WEIGHT].to_numpy(), dtype=torch.float32)

    def initialise_from_data(self, adata: ad.AnnData, train_index: torch.Tensor) -> None:
        """With ``site_offset``: start from the training sequences' site-independent model."""
        if not self.module_kwargs.get("site_offset", False):
            return
        train = train_index.numpy()
        profile = SiteIndependentModel(self.info["positions"], self.info["focus_residues"]).fit(
            np.asarray(adata.X)[train], adata.obs[KEYS.WEIGHT].to_numpy()[train]
        )
        self.module.set_site_offset(torch.as_tensor(profile.log_freq, dtype=torch.float32))

    @torch.no_grad()
    def log_likelihood(
        self,
        codes: np.ndarray | torch.Tensor,
        *,
        n_samples: int = 20,
        batch_size: int = 2048,
        seed: int = 0,
        common_draws: bool = True,
        estimator: str = "elbo",
    ) -> np.ndarray:
        """Per-sequence ELBO or importance-weighted log-evidence over ``n_samples`` draws.

        Parameters
        ----------
        codes
            ``(n, L)`` alphabet indices.
        n_samples
            Draws of ``z`` (and of the decoder weights when Bayesian).
        batch_size
            Sequences per forward pass (bounds memory).
        seed
            Seed of the draws.
        common_draws
            Every sequence of a draw shares the same latent noise and decoder weights
            (common random numbers): differences between sequences then come from the
            sequences, not from the draws.
        estimator
            ``elbo``: the mean ELBO of the draws; ``evidence``: ``log mean_k w_k`` with
            importance weights ``w_k = p(x, z_k) / q(z_k | x)``, the ``n_samples``-sample
            bound on ``log p(x)`` that tightens as ``n_samples`` grows.
        """
        if estimator not in ("elbo", "evidence"):
            raise ValueError(f"estimator must be 'elbo' or 'evidence', not {estimator!r}")
        if n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        self.module.eval()
        codes = torch.as_tensor(np.asarray(codes), dtype=torch.uint8)
        draws = torch.zeros(n_samples, codes.shape[0], dtype=torch.float64)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for k in range(n_samples):
                shared = torch.randn(self.module.n_latent) if common_draws else None
                held = (
                    self.module.held_decoder_draw() if common_draws else contextlib.nullcontext()
                )
                with held:
                    for start in range(0, codes.shape[0], batch_size):
                        chunk = codes[start : start + batch_size].to(self.device)
                        noise = (
                            shared.to(self.device)
                            if shared is not None
                            else torch.randn(chunk.shape[0], self.module.n_latent).to(self.device)
                        )
                        if estimator == "elbo":
                            value = -self.module(chunk, noise=noise).neg_elbo()
                        else:
                            value = self.module.log_importance_weight(chunk, noise=noise)
                        draws[k, start : start + batch_size] = value.double().cpu()
        if estimator == "elbo":
            return draws.mean(0).numpy()
        return (torch.logsumexp(draws, 0) - math.log(n_samples)).numpy()

    def score_variants(self, codes: np.ndarray, **kwargs) -> np.ndarray:
        """``evol_index`` of encoded variants: log-likelihood(wild type) - log-likelihood(variant).

        Higher means more damaging. The wild type is scored with the same draws as the
        variants; ``kwargs`` go to :meth:`log_likelihood`.
        """
        wild_type = focus_codes(self.info["focus_residues"])[None]
        values = self.log_likelihood(np.concatenate([wild_type, np.asarray(codes)]), **kwargs)
        return values[0] - values[1:]

    def score_single_mutants(self, **kwargs) -> pd.DataFrame:
        """Evolutionary index of every single substitution of the focus sequence.

        ``kwargs`` go to :meth:`log_likelihood` (draws, seed, estimator).

        Returns
        -------
        pandas.DataFrame
            Columns ``mutant`` (e.g. ``P8L``), ``position``, ``wt``, ``mt``, ``evol_index``.
        """
        positions, residues = self.info["positions"], self.info["focus_residues"]
        mutants = single_mutants(positions, residues)
        table = pd.DataFrame(
            [(name, positions[col], wt, mt) for name, col, wt, mt in mutants],
            columns=["mutant", "position", "wt", "mt"],
        )
        table["evol_index"] = self.score_variants(
            single_mutant_codes(positions, residues), **kwargs
        )
        return table

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0) -> list[str]:
        """Generate ``n`` aligned sequences from the prior."""
        self.module.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            codes = self.module.sample_codes(n)
        return decode(codes.cpu().numpy())
