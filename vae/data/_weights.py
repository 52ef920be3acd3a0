"""Sequence reweighting (DeepSequence/EVE): one over the size of each identity neighbourhood.

Two exact implementations of the same rule, chosen by device:

* on a GPU, chunked one-hot matrix products in torch (``N x 20L`` by ``20L x N``);
* on a CPU, a bit-packed kernel (numba). A one-hot product costs ``20 * L * N**2``
  multiply-adds: 1e14 for 100,000 sequences of 500 columns, about half an hour at a
  2-core AVX2 machine's peak. Packing each residue's 5-bit code into bit planes lets
  one 64-bit word compare 64 columns at once (XOR the planes, OR the differences,
  popcount the equal non-gap bits), and the symmetric pair count is computed once
  per pair, which brings the same exact count to under a minute at that size.

Both return identical weights (``tests/test_msa.py`` checks them against each other
and against a brute-force loop).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numba
import numpy as np
import torch

from vae._alphabet import PROTEIN_ALPHABET

_GAP_CODE = len(PROTEIN_ALPHABET) - 1
_N_PLANES = 5  # 21 codes fit in 5 bits
_BLOCK = 256  # rows per tile: a tile pair's packed rows stay in L1/L2


@numba.njit(inline="always")
def _popcount(x):  # pragma: no cover - compiled
    """Bit count of a uint64 (SWAR form; LLVM turns it into one ``popcnt``)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


def neighbour_thresholds(lengths: np.ndarray, theta: float) -> np.ndarray:
    """Smallest match count that makes another sequence a neighbour, per sequence.

    A sequence with ``n`` non-gap residues counts ``j`` as a neighbour when
    ``matches / n > 1 - theta`` or when ``matches == n`` (so that it always counts
    itself). The comparison is exact: ``theta`` is taken as the decimal it prints as
    (0.2 is 1/5), so 16 matches of 20 residues are not above 80 % identity. A sequence
    without residues gets a threshold no count can reach (weight 0, as in EVE).
    """
    cutoff = 1 - Fraction(repr(float(theta)))
    thresholds = np.empty(lengths.shape[0], dtype=np.int64)
    for length in np.unique(lengths):
        n = int(length)
        value = np.iinfo(np.int64).max if n == 0 else min(math.floor(cutoff * n) + 1, n)
        thresholds[lengths == length] = value
    return thresholds


