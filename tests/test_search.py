"""Family search from a focus sequence: pyhmmer search streamed in blocks, A2M output,
threshold choice, provenance, bad input, and the workflow stage.

The database is built at test time: 40 sequences of the shipped P53 alignment (gaps
removed), 40 decoys emitted from other Pfam HMMs shipped with pyhmmer (seeded) and 20
shuffled P53 sequences.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from Bio import SeqIO

from vae._io import sha256_file
from vae._script import run_logged
from vae.data._msa import read_alignment
from vae.data._search import search_family, search_family_thresholds
from vae.data._search_a2m import read_focus, write_a2m
from vae.errors import VAEInputError
from vae.steps import align_family, preprocess_protein
from vae.steps.align import read_search_summary

REPO = Path(__file__).resolve().parents[1]
P53 = REPO.parent / "shared" / "data" / "protein" / "P53_HUMAN_b0.1.a2m"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]
DECOY_HMMS = ("Thioesterase.hmm", "PF02826.hmm", "KR.hmm", "LuxC.hmm")

pytestmark = pytest.mark.skipif(not P53.is_file(), reason="shared P53 alignment missing")


def _a2m_records(path: Path) -> list[tuple[str, str]]:
    """``(id, unaligned upper-case sequence)`` of each record (Biopython's FASTA reader)."""
    return [
        (record.id, "".join(c for c in str(record.seq) if c.isalpha()).upper())
        for record in SeqIO.parse(path, "fasta")
    ]


def _decoys(n_per_hmm: int, seed: int) -> list[tuple[str, str]]:
    import pyhmmer

    folder = Path(pyhmmer.__file__).parent / "tests" / "data" / "hmms" / "txt"
    rng = pyhmmer.easel.Randomness(seed + 1)  # Easel seeds 0 from the clock
    out = []
    for name in DECOY_HMMS:
        with pyhmmer.plan7.HMMFile(folder / name) as handle:
            hmm = handle.read()
        for i in range(n_per_hmm):
            out.append((f"decoy_{Path(name).stem}_{i}", hmm.emit_sequence(rng).textize().sequence))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    """Focus file, database (plain and gzip) and which ids are family or decoys."""
    root = tmp_path_factory.mktemp("search")
    records = _a2m_records(P53)
    focus_name, focus_seq = records[0]
    family = [(name.split("/")[0], seq) for name, seq in records[1::90][:40]]
    rng = np.random.default_rng(0)
    shuffled = [
        (f"shuffled_{i}", "".join(rng.permutation(list(seq))))
        for i, (_, seq) in enumerate(family[:20])
    ]
    decoys = _decoys(10, seed=0) + shuffled
    database = root / "db.fasta"
    database.write_text("".join(f">{n}\n{s}\n" for n, s in family + decoys))
    with open(database, "rb") as plain, gzip.open(root / "db.fasta.gz", "wb") as packed:
        shutil.copyfileobj(plain, packed)
    focus = root / "focus.fasta"
    focus.write_text(f">{focus_name}\n{focus_seq}\n")
    return {
        "root": root,
        "focus": focus,
        "database": database,
        "gz": root / "db.fasta.gz",
        "family": {n for n, _ in family},
        "decoys": {n for n, _ in decoys},
    }


def _ids(rows) -> set[str]:
    return {name.rsplit("/", 1)[0] for name, _ in rows[1:]}


@pytest.fixture(scope="module")
def found(tiny):
    focus = read_focus(tiny["focus"])
    return search_family(
        focus, tiny["database"], iterations=3, bitscore_per_residue=0.1, block_size=16, threads=2
    )


def test_search_finds_the_family_and_no_decoy(tiny, found) -> None:
    ids = _ids(found.rows)
    assert ids == tiny["family"]
    assert not ids & tiny["decoys"]


def test_alignment_is_a2m_with_the_focus_first_in_its_numbering(tiny, found) -> None:
    name, sequence = read_focus(tiny["focus"])
    assert len({len(row) for _, row in found.rows}) == 1
    n_match = {sum(c.isupper() or c == "-" for c in row) for _, row in found.rows}
    assert len(n_match) == 1
    first, last = map(int, found.rows[0][0].split("/")[1].split("-"))
    assert found.rows[0][0] == f"P53_HUMAN/{first}-{last}"
    residues = "".join(c for c in found.rows[0][1] if c.isalpha()).upper()
    assert residues == sequence[first - 1 : last]
    assert "-" not in found.rows[0][1]  # every match column is a focus residue
    path = tiny["root"] / "found.a2m"
    path.write_text("".join(f">{n}\n{r}\n" for n, r in found.rows))
    msa = read_alignment(path)
    assert all(
        sequence[p - 1] == w for p, w in zip(msa.positions, msa.focus_residues, strict=True)
    )


def test_a3m_reads_back_to_the_same_match_columns_as_a2m(tiny, found) -> None:
    a2m, a3m = tiny["root"] / "out.a2m", tiny["root"] / "out.a3m"
    write_a2m(found.rows, a2m)
    write_a2m(found.rows, a3m, "a3m")
    rows = [line for line in a3m.read_text().splitlines() if not line.startswith(">")]
    assert not any("." in row for row in rows)  # no insert-column padding
    assert len({len(row) for row in rows}) > 1  # so rows differ in length
    assert rows == [row.replace(".", "") for _, row in found.rows]
    loose = {"max_seq_gap_frac": 1.0, "max_col_gap_frac": 1.0}
    for options in ({}, loose):
        padded, unpadded = read_alignment(a2m, **options), read_alignment(a3m, **options)
        assert padded.ids == unpadded.ids
        assert padded.sequences == unpadded.sequences
        np.testing.assert_array_equal(padded.positions, unpadded.positions)
        assert padded.focus_residues == unpadded.focus_residues
    assert len(read_alignment(a3m, **loose).ids) == len(found.rows)


def test_align_family_writes_a3m_for_an_a3m_path(tiny) -> None:
    out = tiny["root"] / "as_a3m"
    record = align_family(
        tiny["focus"],
        tiny["database"],
        out / "alignment.a3m",
        iterations=1,
        cpus=2,
        bitscore_per_residue=0.1,
    )
    assert record["alignment_format"] == "a3m"
    manifest = json.loads((out / "alignment.manifest.json").read_text())
    assert manifest["search"]["alignment_format"] == "a3m"
    text = (out / "alignment.a3m").read_text()
    assert "." not in "".join(line for line in text.splitlines() if not line.startswith(">"))
    assert read_search_summary(out / "alignment.a3m")["iterations_run"] == 1


def test_provenance_records_settings_checksum_and_hits(tiny, found) -> None:
    record = found.record
    assert record["database"]["sha256"] == sha256_file(tiny["database"])
    assert record["database"]["n_sequences"] == len(tiny["family"]) + len(tiny["decoys"])
    assert record["settings"]["threshold_bits"] == pytest.approx(0.1 * 393, abs=1e-3)
    rounds = record["iterations"]
    assert [r["iteration"] for r in rounds] == list(range(1, len(rounds) + 1))
    assert rounds[-1]["n_sequences_included"] == len(tiny["family"])
    assert record["database"]["passes"] == len(rounds)


def test_a_database_searched_before_is_not_hashed_again(tiny, tmp_path, monkeypatch) -> None:
    import vae.data._seqdb as seqdb

    monkeypatch.setenv("VAE_CACHE_DIR", str(tmp_path / "cache"))
    focus = read_focus(tiny["focus"])
    first = search_family(focus, tiny["database"], iterations=1, bitscore_per_residue=0.1)
    assert first.record["database"]["sha256_remembered"] is False
    hashed = []

    class CountingReader(seqdb._HashingReader):
        def __init__(self, raw) -> None:
            hashed.append(raw)
            super().__init__(raw)

    monkeypatch.setattr(seqdb, "_HashingReader", CountingReader)
    second = search_family(focus, tiny["database"], iterations=1, bitscore_per_residue=0.1)
    assert second.record["database"]["sha256_remembered"] is True
    assert not hashed
    assert second.record["database"]["sha256"] == sha256_file(tiny["database"])
    assert second.record["database"]["bytes"] == first.record["database"]["bytes"]
    assert second.rows == first.rows


def test_blocks_threads_and_gzip_give_the_same_alignment(tiny, found) -> None:
    focus = read_focus(tiny["focus"])
    whole = search_family(
        focus, tiny["gz"], iterations=3, bitscore_per_residue=0.1, block_size=10**6, threads=1
    )
    assert whole.rows == found.rows
    assert whole.record["database"]["sha256"] == sha256_file(tiny["gz"])


def test_units_cut_the_database_at_record_starts(tmp_path) -> None:
    from vae.data._seqdb import SequenceDatabase

    rng = np.random.default_rng(1)
    records = []
    for i in range(300):
        seq = "".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), int(rng.integers(0, 900))))
        lines = "".join(seq[j : j + 60] + "\n" for j in range(0, len(seq), 60))
        records.append(f">s{i} note{' >x' if i % 7 == 0 else ''}\n{lines}")
    text = ("\n" + "".join(records)).encode()
    path = tmp_path / "db.fasta"
    path.write_bytes(text)
    for max_bytes, max_sequences in [
        (1, 10**6),
        (500, 3),
        (4096, 10**6),
        (10**7, 7),
        (10**7, 10**6),
    ]:
        with SequenceDatabase(path, hash_it=True) as database:
            units = list(database.units(max_bytes, max_sequences))
            assert database.hasher.digest.hexdigest() == sha256_file(path)
        assert b"".join(bytes(unit.data) for unit in units) == text
        assert [unit.offset for unit in units] == list(
            np.cumsum([0] + [len(unit.data) for unit in units[:-1]])
        )
        for unit in units[1:]:
            assert bytes(unit.data).startswith(b">")
        for unit in units:
            data = bytes(unit.data)
            n_records = data.count(b"\n>") + data.startswith(b">")
            assert n_records <= max_sequences
            assert len(unit.data) <= max_bytes or n_records == 1


