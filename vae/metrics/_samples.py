"""How generated protein sequences compare with the natural alignment."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vae._alphabet import PROTEIN_ALPHABET
from vae.data._weights import residue_one_hot
from vae.errors import VAEInputError


def column_frequencies(codes: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted frequency of every alphabet symbol per column, ``(length, 21)``.

    Parameters
    ----------
    codes
        ``(n, length)`` alphabet indices (:data:`vae._constants.PROTEIN_ALPHABET`).
    weights
        Sequence weights; ``None`` weighs every sequence 1.
    """
    codes = np.asarray(codes, dtype=int)
    weights = np.ones(codes.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    counts = np.stack(
        [((codes == t) * weights[:, None]).sum(0) for t in range(len(PROTEIN_ALPHABET))], 1
    )
    return counts / max(float(weights.sum()), np.finfo(float).tiny)


def frequency_correlation(
    generated: np.ndarray, natural: np.ndarray, weights: np.ndarray
) -> float:
    """Pearson r of per-column symbol frequencies: samples vs the weighted natural MSA."""
    x = column_frequencies(natural, weights).ravel()
    y = column_frequencies(generated).ravel()
    return float(np.corrcoef(x, y)[0, 1]) if x.std() and y.std() else float("nan")


def nearest_natural_identity(
    generated: np.ndarray, natural: np.ndarray, *, chunk_size: int = 512
) -> np.ndarray:
    """Identity of each generated sequence to its nearest natural sequence.

    Identity is the fraction of the generated sequence's residues (non-gap columns)
    that the natural sequence shares, as in the sequence weights; one-hot products
    in chunks of ``chunk_size`` generated sequences.

    Returns
    -------
    numpy.ndarray
        ``(n_generated,)`` identities in ``[0, 1]`` (0 for an all-gap sample).
    """
    natural_hot = residue_one_hot(natural)
    best = np.zeros(len(generated))
    for start in range(0, len(generated), chunk_size):
        hot = residue_one_hot(generated[start : start + chunk_size])
        matches = (hot @ natural_hot.T).max(1).values
        residues = hot.sum(1).clamp(min=1)
        best[start : start + hot.shape[0]] = (matches / residues).numpy()
    return best


def read_samples(samples: str | Path, n_columns: int) -> np.ndarray:
    """Read ``samples.fasta`` into alphabet indices, checking its length is the model's."""
    from vae.data import encode, read_records

    records = read_records(samples)
    lengths = {len(seq) for _, seq in records}
    if lengths != {n_columns}:
        raise VAEInputError(
            samples, f"sample lengths {sorted(lengths)} differ from the {n_columns} model columns"
        )
    try:
        return encode([seq.upper() for _, seq in records])
    except ValueError as err:
        raise VAEInputError(samples, str(err)) from err


def sample_statistics(generated: np.ndarray, natural: np.ndarray, weights: np.ndarray) -> dict:
    """Frequency correlation and nearest-natural identity summary of generated sequences."""
    identity = nearest_natural_identity(generated, natural)
    return {
        "n_samples": int(len(generated)),
        "sample_frequency_pearson_r": frequency_correlation(generated, natural, weights),
        "sample_nearest_natural_identity_mean": float(identity.mean()),
        "sample_nearest_natural_identity_median": float(np.median(identity)),
        "sample_nearest_natural_identity_min": float(identity.min()),
        "sample_nearest_natural_identity_max": float(identity.max()),
    }