def pack_bit_planes(codes: np.ndarray) -> np.ndarray:
    """Pack index-encoded sequences into 64-column words.

    Returns ``(n, words, 6)`` uint64: planes 0-4 hold the bits of each column's code,
    plane 5 marks non-gap columns (padding columns are gaps).
    """
    n, length = codes.shape
    words = max(1, -(-length // 64))
    padded = np.full((n, words * 64), _GAP_CODE, dtype=np.uint8)
    padded[:, :length] = codes
    bits = np.empty((_N_PLANES + 1, n, words * 64), dtype=bool)
    for plane in range(_N_PLANES):
        bits[plane] = (padded >> plane) & 1
    bits[_N_PLANES] = padded != _GAP_CODE
    # little-endian bit order within each byte, bytes in order -> uint64 words
    packed = np.packbits(bits.reshape(_N_PLANES + 1, n, words, 64), axis=-1, bitorder="little")
    planes = packed.view(np.uint64).reshape(_N_PLANES + 1, n, words)
    return np.ascontiguousarray(planes.transpose(1, 2, 0))


@numba.njit(parallel=True, cache=True, nogil=True)
def _pair_counts(packed, slack, thresholds, tile_i, tile_j, block, n_workers):  # pragma: no cover
    """Count, for every sequence, the others whose match count reaches its threshold.

    Each pair is compared once (upper triangle of tiles). ``slack[i, w]`` is the match
    count sequence ``i`` still needs after word ``w`` even if all its later residues
    matched; the word loop stops once the pair is below both sequences' slack.
    Worker ``w`` handles tiles ``w, w + n_workers, ...`` into its own row of counts.
    """
    n, words, _ = packed.shape
    counts = np.zeros((n_workers, n), dtype=np.int64)
    for worker in numba.prange(n_workers):
        for task in range(worker, tile_i.shape[0], n_workers):
            i0 = tile_i[task] * block
            j0 = tile_j[task] * block
            i1 = min(i0 + block, n)
            j1 = min(j0 + block, n)
            for i in range(i0, i1):
                t_i = thresholds[i]
                hits_i = 0
                for j in range(max(j0, i + 1), j1):
                    t_j = thresholds[j]
                    matches = 0
                    for w in range(words):
                        diff = (
                            (packed[i, w, 0] ^ packed[j, w, 0])
                            | (packed[i, w, 1] ^ packed[j, w, 1])
                            | (packed[i, w, 2] ^ packed[j, w, 2])
                            | (packed[i, w, 3] ^ packed[j, w, 3])
                            | (packed[i, w, 4] ^ packed[j, w, 4])
                        )
                        matches += _popcount(~diff & packed[i, w, 5])
                        if matches < slack[i, w] and matches < slack[j, w]:
                            break
                    if matches >= t_i:
                        hits_i += 1
                    if matches >= t_j:
                        counts[worker, j] += 1
                counts[worker, i] += hits_i
    return counts.sum(axis=0)


def informative_column_order(codes: np.ndarray) -> np.ndarray:
    """Columns ordered by how likely two sequences differ there, most likely first.

    Match counts do not depend on the column order; putting variable, well-covered
    columns first lets the kernel stop comparing dissimilar pairs sooner.
    """
    counts = np.stack([(codes == a).sum(0) for a in range(_GAP_CODE)]).astype(np.float64)
    covered = counts.sum(0)
    freq = counts / np.maximum(covered, 1)
    differ = (covered / max(codes.shape[0], 1)) ** 2 * (1.0 - (freq**2).sum(0))
    return np.argsort(-differ, kind="stable")


def _neighbour_counts_cpu(codes: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    n = codes.shape[0]
    ordered = codes[:, informative_column_order(codes)]
    packed = pack_bit_planes(ordered)
    # residues in each 64-column word, then in all later words: bounds future matches
    words = packed.shape[1]
    covered = np.zeros((n, words * 64), dtype=bool)
    covered[:, : ordered.shape[1]] = ordered != _GAP_CODE
    per_word = covered.reshape(n, words, 64).sum(2)
    remaining = per_word[:, ::-1].cumsum(1)[:, ::-1] - per_word
    capped = np.minimum(thresholds, np.iinfo(np.int32).max)
    slack = np.ascontiguousarray(capped[:, None] - remaining)
    n_tiles = -(-n // _BLOCK)
    # upper triangle of tile pairs: every pair of sequences is compared once
    tile_i, tile_j = np.triu_indices(n_tiles)
    n_workers = numba.get_num_threads()
    counts = _pair_counts(packed, slack, thresholds, tile_i, tile_j, _BLOCK, n_workers)
    lengths = (codes != _GAP_CODE).sum(1)
    return counts + (lengths >= thresholds)  # each sequence is its own neighbour


def residue_one_hot(codes, device: str | torch.device = "cpu") -> torch.Tensor:
    """Float32 one-hot of the 20 amino acids per column, flattened; gaps are all zero."""
    codes_t = torch.as_tensor(np.asarray(codes), dtype=torch.long, device=device)
    flat = torch.nn.functional.one_hot(codes_t, _GAP_CODE + 1)[..., :_GAP_CODE]
    return flat.flatten(1).to(torch.float32)


def _neighbour_counts_torch(
    codes: np.ndarray, thresholds: np.ndarray, chunk_size: int, device: torch.device
) -> np.ndarray:
    flat = residue_one_hot(codes, device)  # float32 counts are exact below 2**24
    limits = torch.as_tensor(thresholds, device=device)
    counts = torch.empty(flat.shape[0], dtype=torch.long, device=device)
    for start in range(0, flat.shape[0], chunk_size):
        matches = (flat[start : start + chunk_size] @ flat.T).round().long()
        counts[start : start + chunk_size] = (
            matches >= limits[start : start + chunk_size, None]
        ).sum(1)
    return counts.cpu().numpy()


def sequence_weights(
    codes: np.ndarray,
    *,
    theta: float = 0.2,
    chunk_size: int = 2048,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Weight each sequence by the inverse size of its identity neighbourhood.

    A sequence's neighbours are those sharing more than ``1 - theta`` of its
    non-gap positions (EVE/DeepSequence definition), plus those sharing all of them,
    so that it always counts itself; its weight is one over their number. A sequence
    without residues gets weight 0 (EVE).

    Parameters
    ----------
    codes
        ``(n, length)`` alphabet indices (gap = 20).
    theta
        Identity threshold; 0 gives every sequence weight 1 only when unique.
    chunk_size
        Rows per matrix product on a GPU (bounds memory to ``chunk_size * n`` floats).
    device
        ``"cpu"`` uses the bit-packed kernel (threads: ``numba.set_num_threads``);
        a CUDA device uses chunked one-hot matrix products in torch.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` float32 weights; ``weights.sum()`` is the effective number of sequences.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (sequences x columns), got shape {codes.shape}")
    codes = codes.astype(np.uint8, copy=False)
    lengths = (codes != _GAP_CODE).sum(1)
    thresholds = neighbour_thresholds(lengths, theta)
    device = torch.device(device)
    if codes.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    if device.type == "cpu":
        counts = _neighbour_counts_cpu(codes, thresholds)
    else:
        counts = _neighbour_counts_torch(codes, thresholds, chunk_size, device)
    weights = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    return weights.astype(np.float32)


def one_hot_neighbour_counts(codes: np.ndarray, theta: float = 0.2, chunk_size: int = 2048):
    """Neighbour counts by one-hot matrix products on the CPU (reference for tests)."""
    codes = np.asarray(codes).astype(np.uint8)
    thresholds = neighbour_thresholds((codes != _GAP_CODE).sum(1), theta)
    return _neighbour_counts_torch(codes, thresholds, chunk_size, torch.device("cpu"))