def test_a_bad_record_deep_in_the_database_is_named_by_its_line(tiny, tmp_path) -> None:
    lines = tiny["database"].read_text().splitlines(keepends=True)
    database = tmp_path / "bad.fasta"
    database.write_text("".join(lines[:150]) + ">broken\nMEEP1Q\n" + "".join(lines[150:]))
    assert lines[150].startswith(">")
    focus = read_focus(tiny["focus"])
    with pytest.raises(
        VAEInputError, match=r"bad.fasta: not a protein FASTA database: .*line 152: "
    ):
        search_family(focus, database, iterations=1, block_size=16, threads=2)


def test_first_round_matches_pyhmmer_jackhmmer(tiny) -> None:
    import pyhmmer
    from pyhmmer import easel

    focus = read_focus(tiny["focus"])
    alphabet = easel.Alphabet.amino()
    with easel.SequenceFile(tiny["database"], digital=True, alphabet=alphabet) as handle:
        block = handle.read_block()
    query = easel.TextSequence(name=focus[0], sequence=focus[1]).digitize(alphabet)
    bits = 0.3 * len(query)
    (reference,) = pyhmmer.hmmer.jackhmmer(
        query, block, max_iterations=1, T=bits, domT=bits, incT=bits, incdomT=bits
    )
    (ours,) = search_family_thresholds(focus, tiny["database"], [0.3], iterations=1, threads=2)
    assert _ids(ours.rows) == {hit.name for hit in reference.hits.included}


