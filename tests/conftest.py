"""Tiny synthetic alignments and count matrices shared by the unit tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from vae._alphabet import AMINO_ACIDS

# The models here are tiny: intra-op threads only add contention (and are 10x slower on a
# busy 2-core machine).
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def checksum_cache(tmp_path_factory):
    """Remember input checksums in a folder of the test session, not the user's cache.

    Set in ``os.environ``, so workflow subprocesses inherit it.
    """
    import os

    previous = os.environ.get("VAE_CACHE_DIR")
    os.environ["VAE_CACHE_DIR"] = str(tmp_path_factory.mktemp("checksum-cache"))
    yield Path(os.environ["VAE_CACHE_DIR"])
    if previous is None:
        os.environ.pop("VAE_CACHE_DIR", None)
    else:
        os.environ["VAE_CACHE_DIR"] = previous


# --- protein alignment ------------------------------------------------------------------------

#: Match columns of the synthetic alignment.
N_MATCH = 25
#: Sequences in the synthetic alignment (focus included).
N_SEQ = 40
#: Match columns where the focus has a gap (not focus columns).
FOCUS_GAP_COLUMNS = (5, 18)
#: Focus insertions: slot ``i`` sits before match column ``i`` (slot 25 after the last one).
FOCUS_INSERTIONS = {0: "mk", 13: "gs", 25: "avkl"}
FOCUS_ID = "focus/10-40"
#: Sequences 1-3 are gapped at 15 of the 23 focus columns (dropped by the sequence filter).
GAPPY_SEQUENCES = (1, 2, 3)
#: Column 20 is gapped in 13 kept sequences: 13/37 > 0.3, dropped by the column filter.
DROPPED_COLUMN, DROPPED_COLUMN_GAPPED = 20, tuple(range(4, 17))
#: Column 22 is gapped in 11 kept sequences (11/37 <= 0.3) and in the 3 gappy ones
#: (14/40 > 0.3): kept only because sequences are filtered before columns.
ORDER_COLUMN, ORDER_COLUMN_GAPPED = 22, tuple(range(17, 28))
#: Sequence 30 has X in a kept column (dropped); 31 has B only in the dropped column (kept).
AMBIGUOUS_SEQUENCE, AMBIGUOUS_IN_DROPPED_COLUMN = 30, 31
#: Residue number of every focus column (focus residues 10-40, ``mk`` are 10 and 11).
FOCUS_POSITIONS = {
    **{col: 12 + col for col in range(0, 5)},
    **{col: 11 + col for col in range(6, 13)},
    **{col: 13 + col for col in range(13, 18)},
    **{col: 12 + col for col in range(19, 25)},
}


@dataclass
class SyntheticAlignment:
    """Rows of the synthetic alignment, before and after insertion padding."""

    ids: list[str]
    match: list[str]  # match-column strings (upper case and ``-``), N_SEQ x N_MATCH
    insertions: list[dict[int, str]]  # per row: slot -> lower-case insertion

    def rows(self, padded: bool) -> list[str]:
        """A2M rows (insert slots padded with ``.``) or A3M rows (unpadded)."""
        widths = {
            slot: max(len(ins.get(slot, "")) for ins in self.insertions)
            for slot in range(N_MATCH + 1)
        }
        out = []
        for match, ins in zip(self.match, self.insertions, strict=True):
            parts = []
            for slot in range(N_MATCH + 1):
                text = ins.get(slot, "")
                parts.append(text.ljust(widths[slot], ".") if padded else text)
                if slot < N_MATCH:
                    parts.append(match[slot])
            out.append("".join(parts))
        return out

    def expected_sequences(self) -> list[str]:
        """Kept rows restricted to the kept columns, focus first (what read_alignment returns)."""
        dropped = {*GAPPY_SEQUENCES, AMBIGUOUS_SEQUENCE}
        columns = [c for c in range(N_MATCH) if c not in FOCUS_GAP_COLUMNS and c != DROPPED_COLUMN]
        return [
            "".join(row[c] for c in columns)
            for i, row in enumerate(self.match)
            if i not in dropped
        ]


def make_alignment(seed: int = 0) -> SyntheticAlignment:
    """Build the 40 x 25 synthetic alignment described by the module constants."""
    rng = np.random.default_rng(seed)
    letters = np.array(list(AMINO_ACIDS))
    focus = rng.choice(letters, N_MATCH)
    match = [focus.copy()]
    for _ in range(1, N_SEQ):
        row = focus.copy()
        mutate = rng.random(N_MATCH) < 0.3
        row[mutate] = rng.choice(letters, mutate.sum())
        match.append(row)
    for col in FOCUS_GAP_COLUMNS:
        match[0][col] = "-"
    focus_columns = [c for c in range(N_MATCH) if c not in FOCUS_GAP_COLUMNS]
    gappy_columns = [DROPPED_COLUMN, ORDER_COLUMN] + [
        c for c in focus_columns if c not in (DROPPED_COLUMN, ORDER_COLUMN)
    ][:13]
    for i in GAPPY_SEQUENCES:
        match[i][gappy_columns] = "-"
    for i in DROPPED_COLUMN_GAPPED:
        match[i][DROPPED_COLUMN] = "-"
    for i in ORDER_COLUMN_GAPPED:
        match[i][ORDER_COLUMN] = "-"
    match[AMBIGUOUS_SEQUENCE][2] = "X"
    match[AMBIGUOUS_IN_DROPPED_COLUMN][DROPPED_COLUMN] = "B"

    insertions: list[dict[int, str]] = [dict(FOCUS_INSERTIONS)]
    for _ in range(1, N_SEQ):
        ins = {}
        for slot in rng.choice(N_MATCH + 1, size=3, replace=False):
            length = int(rng.integers(0, 4))
            if length:
                ins[int(slot)] = "".join(rng.choice(letters, length)).lower()
        insertions.append(ins)
    ids = [FOCUS_ID] + [f"seq{i}/1-{30 + i}" for i in range(1, N_SEQ)]
    return SyntheticAlignment(ids, ["".join(row) for row in match], insertions)


def write_fasta(path: Path, ids: list[str], rows: list[str]) -> Path:
    """Write ``>id`` / row pairs."""
    path.write_text("".join(f">{i}\n{r}\n" for i, r in zip(ids, rows, strict=True)))
    return path


def write_stockholm(path: Path, ids: list[str], rows: list[str]) -> Path:
    """Write a single-block Stockholm file."""
    width = max(map(len, ids)) + 2
    body = "".join(f"{i.ljust(width)}{r}\n" for i, r in zip(ids, rows, strict=True))
    path.write_text(f"# STOCKHOLM 1.0\n{body}//\n")
    return path


@pytest.fixture(scope="session")
def synthetic_alignment() -> SyntheticAlignment:
    return make_alignment()


@pytest.fixture
def a2m_path(tmp_path, synthetic_alignment) -> Path:
    """Padded A2M: insertions lower case, insert slots padded with ``.``."""
    aln = synthetic_alignment
    return write_fasta(tmp_path / "family.a2m", aln.ids, aln.rows(padded=True))


@pytest.fixture
def a3m_path(tmp_path, synthetic_alignment) -> Path:
    """The same alignment in A3M style: insertions not padded."""
    aln = synthetic_alignment
    return write_fasta(tmp_path / "family.a3m", aln.ids, aln.rows(padded=False))


@pytest.fixture
def stockholm_path(tmp_path, synthetic_alignment) -> Path:
    """The same alignment as Stockholm (insert columns padded with ``.``)."""
    aln = synthetic_alignment
    return write_stockholm(tmp_path / "family.sto", aln.ids, aln.rows(padded=True))


@pytest.fixture(scope="session")
def msa_adata(tmp_path_factory) -> ad.AnnData:
    """The synthetic alignment after read_alignment + alignment_to_anndata (read-only use)."""
    from vae.data import alignment_to_anndata, read_alignment

    aln = make_alignment()
    path = write_fasta(
        tmp_path_factory.mktemp("msa") / "family.a2m", aln.ids, aln.rows(padded=True)
    )
    return alignment_to_anndata(read_alignment(path))


# --- single-cell counts -----------------------------------------------------------------------

N_CELLS, N_GENES = 100, 60


def make_counts(seed: int = 0) -> ad.AnnData:
    """Negative-binomial counts with two cell types and two batches."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["typeA", "typeB"], N_CELLS)
    batches = rng.choice(["b0", "b1"], N_CELLS)
    profiles = {k: rng.gamma(2.0, 1.0, N_GENES) for k in ("typeA", "typeB")}
    library = rng.lognormal(np.log(300), 0.3, N_CELLS)
    batch_scale = np.where(batches == "b1", 1.5, 1.0)
    mu = (
        np.stack([profiles[k] / profiles[k].sum() for k in labels])
        * (library * batch_scale)[:, None]
    )
    theta = 5.0
    counts = rng.negative_binomial(theta, theta / (theta + mu)).astype(np.float32)
    obs = pd.DataFrame(
        {"cell_type": pd.Categorical(labels), "batch": pd.Categorical(batches)},
        index=[f"cell{i}" for i in range(N_CELLS)],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(N_GENES)])
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)


@pytest.fixture
def counts_adata() -> ad.AnnData:
    return make_counts()


@pytest.fixture
def counts_h5ad(tmp_path, counts_adata) -> Path:
    path = tmp_path / "counts.h5ad"
    counts_adata.write_h5ad(path)
    return path
