"""Protein family model: setup from a preprocessed alignment, variant scores, samples."""

from __future__ import annotations

import contextlib

import anndata as ad
import numpy as np
import pandas as pd
import torch

from vae._constants import AMINO_ACIDS, KEYS, PROTEIN_ALPHABET
from vae.data import decode
from vae.model._base import BaseModel
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

    @torch.no_grad()
    def score_single_mutants(
        self,
        *,
        n_samples: int = 20,
        batch_size: int = 2048,
        seed: int = 0,
        common_draws: bool = True,
    ) -> pd.DataFrame:
        """Evolutionary index of every single substitution of the focus sequence.

        ``evol_index = ELBO(wild type) - ELBO(mutant)``, each ELBO averaged over
        ``n_samples`` draws of ``z`` (and of the decoder weights when Bayesian); higher
        means more damaging. With ``common_draws`` every sequence of a draw shares the
        same latent noise and decoder weights (common random numbers), so that the
        wild type and its mutants differ only by the sequence, not by the draw.

        Returns
        -------
        pandas.DataFrame
            Columns ``mutant`` (e.g. ``P8L``), ``position``, ``wt``, ``mt``, ``evol_index``.
        """
        self.module.eval()
        wt = torch.as_tensor(
            [PROTEIN_ALPHABET.index(c) for c in self.info["focus_residues"]], dtype=torch.long
        )
        rows, codes = [], []
        for col, (pos, wt_aa) in enumerate(
            zip(self.info["positions"], self.info["focus_residues"], strict=True)
        ):
            for aa in AMINO_ACIDS:
                if aa == wt_aa:
                    continue
                rows.append((f"{wt_aa}{pos}{aa}", pos, wt_aa, aa))
                mutant = wt.clone()
                mutant[col] = PROTEIN_ALPHABET.index(aa)
                codes.append(mutant)
        all_codes = torch.stack([wt, *codes]).to(self.device)
        elbo = torch.zeros(all_codes.shape[0], dtype=torch.float64, device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for _ in range(n_samples):
                if common_draws:
                    noise = torch.randn(self.module.n_latent, device=self.device)
                    held = self.module.held_decoder_draw()
                else:
                    noise, held = None, contextlib.nullcontext()
                with held:
                    for start in range(0, all_codes.shape[0], batch_size):
                        chunk = all_codes[start : start + batch_size]
                        out = self.module(chunk, noise=noise)
                        elbo[start : start + batch_size] -= out.neg_elbo().double()
        elbo /= n_samples
        table = pd.DataFrame(rows, columns=["mutant", "position", "wt", "mt"])
        table["evol_index"] = (elbo[0] - elbo[1:]).cpu().numpy()
        return table

    @torch.no_grad()
    def sample(self, n: int, *, seed: int = 0) -> list[str]:
        """Generate ``n`` aligned sequences from the prior."""
        self.module.eval()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            codes = self.module.sample_codes(n)
        return decode(codes.cpu().numpy())
