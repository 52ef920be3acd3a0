"""Generate sequences (FASTA) or cells (AnnData) from a trained model."""

from __future__ import annotations

from pathlib import Path

from vae._io import read_h5ad, write_h5ad_atomic, write_text_atomic
from vae.errors import VAEInputError
from vae.model import load_model


def sample_protein(model_dir: str | Path, output: str | Path, *, n: int, seed: int = 0) -> None:
    """Write ``n`` sequences generated from the prior as FASTA."""
    model = load_model(model_dir)
    sequences = model.sample(n, seed=seed)
    write_text_atomic(output, "".join(f">sample_{i}\n{s}\n" for i, s in enumerate(sequences)))


def sample_expression(
    model_dir: str | Path,
    output: str | Path,
    *,
    n: int,
    seed: int = 0,
    condition_on: str | Path | None = None,
    batch: str | None = None,
) -> None:
    """Write ``n`` posterior-predictive cells as ``.h5ad`` (gene names kept).

    From the prior, or with ``condition_on`` (an ``.h5ad`` with the model's genes, e.g. its
    preprocessed data) conditioned on cells drawn from that file; ``batch`` puts every
    sample in that training batch (see :meth:`vae.model.CountModel.sample`).
    """
    model = load_model(model_dir)
    cells = None
    if condition_on is not None:
        cells = read_h5ad(condition_on)
        if list(cells.var_names) != model.var_names:
            raise VAEInputError(condition_on, "genes differ from the model's (names or order)")
    write_h5ad_atomic(model.sample(n, seed=seed, cells=cells, batch=batch), output)
