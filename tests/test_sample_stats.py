"""Statistics of generated protein sequences against the natural alignment."""

from __future__ import annotations

import numpy as np
import pytest

from vae.errors import VAEInputError
from vae.metrics._samples import (
    frequency_correlation,
    nearest_natural_identity,
    read_samples,
    sample_statistics,
)

GAP = 20


def test_nearest_natural_identity_counts_sample_residues():
    natural = np.array([[0, 1, 2, 3], [0, 1, 5, 5], [GAP, GAP, 2, 3]])
    generated = np.array(
        [
            [0, 1, 2, 3],  # a copy of the first natural sequence
            [0, 1, 5, 9],  # 3 of 4 residues shared with the second
            [GAP, GAP, 2, 3],  # 2 residues, both shared
            [9, 9, 9, 9],  # nothing shared
            [GAP, GAP, GAP, GAP],  # no residues
        ]
    )
    identity = nearest_natural_identity(generated, natural, chunk_size=2)
    np.testing.assert_allclose(identity, [1.0, 0.75, 1.0, 0.0, 0.0])


def test_frequency_correlation_uses_weights():
    natural = np.array([[0, 1], [2, 3]])
    # the second natural sequence carries all the weight: samples equal to it match
    assert frequency_correlation(np.array([[2, 3]]), natural, np.array([0.0, 1.0])) == 1.0
    assert frequency_correlation(np.array([[0, 1]]), natural, np.array([0.0, 1.0])) < 0


def test_sample_statistics_summary():
    rng = np.random.default_rng(0)
    natural = rng.integers(0, 21, (40, 12))
    stats = sample_statistics(natural[:5], natural, np.ones(40))
    assert stats["n_samples"] == 5
    assert stats["sample_nearest_natural_identity_min"] == 1.0
    assert stats["sample_frequency_pearson_r"] > 0


def test_read_samples_checks_length(tmp_path):
    fasta = tmp_path / "samples.fasta"
    fasta.write_text(">a\nACDE\n>b\nAC-E\n")
    assert read_samples(fasta, 4).shape == (2, 4)
    with pytest.raises(VAEInputError, match="differ from the 5 model columns"):
        read_samples(fasta, 5)
