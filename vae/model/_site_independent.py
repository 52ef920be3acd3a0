"""Site-independent model of a protein family: the baseline of every variant benchmark."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vae._alphabet import PROTEIN_ALPHABET
from vae.data._mutants import focus_codes, single_mutant_table, single_mutants


class SiteIndependentModel:
    """Independent categorical distribution per alignment column (a profile).

    ``log p(x) = sum_i log f_i(x_i)`` with weighted column frequencies plus a
    pseudocount per symbol. A variant's score is ``log p(wt) - log p(variant)``, the
    same sign convention as the VAE's ``evol_index`` (higher = more damaging).

    Parameters
    ----------
    positions, focus_residues
        Residue number and focus residue of each column.
    pseudocount
        Added to every symbol's weighted count in every column.
    """

    def __init__(self, positions: list[int], focus_residues: str, *, pseudocount: float = 1.0):
        self.positions = list(positions)
        self.focus_residues = focus_residues
        self.pseudocount = pseudocount
        self.log_freq: np.ndarray | None = None

    def fit(self, codes: np.ndarray, weights: np.ndarray) -> SiteIndependentModel:
        """Estimate ``log_freq`` ``(L, A)`` from index-encoded sequences and their weights."""
        self.log_freq = site_log_frequencies(codes, weights, pseudocount=self.pseudocount)
        return self

    def log_likelihood(self, codes: np.ndarray) -> np.ndarray:
        """Per-sequence log-likelihood of index-encoded ``codes`` ``(n, L)``."""
        columns = np.arange(codes.shape[1])
        return self.log_freq[columns, codes.astype(int)].sum(1)

    def score_variants(self, codes: np.ndarray) -> np.ndarray:
        """``log p(wild type) - log p(variant)`` for each encoded variant ``(n, L)``."""
        wild_type = self.log_likelihood(focus_codes(self.focus_residues)[None])[0]
        return wild_type - self.log_likelihood(codes)

    def score_single_mutants(self) -> pd.DataFrame:
        """Every single substitution of the focus columns, scored as :class:`SequenceModel` does.

        Returns
        -------
        pandas.DataFrame
            Columns ``mutant``, ``position``, ``wt``, ``mt``, ``evol_index``.
        """
        wt = focus_codes(self.focus_residues)
        mutants = single_mutants(self.positions, self.focus_residues)
        table = single_mutant_table(self.positions, self.focus_residues)
        table["evol_index"] = [
            float(self.log_freq[col, wt[col]] - self.log_freq[col, PROTEIN_ALPHABET.index(mt)])
            for _, col, _, mt in mutants
        ]
        return table


def site_log_frequencies(
    codes: np.ndarray, weights: np.ndarray, *, pseudocount: float = 1.0
) -> np.ndarray:
    """Log column frequencies ``(L, A)``: weighted symbol counts plus ``pseudocount``."""
    n_tokens = len(PROTEIN_ALPHABET)
    weights = np.asarray(weights, dtype=np.float64)  # float64: sums over L columns stay exact
    counts = np.stack([((codes == t) * weights[:, None]).sum(0) for t in range(n_tokens)], 1)
    counts = counts + pseudocount
    return np.log(counts / counts.sum(1, keepdims=True))
