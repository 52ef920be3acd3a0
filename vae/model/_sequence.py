"""Protein family model: setup from a preprocessed alignment, variant scores, samples."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from vae._alphabet import PROTEIN_ALPHABET
from vae._constants import FILES, KEYS
from vae._io import atomic_path
from vae.data import decode
from vae.data._hmm import build_family_hmm
from vae.data._mutants import focus_codes, single_mutant_codes, single_mutant_table
from vae.data._split import cluster_split
from vae.errors import VAEInputError
from vae.model._base import BaseModel
from vae.model._sequence_query import prepare_sequence_query
from vae.model._site_independent import SiteIndependentModel
from vae.module import SequenceVAE
from vae.train import TrainConfig

#: Ways to turn a model into a sequence's log-likelihood (``log_likelihood(estimator=)``).
ESTIMATORS = ("elbo", "evidence", "profile")
#: ``profile``'s fraction of the wild type's latent: chosen by leave-one-family-out over the
#: 14-family development panel (BENCHMARKS.md, "Protein development panel").
DEFAULT_LATENT_SHRINK = 0.25


class SequenceModel(BaseModel):
    """DeepSequence/EVE-style model of a protein family alignment.

    The AnnData it works on holds alphabet indices in ``X`` (``n_sequences x L``),
    sequence weights in ``obs["weight"]``, and per column ``var["position"]`` and
    ``var["wt"]`` (see :func:`vae.data.alignment_to_anndata`).
    """

    domain = "protein"
    module_cls = SequenceVAE
    #: Profile HMM of the training family (HMMER3 text), built after training.
    family_hmm: bytes | None = None

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

    def validation_split(
        self, adata: ad.AnnData, config: TrainConfig
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random split, or with ``cluster`` whole held-out clusters of sequences.

        ``cluster`` holds out clusters within ``config.validation_identity`` of random
        centres (the focus, row 0, and its neighbourhood always train) and drops the
        training sequences that close to a held-out one
        (:func:`~vae.data._split.cluster_split`).
        """
        if config.validation_split != "cluster":
            return super().validation_split(adata, config)
        try:
            split = cluster_split(
                np.asarray(adata.X),
                config.validation_frac,
                config.validation_identity,
                config.seed,
            )
        except ValueError as err:
            raise VAEInputError("train.validation_identity", str(err)) from err
        return torch.as_tensor(split.train), torch.as_tensor(split.val)

    def initialise_from_data(self, adata: ad.AnnData, train_index: torch.Tensor) -> None:
        """With ``site_offset``: start from the training sequences' site-independent model."""
        if not self.module_kwargs.get("site_offset", False):
            return
        profile = self._profile(adata, train_index.numpy())
        self.module.set_site_offset(torch.as_tensor(profile.log_freq, dtype=torch.float32))

    def _profile(self, adata: ad.AnnData, rows: np.ndarray) -> SiteIndependentModel:
        return SiteIndependentModel(self.info["positions"], self.info["focus_residues"]).fit(
            np.asarray(adata.X)[rows], adata.obs[KEYS.WEIGHT].to_numpy()[rows]
        )

    def site_independent_baseline(self, adata: ad.AnnData) -> SiteIndependentModel:
        """Fit the site-independent model on this model's training sequences (same split).

        ``adata`` is the preprocessed alignment the model was trained on; the baseline
        every variant-effect and held-out figure is compared with.
        """
        return self._profile(adata, self.training_index(adata.n_obs))

    def after_training(self, adata: ad.AnnData) -> None:
        """Build the family's profile HMM, to align raw sequences for :meth:`prepare_query`."""
        self.family_hmm = build_family_hmm(decode(np.asarray(adata.X)))

    def save_extras(self, directory: Path) -> None:
        """Write the family HMM (``family.hmm``) when the model has one."""
        if self.family_hmm is not None:
            with atomic_path(directory / FILES.FAMILY_HMM) as tmp:
                tmp.write_bytes(self.family_hmm)

    def load_extras(self, directory: Path) -> None:
        """Read ``family.hmm`` when the folder has one."""
        path = directory / FILES.FAMILY_HMM
        self.family_hmm = path.read_bytes() if path.is_file() else None

    def prepare_query(
        self, path: str | Path, *, max_gap_frac: float = 0.5, chunk_size: int = 10_000
    ) -> tuple[list[str], np.ndarray, dict]:
        """Read new sequences onto the model's columns, ready for :meth:`get_latent`.

        Aligned input (FASTA/A2M/Stockholm) must hold the model's focus columns;
        unaligned FASTA is aligned to the family HMM (see
        :func:`~vae.model._sequence_query.prepare_sequence_query`).

        Returns
        -------
        ids, codes, report
            Kept sequence ids, their alphabet indices, and what happened to the rest.
        """
        return prepare_sequence_query(
            Path(path),
            positions=self.info["positions"],
            focus_residues=self.info["focus_residues"],
            family_hmm=self.family_hmm,
            max_gap_frac=max_gap_frac,
            chunk_size=chunk_size,
        )

    @torch.no_grad()
    def wild_type_profile(self, latent_shrink: float = DEFAULT_LATENT_SHRINK) -> np.ndarray:
        """Return the decoder's log-probabilities ``(L, A)`` at the wild type's shrunken latent.

        The decoder is read at ``z = latent_shrink * E[z | wild type]`` with its weights'
        posterior means: ``latent_shrink = 0`` is the family-average decoder (a
        site-independent profile learned by the VAE), ``1`` the wild type's own latent.
        """
        if not 0.0 <= latent_shrink <= 1.0:
            raise ValueError(f"latent_shrink must be in [0, 1], not {latent_shrink}")
        module = self.module.eval()
        wild_type = torch.as_tensor(focus_codes(self.info["focus_residues"])[None])
        loc = module.inference(wild_type.to(self.device)).loc
        log_probs = module.generative(latent_shrink * loc, sample=False)["log_probs"][0]
        return log_probs.double().cpu().numpy()

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
        latent_shrink: float = DEFAULT_LATENT_SHRINK,
    ) -> np.ndarray:
        """Per-sequence ELBO, importance-weighted log-evidence, or wild-type profile likelihood.

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
            bound on ``log p(x)`` that tightens as ``n_samples`` grows; ``profile``: the
            log-likelihood under :meth:`wild_type_profile` (no draws: ``n_samples``,
            ``seed`` and ``common_draws`` do not apply).
        latent_shrink
            ``profile`` only: where the decoder is read, as a fraction of the wild type's
            latent mean.
        """
        if estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")
        if estimator == "profile":
            profile = self.wild_type_profile(latent_shrink)
            codes = np.asarray(codes).astype(np.int64)
            return profile[np.arange(codes.shape[1]), codes].sum(1)
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
        table = single_mutant_table(positions, residues)
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
