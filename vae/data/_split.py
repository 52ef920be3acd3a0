"""Validation splits of a family alignment that hold out whole clusters of sequences.

A random validation split of a family alignment is mostly near-copies of training
sequences, so its ELBO rewards reconstructing a sequence's close relatives
(BENCHMARKS.md, "The validation split rewards memorising"). :func:`cluster_split` holds
out whole clusters instead and drops the training sequences that sit next to them, so
every held-out sequence is at least ``1 - identity`` away from every training sequence.

Identity of a sequence ``j`` to a sequence ``i`` is the fraction of ``i``'s residue
(non-gap) columns where ``j`` has the same residue (a gap in ``j`` is a mismatch). It is
counted by one-hot matrix products over blocks of rows, so memory stays bounded by
``chunk_bytes`` whatever the alignment's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vae._alphabet import GAP, PROTEIN_ALPHABET

_GAP_CODE = PROTEIN_ALPHABET.index(GAP)
_N_TOKENS = len(PROTEIN_ALPHABET)
_QUERIES = 64  # sequences compared with all rows per matrix product


@dataclass(frozen=True)
class ClusterSplit:
    """Row indices of a cluster split (each sorted, disjoint).

    Attributes
    ----------
    train
        Sequences to train on (the focus sequence always among them).
    val
        Held-out sequences: whole clusters.
    dropped
        Sequences within the identity of a held-out one, used for neither.
    """

    train: np.ndarray
    val: np.ndarray
    dropped: np.ndarray


def _one_hot(codes: np.ndarray, residues_only: bool = False) -> np.ndarray:
    """``(n, L * 21)`` float32 indicators of each row's code per column."""
    n, length = codes.shape
    out = np.zeros((n, length, _N_TOKENS), dtype=np.float32)
    np.put_along_axis(out, codes.astype(np.intp)[:, :, None], 1.0, axis=2)
    if residues_only:
        out[:, :, _GAP_CODE] = 0.0
    return out.reshape(n, length * _N_TOKENS)


def _chunk_rows(length: int, chunk_bytes: int) -> int:
    return max(1, chunk_bytes // (length * _N_TOKENS * 4))


def close_to(
    codes: np.ndarray, queries: np.ndarray, identity: float, *, chunk_bytes: int = 1 << 26
) -> np.ndarray:
    """Which rows of ``codes`` lie within ``identity`` of each query row.

    Parameters
    ----------
    codes
        ``(n, L)`` alphabet indices (:data:`~vae._alphabet.PROTEIN_ALPHABET`).
    queries
        Row indices of the sequences to compare with every row.
    identity
        A row is close when it matches at least this fraction of the query's residue
        columns. A query without residues is close to nothing.
    chunk_bytes
        Bound on the one-hot block of rows held at once.

    Returns
    -------
    numpy.ndarray
        ``(len(queries), n)`` booleans.
    """
    n, length = codes.shape
    query = _one_hot(codes[queries], residues_only=True)
    n_residues = (codes[queries] != _GAP_CODE).sum(1)[:, None]
    out = np.empty((len(queries), n), dtype=bool)
    step = _chunk_rows(length, chunk_bytes)
    for start in range(0, n, step):
        matches = query @ _one_hot(codes[start : start + step]).T  # exact: integers < 2**24
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, start : start + step] = matches / n_residues >= identity
    return out


def _near_focus(codes: np.ndarray, focus: int, identity: float, chunk_bytes: int) -> np.ndarray:
    """Rows that have the focus sequence within ``identity`` (over their own residues)."""
    near = np.zeros(codes.shape[0], dtype=bool)
    step = max(1, chunk_bytes // codes.shape[1])
    for start in range(0, codes.shape[0], step):
        block = codes[start : start + step]
        own = block != _GAP_CODE
        with np.errstate(invalid="ignore", divide="ignore"):
            fraction = ((block == codes[focus]) & own).sum(1) / own.sum(1)
        near[start : start + step] = fraction >= identity
    near[focus] = True
    return near


def cluster_split(
    codes: np.ndarray,
    fraction: float,
    identity: float,
    seed: int,
    *,
    focus: int = 0,
    chunk_bytes: int = 1 << 26,
) -> ClusterSplit:
    """Hold out whole clusters of sequences for validation.

    Centres are visited in a random order (``numpy.random.default_rng(seed)``); each
    centre not yet held out goes to validation together with every sequence within
    ``identity`` of it, until at least ``fraction`` of the sequences are held out; a
    cluster that would take the held-out part past ``2 * fraction`` is passed over (one
    subfamily of near-identical sequences is not the whole validation set). Then
    every other sequence within ``identity`` of a held-out one is dropped, so no training
    sequence lies within ``identity`` of a held-out one. The focus sequence and its
    neighbourhood (the sequences that match it at ``identity`` of their own residue
    columns) are never held out, so the focus always trains.

    Parameters
    ----------
    codes
        ``(n, L)`` alphabet indices of the alignment.
    fraction
        Fraction of the sequences to hold out (the last cluster may overshoot it, to at
        most twice as many).
    identity
        Identity that joins two sequences (e.g. 0.8), over the residue columns of the
        centre (clustering) or of the held-out sequence (dropping).
    seed
        Seed of the centres' order.
    focus
        Row of the focus sequence.
    chunk_bytes
        Bound on the one-hot block of rows held at once (see :func:`close_to`).

    Returns
    -------
    ClusterSplit
        Training, held-out and dropped rows.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), not {fraction}")
    if not 0 < identity <= 1:
        raise ValueError(f"identity must be in (0, 1], not {identity}")
    codes = np.asarray(codes)
    n = codes.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    protected = _near_focus(codes, focus, identity, chunk_bytes)
    held = np.zeros(n, dtype=bool)
    target, position = fraction * n, 0
    while held.sum() < target and position < n:
        centres = []
        while len(centres) < _QUERIES and position < n:
            centre = order[position]
            position += 1
            if not held[centre] and not protected[centre]:
                centres.append(centre)
        close = close_to(
            codes, np.array(centres, dtype=np.intp), identity, chunk_bytes=chunk_bytes
        )
        for centre, row in zip(centres, close, strict=True):
            if held.sum() >= target:
                break
            cluster = row & ~protected
            if not held[centre] and (held | cluster).sum() <= 2 * target:
                held |= cluster
    if fraction > 0 and not held.any():
        raise ValueError(
            f"no cluster at identity {identity} outside the focus's neighbourhood fits in "
            f"{2 * fraction:.0%} of the sequences; raise the identity"
        )
    dropped = np.zeros(n, dtype=bool)
    members = np.flatnonzero(held)
    for start in range(0, members.size, _QUERIES):
        batch = members[start : start + _QUERIES]
        dropped |= close_to(codes, batch, identity, chunk_bytes=chunk_bytes).any(0)
    dropped &= ~held
    return ClusterSplit(
        train=np.flatnonzero(~held & ~dropped), val=members, dropped=np.flatnonzero(dropped)
    )