def test_threshold_choice_writes_the_table_and_keeps_one(tiny) -> None:
    out = tiny["root"] / "choice"
    record = align_family(
        tiny["focus"],
        tiny["database"],
        out / "alignment.a2m",
        iterations=2,
        thresholds=[0.1, 0.5, 5.0],
        min_neff_per_position=0.01,
        cpus=2,
    )
    lines = (out / "search_thresholds.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [r["bitscore_per_residue"] for r in rows] == ["0.1", "0.5", "5.0"]
    assert [r["chosen"] for r in rows].count("true") == 1
    assert rows[2]["n_sequences_included"] == "0"
    assert rows[2]["chosen"] == "false"
    chosen = next(r for r in rows if r["chosen"] == "true")
    assert float(chosen["coverage"]) == max(float(r["coverage"]) for r in rows)
    manifest = json.loads((out / "alignment.manifest.json").read_text())
    assert manifest["search"]["choice"]["thresholds_tried"] == [0.1, 0.5, 5.0]
    assert record["settings"]["bitscore_per_residue"] == float(chosen["bitscore_per_residue"])


def test_preprocessing_records_the_search(tiny, tmp_path) -> None:
    alignment = tmp_path / "alignment.a2m"
    align_family(tiny["focus"], tiny["database"], alignment, bitscore_per_residue=0.1, cpus=2)
    stats = preprocess_protein(alignment, tmp_path / "pre.h5ad", device="cpu")
    summary = read_search_summary(alignment)
    assert stats["search"] == summary
    assert summary["database_sha256"] == sha256_file(tiny["database"])
    assert summary["sequences_per_iteration"][-1] == len(tiny["family"])
    import anndata as ad

    uns = ad.read_h5ad(tmp_path / "pre.h5ad").uns["preprocess"]["search"]
    assert uns["bitscore_per_residue"] == 0.1
    assert list(uns["sequences_per_iteration"]) == summary["sequences_per_iteration"]


# --------------------------------------------------------------------------- bad input
def _bad_inputs(tiny, folder: Path) -> dict[str, tuple[Path, Path, dict, str]]:
    """case: (focus, database, options, problem in the one line)."""
    focus_text = tiny["focus"].read_text()
    files = {
        "two.fasta": focus_text + focus_text.replace("P53_HUMAN/1-393", "other"),
        "none.fasta": "just some text\n",
        "empty.fasta": "",
        "chars.fasta": focus_text.replace("MEEP", "ME#P1", 1),
        "dna.fasta": ">gene\n" + "ACGT" * 30 + "\n",
        "range.fasta": focus_text.replace("/1-393", "/1-300"),
        "empty_db.fasta": "",
        "not_fasta_db.fasta": "not a database\n",
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    db, focus = tiny["database"], tiny["focus"]
    return {
        "several_records": (folder / "two.fasta", db, {}, "holds 2 sequences; give exactly one"),
        "zero_records": (folder / "none.fasta", db, {}, "not a FASTA file"),
        "empty_focus": (folder / "empty.fasta", db, {}, "focus file is empty"),
        "non_protein": (folder / "chars.fasta", db, {}, "non-protein characters ['#', '1']"),
        "nucleotides": (folder / "dna.fasta", db, {}, "looks like DNA/RNA"),
        "range_mismatch": (folder / "range.fasta", db, {}, "range 1-300 says 300 residues"),
        "missing_focus": (folder / "nope.fasta", db, {}, "focus file does not exist"),
        "missing_db": (focus, folder / "nope_db.fasta", {}, "sequence database does not exist"),
        "empty_db": (focus, folder / "empty_db.fasta", {}, "sequence database is empty"),
        "not_fasta_db": (focus, folder / "not_fasta_db.fasta", {}, "not a protein FASTA"),
        "no_hits": (focus, db, {"bitscore_per_residue": 5.0}, "no sequence scores 1965 bits"),
    }


def test_bad_input_is_one_line_nonzero_and_writes_nothing(tiny, tmp_path, capsys) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for case, (focus, database, options, problem) in _bad_inputs(tiny, inputs).items():
        out = tmp_path / case
        out.mkdir()
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            run_logged(
                str(tmp_path / f"{case}.log"),
                align_family,
                focus,
                database,
                out / "alignment.a2m",
                iterations=1,
                **options,
            )
        assert exit_info.value.code == 1, case
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1, (case, lines)
        source = (
            database if case in ("missing_db", "empty_db", "not_fasta_db", "no_hits") else focus
        )
        assert lines[0].startswith(f"error: {source}: "), (case, lines[0])
        assert problem in lines[0], (case, lines[0])
        assert list(out.iterdir()) == [], case


# --------------------------------------------------------------------------- workflow
def _workdir(
    tiny, root: Path, database_column: str = "db.fasta", source: str = "p53.fasta", **search
):
    shutil.copytree(REPO / ".test" / "config", root / "config")
    shutil.copytree(REPO / ".test" / "data", root / "data")
    shutil.copy(tiny["focus"], root / "data" / "p53.fasta")
    shutil.copy(tiny["database"], root / "data" / "db.fasta")
    sheet = root / "config" / "datasets.tsv"
    rows = sheet.read_text().splitlines()
    header = rows[0].split("\t")  # .test's sheet has a database column (its tinysearch row)
    header += [] if "database" in header else ["database"]
    body = [row + "\t" * (len(header) - len(row.split("\t"))) for row in rows[1:]]
    extra = dict.fromkeys(header, "") | {
        "dataset": "p53search",
        "domain": "protein",
        "source": source,
        "database": database_column,
    }
    sheet.write_text(
        "\n".join(["\t".join(header), *body, "\t".join(extra[h] for h in header)]) + "\n"
    )
    (root / "config" / "embed.tsv").write_text("dataset\tmodel\tsource\n")
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["search"] = {"iterations": 2, "bitscore_per_residue": 0.1, "threads": 2} | search
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def _snakemake(workdir: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2", *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env=env,
        check=False,
        timeout=600,
    )


def _no_vae_env(root: Path) -> dict[str, str]:
    (root / "vae").mkdir(parents=True)
    (root / "vae" / "__init__.py").write_text('raise ImportError("vae imported at parse time")\n')
    return os.environ | {
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    }


@pytest.mark.workflow
def test_workflow_plans_the_search_without_importing_vae(tiny, tmp_path) -> None:
    work = _workdir(tiny, tmp_path / "work")
    result = _snakemake(work, "-n", env=_no_vae_env(tmp_path / "stub"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "align_family" in result.stdout
    assert "results/protein/p53search/alignment.a2m" in result.stdout


@pytest.mark.workflow
def test_workflow_plans_an_a3m_alignment_when_asked(tiny, tmp_path) -> None:
    work = _workdir(tiny, tmp_path / "work", alignment_format="a3m")
    result = _snakemake(
        work, "-n", "results/protein/p53search/preprocessed.h5ad", env=_no_vae_env(tmp_path / "s")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "results/protein/p53search/alignment.a3m" in result.stdout
    assert "alignment.a2m" not in result.stdout


@pytest.mark.workflow
def test_workflow_refuses_a_database_for_an_alignment_source(tiny, tmp_path) -> None:
    work = _workdir(tiny, tmp_path / "work", source="tinyfam.a2m")
    result = _snakemake(work, "-n", env=_no_vae_env(tmp_path / "stub"))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "error: config/datasets.tsv row 'p53search': a database is searched only for a "
        "protein source that is a sequence file (.fasta, .fa, .faa)"
    )


@pytest.mark.workflow
def test_workflow_searches_then_preprocesses(tiny, tmp_path) -> None:
    work = _workdir(tiny, tmp_path / "work")
    result = _snakemake(work, "results/protein/p53search/preprocessed.h5ad")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = work / "results" / "protein" / "p53search"
    manifest = json.loads((folder / "alignment.manifest.json").read_text())
    assert manifest["search"]["settings"]["iterations"] == 2
    assert manifest["search"]["settings"]["threads"] == 2
    assert (folder / "search_thresholds.tsv").is_file()
    import anndata as ad

    uns = ad.read_h5ad(folder / "preprocessed.h5ad").uns["preprocess"]
    assert uns["search"]["database_sha256"] == sha256_file(work / "data" / "db.fasta")
