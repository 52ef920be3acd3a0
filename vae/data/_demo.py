"""Embedded demo data that needs no network: scanpy's PBMC subset and a Pfam-emitted family."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

#: Pfam profile shipped in pyhmmer's test data (D-isomer specific 2-hydroxyacid dehydrogenase).
DEMO_HMM = "PF02826.hmm"


def builtin_sources() -> dict[str, str]:
    """Return ``{"builtin:NAME": suffix}``: the file suffix each built-in source is written as.

    Read from ``vae/data/builtin_sources.tsv``, which the workflow also reads (by path,
    without importing ``vae``) to name the materialised file.
    """
    text = files("vae.data").joinpath("builtin_sources.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return {source: suffix for source, suffix in rows[1:]}


def pbmc68k_counts() -> ad.AnnData:
    """Return scanpy's 700-cell PBMC subset with its raw UMI counts recovered.

    The shipped ``raw.X`` is ``log1p(count / n_counts * 1e4)``; counts are
    ``round(expm1(raw.X) * n_counts / 1e4)``. Cell-type labels are in
    ``obs["cell_type"]`` (scanpy's ``bulk_labels``).
    """
    import scanpy as sc

    ref = sc.datasets.pbmc68k_reduced()
    logged = ref.raw.X.toarray() if sp.issparse(ref.raw.X) else np.asarray(ref.raw.X)
    n_counts = ref.obs["n_counts"].to_numpy()[:, None]
    counts = np.rint(np.expm1(logged) * n_counts / 1e4).astype(np.float32)
    obs = ref.obs[["bulk_labels", "n_counts", "phase"]].rename(
        columns={"bulk_labels": "cell_type", "n_counts": "total_counts_all_genes"}
    )
    return ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=ref.raw.var[[]].copy())


def demo_hmm_path() -> Path:
    """Path of the Pfam HMM shipped inside the pyhmmer package."""
    import pyhmmer

    path = Path(pyhmmer.__file__).parent / "tests" / "data" / "hmms" / "txt" / DEMO_HMM
    if not path.is_file():
        raise FileNotFoundError(f"{path}: pyhmmer's test data is missing {DEMO_HMM}")
    return path


def _easel_randomness(seed: int):
    """Easel's generator for ``seed``; Easel seeds 0 from the clock, so ``seed + 1`` is used."""
    import pyhmmer

    return pyhmmer.easel.Randomness(seed + 1)


def emit_family_alignment(n_sequences: int = 1000, seed: int = 0) -> list[tuple[str, str]]:
    """Emit a protein family alignment from a real Pfam profile HMM with pyhmmer.

    The first record is the profile's consensus sequence (the focus); the others are
    sequences emitted from the profile with a fixed seed and aligned back to it.

    Returns
    -------
    list of tuple
        ``(id, a2m row)`` pairs; match columns upper-case/``-``, insertions lower-case.
    """
    import pyhmmer

    with pyhmmer.plan7.HMMFile(demo_hmm_path()) as handle:
        hmm = handle.read()
    rng = _easel_randomness(seed)
    name = hmm.name.decode() if isinstance(hmm.name, bytes) else hmm.name
    consensus = hmm.consensus.upper()
    seqs = [
        pyhmmer.easel.TextSequence(name=f"{name}_consensus".encode(), sequence=consensus).digitize(
            hmm.alphabet
        )
    ]
    for i in range(n_sequences):
        emitted = hmm.emit_sequence(rng)
        emitted.name = f"{name}_emit{i}".encode()
        seqs.append(emitted)
    msa = pyhmmer.hmmalign(hmm, seqs, trim=True)
    rows = []
    for seq_name, row in zip(msa.names, msa.alignment, strict=True):
        seq_name = seq_name.decode() if isinstance(seq_name, bytes) else seq_name
        rows.append((seq_name, row))
    focus_len = sum(c.isupper() for c in rows[0][1])
    rows[0] = (f"{rows[0][0]}/1-{focus_len}", rows[0][1])
    return rows


def emit_raw_sequences(
    n_sequences: int = 300, n_decoys: int = 5, seed: int = 1
) -> list[tuple[str, str]]:
    """Unaligned sequences emitted from the demo profile, plus random decoy sequences.

    The decoys (uniform amino acids, length 150) should fail to align to the family;
    they show how batch embedding reports sequences it cannot place.
    """
    import numpy as np
    import pyhmmer

    with pyhmmer.plan7.HMMFile(demo_hmm_path()) as handle:
        hmm = handle.read()
    rng = _easel_randomness(seed)
    rows = []
    for i in range(n_sequences):
        seq = hmm.emit_sequence(rng)
        rows.append((f"new{i}", seq.textize().sequence))
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    generator = np.random.default_rng(seed)
    rows += [(f"decoy{i}", "".join(generator.choice(letters, 150))) for i in range(n_decoys)]
    return rows
