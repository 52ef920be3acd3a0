"""Reading, filtering, encoding and weighting protein alignments."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from conftest import (
    AMBIGUOUS_SEQUENCE,
    DROPPED_COLUMN,
    FOCUS_GAP_COLUMNS,
    FOCUS_ID,
    FOCUS_POSITIONS,
    GAPPY_SEQUENCES,
    N_MATCH,
    N_SEQ,
    ORDER_COLUMN,
    write_fasta,
)

from vae._alphabet import PROTEIN_ALPHABET
from vae.data import (
    alignment_to_anndata,
    decode,
    encode,
    read_alignment,
    read_records,
    sequence_weights,
)
from vae.data._weights import informative_column_order, one_hot_neighbour_counts
from vae.errors import VAEInputError

KEPT_COLUMNS = [c for c in range(N_MATCH) if c not in FOCUS_GAP_COLUMNS and c != DROPPED_COLUMN]


# --- focus columns, numbering, filters --------------------------------------------------------


def test_focus_columns_and_numbering(a2m_path, synthetic_alignment):
    aln = read_alignment(a2m_path)
    assert aln.ids[0] == FOCUS_ID
    np.testing.assert_array_equal(aln.focus_columns, KEPT_COLUMNS)
    # "mk" before the first match column are residues 10 and 11: column 0 is residue 12
    np.testing.assert_array_equal(aln.positions, [FOCUS_POSITIONS[c] for c in KEPT_COLUMNS])
    assert aln.positions[0] == 12
    # the "gs" insertion after column 12 shifts column 13 to residue 26
    assert aln.positions[KEPT_COLUMNS.index(13)] == 26
    assert aln.focus_residues == aln.sequences[0]
    assert aln.focus_residues == "".join(synthetic_alignment.match[0][c] for c in KEPT_COLUMNS)


def test_numbering_without_range_starts_at_one(tmp_path):
    path = write_fasta(tmp_path / "plain.a2m", ["focus", "other"], ["abCD-EfG", "..CDAEgG"])
    aln = read_alignment(path, max_col_gap_frac=1.0)
    # a, b are 1, 2; C=3, D=4, E=5, f=6, G=7
    np.testing.assert_array_equal(aln.positions, [3, 4, 5, 7])
    assert aln.focus_residues == "CDEG"
    assert aln.sequences[1] == "CDEG"


def test_filters_sequences_then_columns(a2m_path, synthetic_alignment):
    aln = read_alignment(a2m_path)
    assert aln.stats == {
        "n_sequences_read": N_SEQ,
        "n_match_columns": N_MATCH,
        "n_focus_columns": N_MATCH - len(FOCUS_GAP_COLUMNS),
        "n_dropped_gappy_sequences": len(GAPPY_SEQUENCES),
        "n_dropped_ambiguous_sequences": 1,
        "n_dropped_gappy_columns": 1,
        "n_sequences": N_SEQ - len(GAPPY_SEQUENCES) - 1,
        "n_columns": len(KEPT_COLUMNS),
    }
    # column 22 survives only because the gappy sequences were removed first
    assert ORDER_COLUMN in aln.focus_columns
    assert DROPPED_COLUMN not in aln.focus_columns
    assert aln.sequences == synthetic_alignment.expected_sequences()
    dropped_ids = {synthetic_alignment.ids[i] for i in (*GAPPY_SEQUENCES, AMBIGUOUS_SEQUENCE)}
    assert dropped_ids.isdisjoint(aln.ids)
    assert len(set(map(len, aln.sequences))) == 1


def test_gap_thresholds_are_parameters(a2m_path):
    loose = read_alignment(a2m_path, max_seq_gap_frac=1.0, max_col_gap_frac=1.0)
    assert loose.stats["n_dropped_gappy_sequences"] == 0
    assert loose.stats["n_dropped_gappy_columns"] == 0
    assert loose.stats["n_columns"] == N_MATCH - len(FOCUS_GAP_COLUMNS)
    strict = read_alignment(a2m_path, max_seq_gap_frac=0.0, max_col_gap_frac=0.0)
    assert strict.stats["n_dropped_gappy_sequences"] > len(GAPPY_SEQUENCES)
    assert all("-" not in s for s in strict.sequences)


def test_ambiguous_residues_dropped_and_counted(a2m_path, synthetic_alignment):
    aln = read_alignment(a2m_path)
    assert synthetic_alignment.ids[AMBIGUOUS_SEQUENCE] not in aln.ids
    # sequence 31's B sits in the dropped column 20: it is kept
    assert synthetic_alignment.ids[31] in aln.ids
    assert aln.stats["n_dropped_ambiguous_sequences"] == 1
    assert not any(set(s) & set("BZXJUO*") for s in aln.sequences)


def test_ambiguous_focus_raises(tmp_path):
    path = write_fasta(tmp_path / "x.a2m", ["f/1-4", "a", "b"], ["ACXE", "ACDE", "ACDE"])
    with pytest.raises(VAEInputError, match="focus sequence has ambiguous"):
        read_alignment(path)


def test_stop_symbol_in_focus_is_a_residue(tmp_path):
    # '*' is legal in a match column; it must be numbered like any residue
    path = write_fasta(tmp_path / "s.a2m", ["f/1-5", "a", "b"], ["ACDE*", "ACDEF", "ACDEF"])
    with pytest.raises(VAEInputError, match="ambiguous"):
        read_alignment(path)
    path = write_fasta(tmp_path / "t.a2m", ["f/1-5", "a", "b"], ["ACDEF", "ACDE*", "ACDEF"])
    aln = read_alignment(path)
    assert aln.ids == ["f/1-5", "b"]
    assert aln.stats["n_dropped_ambiguous_sequences"] == 1


def test_a2m_padded_equals_a3m_unpadded(a2m_path, a3m_path):
    a2m_rows = [row for _, row in read_records(a2m_path)]
    a3m_rows = [row for _, row in read_records(a3m_path)]
    assert len({len(r) for r in a2m_rows}) == 1  # padded: all rows equally long
    assert len({len(r) for r in a3m_rows}) > 1  # unpadded: they are not
    padded, unpadded = read_alignment(a2m_path), read_alignment(a3m_path)
    assert padded.ids == unpadded.ids
    assert padded.sequences == unpadded.sequences
    np.testing.assert_array_equal(padded.positions, unpadded.positions)
    np.testing.assert_array_equal(padded.focus_columns, unpadded.focus_columns)
    assert padded.stats == unpadded.stats


def test_stockholm_reads_like_a2m(stockholm_path, a2m_path):
    records = read_records(stockholm_path)
    assert records[0][0] == FOCUS_ID
    # Stockholm insert-column gaps '.' survive reading
    assert "." in records[1][1] or "." in records[2][1]
    sto, a2m = read_alignment(stockholm_path), read_alignment(a2m_path)
    assert sto.ids == a2m.ids
    assert sto.sequences == a2m.sequences
    np.testing.assert_array_equal(sto.positions, a2m.positions)
    assert sto.stats == a2m.stats


def test_stockholm_multi_block(tmp_path):
    text = (
        "# STOCKHOLM 1.0\n#=GF ID test\n"
        "f/3-9   mkAC.D\n"
        "s1      ..ACwD\n"
        "s2      ..AC.-\n"
        "\n"
        "f/3-9   EF\n"
        "s1      EF\n"
        "s2      -F\n"
        "//\n"
    )
    path = tmp_path / "two_blocks.stk"
    path.write_text(text)
    aln = read_alignment(path, max_col_gap_frac=1.0)
    assert aln.sequences == ["ACDEF", "ACDEF", "AC--F"]
    np.testing.assert_array_equal(aln.positions, [5, 6, 7, 8, 9])


def test_focus_id_selection(a2m_path, synthetic_alignment):
    target = synthetic_alignment.ids[35]
    by_full = read_alignment(a2m_path, focus_id=target, max_col_gap_frac=1.0)
    by_name = read_alignment(a2m_path, focus_id=target.split("/")[0], max_col_gap_frac=1.0)
    assert by_full.ids[0] == by_name.ids[0] == target
    assert by_full.sequences == by_name.sequences
    assert FOCUS_ID in by_full.ids
    # seq35 has no gaps: all 25 match columns are focus columns, numbered from its start 1
    assert by_full.stats["n_focus_columns"] == N_MATCH
    residues = [c for c in synthetic_alignment.rows(padded=True)[35] if c not in ".-"]
    first_match = next(i for i, c in enumerate(residues) if c.isupper())
    assert by_full.positions[0] == 1 + first_match


# --- bad input --------------------------------------------------------------------------------


def _starts_with_path(err: pytest.ExceptionInfo, path) -> None:
    assert str(err.value).startswith(f"{path}: ")
    assert err.value.source == str(path)


def test_missing_file(tmp_path):
    path = tmp_path / "missing.a2m"
    with pytest.raises(VAEInputError, match="does not exist") as err:
        read_alignment(path)
    _starts_with_path(err, path)


def test_unknown_suffix(tmp_path):
    path = tmp_path / "family.txt"
    path.write_text(">a\nAC\n")
    with pytest.raises(VAEInputError, match="unknown alignment suffix") as err:
        read_alignment(path)
    _starts_with_path(err, path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n  \n", "empty"),
        (b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00\xff\xfe" * 64, "binary"),
        (b"just some text, no records\n", "cannot parse as fasta: "),
        (b"\xff\xfe>a\nAC\n", "cannot parse as fasta: "),
    ],
    ids=["empty", "whitespace", "binary", "not-fasta", "not-utf8"],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.a2m"
    path.write_bytes(content)
    with pytest.raises(VAEInputError, match=message) as err:
        read_alignment(path)
    _starts_with_path(err, path)
    assert "\n" not in str(err.value)  # one line


def test_stockholm_without_sequences(tmp_path):
    path = tmp_path / "empty.sto"
    path.write_text("# STOCKHOLM 1.0\n#=GF ID nothing\n//\n")
    with pytest.raises(VAEInputError, match="no sequences") as err:
        read_alignment(path)
    _starts_with_path(err, path)


@pytest.mark.parametrize(
    ("rows", "focus_id", "message"),
    [
        (["ACDE", "ACDE", "AC"], None, "the last record 's2' has 2 of 4 match columns: "),
        (["ACDE", "ACDE", "AC"], "s2", "the last record 's2' has 2 of 4 match columns: "),
        (["ACDE", "ACDEF", "ACDE"], None, "'s1' has 5, the focus 's0' 4"),
        (["ACDE", "ACDE", "ACDEF"], None, "'s2' has 5, the focus 's0' 4"),
    ],
    ids=["last-cut", "focus-last-cut", "middle-longer", "last-longer"],
)
def test_unequal_rows_are_named(tmp_path, rows, focus_id, message) -> None:
    path = tmp_path / "aln.a2m"
    path.write_text("".join(f">s{i}\n{row}\n" for i, row in enumerate(rows)))
    with pytest.raises(VAEInputError, match=re.escape(message)):
        read_alignment(path, focus_id=focus_id)


@pytest.mark.parametrize(
    ("rows", "kwargs", "message"),
    [
        (["ACDE", "ACD", "ACDE"], {}, "unequal aligned length"),
        (["ACDE", "AC1E", "ACDE"], {}, "invalid characters"),
        (["ACDE", "AC?E", "ACDE"], {}, "invalid characters"),
        (["ACDE", "ACDE", "ACDE"], {"focus_id": "nope"}, "'nope' not found"),
        (["ACDE", "----", "A---"], {}, "all sequences except the focus"),
        (["ACDE", "ACDX", "ACDB"], {}, "all sequences except the focus"),
        (["----", "ACDE", "ACDE"], {}, "no upper-case columns"),
        (["ACDE", "----", "----"], {"max_seq_gap_frac": 1.0}, "all columns filtered"),
    ],
    ids=[
        "unequal",
        "digit",
        "question-mark",
        "focus-missing",
        "all-gappy",
        "all-ambiguous",
        "focus-all-gaps",
        "all-columns",
    ],
)
def test_bad_alignment_content(tmp_path, rows, kwargs, message):
    path = write_fasta(tmp_path / "bad.a2m", ["f/1-4", "a", "b"], rows)
    with pytest.raises(VAEInputError, match=re.escape(message)) as err:
        read_alignment(path, **kwargs)
    _starts_with_path(err, path)


def test_bad_stockholm(tmp_path):
    path = tmp_path / "bad.sto"
    path.write_text("# STOCKHOLM 1.0\na ACDE\nb ACD\n//\n")
    with pytest.raises(VAEInputError) as err:
        read_alignment(path)
    _starts_with_path(err, path)


# --- encoding and weights ---------------------------------------------------------------------


def test_encode_decode_round_trip():
    rng = np.random.default_rng(1)
    letters = np.array(list(PROTEIN_ALPHABET))
    seqs = ["".join(rng.choice(letters, 30)) for _ in range(12)]
    codes = encode(seqs)
    assert codes.dtype == np.int8
    assert codes.shape == (12, 30)
    assert codes.min() >= 0
    assert codes.max() < len(PROTEIN_ALPHABET)
    assert decode(codes) == seqs
    np.testing.assert_array_equal(encode(["A-Y"])[0], [0, 20, 19])


def test_encode_rejects_foreign_characters():
    with pytest.raises(ValueError, match=r"\['X'\]"):
        encode(["ACX"])
    assert encode([]).shape == (0, 0)


def _brute_force_weights(codes: np.ndarray, theta: float) -> np.ndarray:
    """EVE's definition, one pair at a time.

    A sequence's neighbours share more than ``1 - theta`` of its non-gap residues;
    identical sequences (on its non-gap positions) always count, so it counts itself.
    A sequence without residues gets weight 0 (EVE). Identities are exact fractions.
    """
    n = codes.shape[0]
    weights = np.zeros(n)
    for i in range(n):
        residues = codes[i] != 20
        if not residues.any():
            continue
        count = 0
        for j in range(n):
            shared = int(np.sum(residues & (codes[i] == codes[j])))
            identity = Fraction(shared, int(residues.sum()))
            count += identity > 1 - Fraction(str(theta)) or identity == 1
        weights[i] = 1 / count
    return weights


def _clustered_codes(seed: int, n: int = 30, length: int = 20) -> np.ndarray:
    """Families of near-duplicates so identities span 0..1, with gaps and exact copies."""
    rng = np.random.default_rng(seed)
    parents = rng.integers(0, 20, (4, length))
    codes = parents[rng.integers(0, 4, n)]
    mutate = rng.random((n, length)) < rng.uniform(0, 0.4, (n, 1))
    codes = np.where(mutate, rng.integers(0, 21, (n, length)), codes)
    codes[5] = codes[4]  # exact duplicate
    codes[6, :10] = 20  # half gapped
    return codes.astype(np.int8)


@pytest.mark.parametrize("theta", [0.0, 0.1, 0.2, 0.25, 0.5, 0.8, 1.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_sequence_weights_match_brute_force(theta, seed):
    codes = _clustered_codes(seed)
    expected = _brute_force_weights(codes, theta)
    got = sequence_weights(codes, theta=theta)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.all(np.isfinite(got))


def test_sequence_weights_edge_cases():
    # theta=0: only identical sequences are neighbours
    codes = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 3], [4, 5, 6]], dtype=np.int8)
    np.testing.assert_allclose(sequence_weights(codes, theta=0.0), [0.5, 0.5, 1, 1])
    # theta=1: every sequence sharing one residue is a neighbour
    np.testing.assert_allclose(sequence_weights(codes, theta=1.0), [1 / 3, 1 / 3, 1 / 3, 1])
    # a sequence with no residues must not get an infinite weight
    gapped = np.array([[20, 20, 20], [0, 1, 2], [0, 1, 2]], dtype=np.int8)
    weights = sequence_weights(gapped, theta=0.2)
    np.testing.assert_allclose(weights, [0, 0.5, 0.5])
    # a gap-tolerant neighbour: [0, 1, gap] is fully contained in [0, 1, 2]
    contained = np.array([[0, 1, 20], [0, 1, 2]], dtype=np.int8)
    np.testing.assert_allclose(sequence_weights(contained, theta=0.2), [0.5, 1])


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 29, 30, 1000])
def test_one_hot_products_match_bit_packed_kernel(chunk_size):
    codes = _clustered_codes(2)
    lengths = (codes != 20).sum(1)
    kernel = 1.0 / sequence_weights(codes, theta=0.2)[lengths > 0]
    products = one_hot_neighbour_counts(codes, theta=0.2, chunk_size=chunk_size)
    np.testing.assert_allclose(products[lengths > 0], kernel, rtol=1e-6)


@pytest.mark.parametrize("theta", [0.0, 0.2, 0.5])
def test_bit_packed_kernel_across_tiles_and_words(theta):
    # > 2 tiles of 256 sequences and > 3 words of 64 columns, with families and gaps
    rng = np.random.default_rng(3)
    parents = rng.integers(0, 21, (12, 203))
    codes = parents[rng.integers(0, 12, 700)]
    codes = np.where(rng.random(codes.shape) < rng.uniform(0, 0.3, (700, 1)), 20, codes)
    codes = np.where(rng.random(codes.shape) < 0.1, rng.integers(0, 20, codes.shape), codes)
    codes[:4] = 20
    lengths = (codes != 20).sum(1)
    weights = sequence_weights(codes, theta=theta)
    assert np.all(weights[:4] == 0)
    expected = one_hot_neighbour_counts(codes, theta=theta)
    np.testing.assert_allclose(1.0 / weights[lengths > 0], expected[lengths > 0], rtol=1e-6)


def test_informative_columns_come_first():
    codes = np.zeros((50, 3), dtype=np.uint8)
    codes[:, 1] = np.arange(50) % 20  # variable
    codes[:40, 2] = 20  # mostly gaps
    assert informative_column_order(codes).tolist() == [1, 0, 2]


def test_alignment_to_anndata(a2m_path):
    aln = read_alignment(a2m_path)
    adata = alignment_to_anndata(aln, theta=0.2)
    assert adata.shape == (len(aln.sequences), len(KEPT_COLUMNS))
    assert adata.X.dtype == np.int8
    assert decode(adata.X) == aln.sequences
    np.testing.assert_array_equal(adata.var["position"], aln.positions)
    assert "".join(adata.var["wt"]) == aln.focus_residues
    assert adata.var_names[0] == f"{aln.positions[0]}{aln.focus_residues[0]}"
    assert adata.uns["focus_id"] == FOCUS_ID
    weights = adata.obs["weight"].to_numpy()
    np.testing.assert_allclose(weights, sequence_weights(adata.X, theta=0.2))
    assert adata.uns["preprocess"]["neff"] == pytest.approx(weights.sum())
    assert 0 < weights.sum() <= adata.n_obs


def test_demo_family_is_the_same_on_every_run() -> None:
    """Easel seeds 0 from the clock; the demo data must not change from run to run."""
    from vae.data._demo import emit_family_alignment, emit_raw_sequences

    assert emit_family_alignment(50, seed=0) == emit_family_alignment(50, seed=0)
    assert emit_raw_sequences(10, 2, seed=0) == emit_raw_sequences(10, 2, seed=0)
    assert emit_family_alignment(50, seed=0) != emit_family_alignment(50, seed=1)
