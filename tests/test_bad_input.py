"""Bad input matrix: every case exits non-zero with one line naming the file (or config key)
and the problem, leaves no partial output and keeps an earlier result at the same path.

CLI cases call ``vae.cli.main`` in this process (the console script's code path, without
paying the package import per case); ``test_cli_process_*`` repeats one of them as a real
``python -c "from vae.cli import main; main()"`` process. Workflow cases run snakemake on a
copy of ``.test/`` with bad files or sheet rows swapped in; snakemake itself deletes the
outputs of a failed job, so for those the earlier-result check is made on the step function.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import yaml
from _tiny import train_tiny_expression, train_tiny_protein

from vae import steps
from vae.cli import main
from vae.errors import VAEInputError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".test" / "data"
SENTINEL = b"an earlier result that a failed run must leave alone\n"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "workflow" / "Snakefile")]


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def models(tmp_path_factory, workflow_started) -> dict[str, Path]:
    """Tiny trained models: expression with a batch covariate, and protein.

    Requests ``workflow_started`` so that the snakemake runs go on while these train.
    """
    root = tmp_path_factory.mktemp("models")
    cells = train_tiny_expression(
        DATA / "tinycells.h5ad", root, "cells", label_key="cell_type", batch_key="batch"
    )
    fam = train_tiny_protein(DATA / "tinyfam.a2m", root, "fam")
    return {"expression": cells, "protein": fam}


def _alignment_records() -> list[tuple[str, str]]:
    lines = (DATA / "tinyfam.a2m").read_text().split()
    return list(zip(lines[0::2], lines[1::2], strict=True))


def _fasta(records: list[tuple[str, str]]) -> str:
    return "".join(f"{header}\n{seq}\n" for header, seq in records)


def write_bad_alignments(folder: Path) -> None:
    """Alignment inputs, one problem each."""
    records = _alignment_records()
    text = _fasta(records)
    (folder / "empty.a2m").write_bytes(b"")
    cut = text.index(records[10][1]) + 20  # 20 residues into the 11th sequence
    (folder / "truncated.fasta").write_text(text[:cut])
    (folder / "truncated_header.a2m").write_text(_fasta(records[:10]) + records[10][0] + "\n")
    rng = np.random.default_rng(0)
    (folder / "binary.a2m").write_bytes(b"\x00\x01\x02" + rng.bytes(4000))
    unequal = list(records)
    unequal[5] = (unequal[5][0], unequal[5][1] + "ACD")
    (folder / "unequal.a2m").write_text(_fasta(unequal))
    residues = list(records)
    seq = residues[3][1]
    first = re.search("[A-Z]", seq).start()
    residues[3] = (residues[3][0], seq[:first] + "#" + seq[first + 1 :])
    (folder / "residues.a2m").write_text(_fasta(residues))
    # every sequence but the focus holds X (ambiguous) in every match column
    all_x = [records[0]] + [(h, re.sub("[A-Z]", "X", s)) for h, s in records[1:]]
    (folder / "all_ambiguous.a2m").write_text(_fasta(all_x))
    shutil.copy(DATA / "tinyfam.a2m", folder / "family.a2m")


def write_bad_counts(folder: Path) -> None:
    """Count-matrix inputs, one problem each."""
    cells = ad.read_h5ad(DATA / "tinycells.h5ad")
    dense = cells.X.toarray() if sp.issparse(cells.X) else np.asarray(cells.X)
    dense = dense.astype(np.float32)

    def variant(name: str, matrix: np.ndarray | None = None, **changes) -> None:
        out = cells.copy()
        if matrix is not None:
            out.X = matrix
        for key, value in changes.items():
            setattr(out, key, value)
        out.write_h5ad(folder / name)

    variant("non_integer.h5ad", dense * 0.37)
    for name, value in (("negative.h5ad", -3.0), ("nan.h5ad", np.nan), ("inf.h5ad", np.inf)):
        poisoned = dense.copy()
        poisoned[1, 1] = value
        variant(name, poisoned)
    variant("other_genes.h5ad", var_names=[f"other{i}" for i in range(cells.n_vars)])
    no_batch = cells.copy()
    del no_batch.obs["batch"]
    no_batch.write_h5ad(folder / "no_batch.h5ad")
    (folder / "text.h5ad").write_text("cell,g0\nc0,1\n")
    with h5py.File(folder / "plain_hdf5.h5ad", "w") as handle:
        handle["data"] = np.arange(10)
    raw = (DATA / "tinycells.h5ad").read_bytes()
    (folder / "truncated.h5ad").write_bytes(raw[: len(raw) // 3])
    (folder / "empty.h5ad").write_bytes(b"")
    (folder / "counts.xlsx").write_bytes(raw)
    shutil.copy(DATA / "tinycells.h5ad", folder / "cells.h5ad")


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    write_bad_alignments(folder)
    write_bad_counts(folder)
    return folder


# --------------------------------------------------------------------------- helpers
def run_cli(monkeypatch, capsys, *args: str | Path) -> tuple[int, str]:
    """Run the ``vae`` entry point in-process; return (exit code, stderr)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["vae", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line(stderr: str, source: str | Path, problem: str) -> str:
    """Stderr is exactly one ``error: <source>: ...<problem>...`` line, no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error: {source}: "), lines[0]
    assert problem in lines[0], lines[0]
    print(f"observed: {lines[0]}")  # shown by pytest -rP (the BENCHMARKS.md table)
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def with_sentinel(tmp_path: Path, name: str) -> tuple[Path, dict[str, bytes]]:
    """An output folder holding an earlier result at ``name``; returns its path and snapshot."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / name).write_bytes(SENTINEL)
    return folder / name, snapshot(folder)


# --------------------------------------------------------------------------- CLI: vae embed
EMBED_CASES = {
    # id: (model domain, input file, extra options, problem in the message)
    "empty_alignment": ("protein", "empty.a2m", [], "file is empty"),
    "truncated_fasta": (
        "protein",
        "truncated.fasta",
        [],
        "has 18 of 178 match columns: the file looks cut short",
    ),
    "truncated_a2m_after_header": (
        "protein",
        "truncated_header.a2m",
        [],
        "has 0 of 178 match columns: the file looks cut short",
    ),
    "binary_file_named_a2m": (
        "protein",
        "binary.a2m",
        [],
        "binary file, not a sequence alignment",
    ),
    "rows_of_unequal_length": (
        "protein",
        "unequal.a2m",
        [],
        "rows of unequal aligned length (match-column counts [178, 181]): ",
    ),
    "unknown_residues": ("protein", "residues.a2m", [], "has invalid characters ['#']"),
    "h5ad_that_is_text": (
        "expression",
        "text.h5ad",
        [],
        "not a readable AnnData file (not an HDF5 file)",
    ),
    "h5ad_that_is_plain_hdf5": ("expression", "plain_hdf5.h5ad", [], "not a readable AnnData"),
    "truncated_h5ad": (
        "expression",
        "truncated.h5ad",
        [],
        "not a readable AnnData file (truncated: shorter than its header says)",
    ),
    "empty_h5ad": ("expression", "empty.h5ad", [], "file is empty"),
    "non_integer_counts": ("expression", "non_integer.h5ad", [], "X holds non-integer values"),
    "negative_counts": ("expression", "negative.h5ad", [], "X holds negative values"),
    "nan_counts": ("expression", "nan.h5ad", [], "X holds NaN or infinite values"),
    "inf_counts": ("expression", "inf.h5ad", [], "X holds NaN or infinite values"),
    "missing_batch_key": (
        "expression",
        "no_batch.h5ad",
        [],
        "batch key 'batch' of the model is not an obs column",
    ),
    "missing_layer": (
        "expression",
        "cells.h5ad",
        ["--layer", "counts"],
        "layer 'counts' not found",
    ),
    "zero_gene_overlap": (
        "expression",
        "other_genes.h5ad",
        [],
        "none of the model's 40 genes is present",
    ),
    "expression_model_given_alignment": (
        "expression",
        "family.a2m",
        [],
        "is a sequence file but the model is an expression model",
    ),
    "protein_model_given_h5ad": ("protein", "cells.h5ad", [], "the model is a protein model"),
    "input_does_not_exist": ("expression", "missing.h5ad", [], "file does not exist"),
    "unknown_input_suffix": ("expression", "counts.xlsx", [], "unknown expression suffix '.xlsx'"),
}


@pytest.mark.parametrize("case", list(EMBED_CASES))
def test_cli_embed_bad_input(case, models, bad, tmp_path, monkeypatch, capsys) -> None:
    domain, name, options, problem = EMBED_CASES[case]
    output, before = with_sentinel(tmp_path, "embedded.h5ad")
    code, stderr = run_cli(
        monkeypatch, capsys, "embed", models[domain], bad / name, output, *options
    )
    assert code != 0
    assert_one_line(stderr, bad / name, problem)
    assert snapshot(output.parent) == before  # earlier result kept, no partial or temp file


# --------------------------------------------------------------------------- CLI: model folder
def test_cli_model_folder_missing(bad, tmp_path, monkeypatch, capsys) -> None:
    output, before = with_sentinel(tmp_path, "embedded.h5ad")
    missing = tmp_path / "no_model"
    code, stderr = run_cli(monkeypatch, capsys, "embed", missing, bad / "cells.h5ad", output)
    assert code != 0
    assert_one_line(stderr, missing, "not a model folder (no model.pt)")
    assert snapshot(output.parent) == before


def test_cli_model_file_corrupt(bad, tmp_path, monkeypatch, capsys) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model.pt").write_bytes(b"not a torch file" * 10)
    output, before = with_sentinel(tmp_path, "samples.fasta")
    code, stderr = run_cli(monkeypatch, capsys, "sample", model_dir, output, "-n", "3")
    assert code != 0
    assert_one_line(stderr, model_dir / "model.pt", "cannot read model file")
    assert snapshot(output.parent) == before


# --------------------------------------------------------------------------- CLI: outputs
def test_cli_output_parent_is_a_file(models, bad, tmp_path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "results"
    blocker.write_bytes(SENTINEL)  # root ignores chmod, but cannot mkdir inside a regular file
    output = blocker / "embedded.h5ad"
    code, stderr = run_cli(
        monkeypatch, capsys, "embed", models["expression"], bad / "cells.h5ad", output
    )
    assert code != 0
    assert_one_line(stderr, output, f"cannot write output: {blocker} is a file, not a folder")
    assert blocker.read_bytes() == SENTINEL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


def test_cli_output_in_unwritable_folder(models, monkeypatch, capsys) -> None:
    output = Path("/proc/vae_samples.fasta")
    code, stderr = run_cli(monkeypatch, capsys, "sample", models["protein"], output, "-n", "3")
    assert code != 0
    assert_one_line(stderr, output, "cannot write output in /proc")
    assert not output.exists()


def test_cli_output_is_an_existing_folder(models, bad, tmp_path, monkeypatch, capsys) -> None:
    output = tmp_path / "embedded.h5ad"
    output.mkdir()
    (output / "keep.txt").write_bytes(SENTINEL)
    before = snapshot(tmp_path)
    code, stderr = run_cli(
        monkeypatch, capsys, "embed", models["protein"], bad / "family.a2m", output
    )
    assert code != 0
    assert_one_line(stderr, output, "cannot write output: an existing folder is in the way")
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- CLI: real process
PROCESS_CASES = ("truncated_h5ad",)


def test_cli_process_exit_code_and_single_stderr_line(models, bad, tmp_path) -> None:
    """The console entry point as a real process: exit code 2, stderr one line, no output."""
    running = {}
    for case in PROCESS_CASES:
        domain, name, options, _ = EMBED_CASES[case]
        command = [sys.executable, "-c", "from vae.cli import main; main()", "embed"]
        command += [str(models[domain]), str(bad / name), str(tmp_path / f"{case}.h5ad")]
        running[case] = subprocess.Popen(
            [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    for case, process in running.items():
        _, stderr = process.communicate(timeout=300)
        domain, name, _, problem = EMBED_CASES[case]
        assert process.returncode == 2, stderr
        assert_one_line(stderr, bad / name, problem)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- workflow
def _copy_test_workdir(root: Path, name: str) -> Path:
    work = root / name
    shutil.copytree(REPO / ".test" / "config", work / "config")
    shutil.copytree(DATA, work / "data")
    return work


BAD_SHEET = {
    # dataset: (domain, source under data/, focus_id, label_key, batch_key)
    "fam_focus": ("protein", "tinyfam.a2m", "no_such_seq", "", ""),
    "fam_ambiguous": ("protein", "all_ambiguous.a2m", "", "", ""),
    "cells_label": ("expression", "tinycells.h5ad", "", "celltype", ""),
    "cells_qc": ("expression", "tinycells.h5ad", "", "", ""),
    "cells_truncated": ("expression", "truncated.h5ad", "", "", ""),
}


@pytest.fixture(scope="module")
def workflow_started(request, tmp_path_factory, bad):
    """Start three snakemake runs, if workflow cases are selected, to run beside the CLI cases.

    Five bad datasets (``--keep-going``, preprocess targets only) and two bad configs (``-n``).
    Yields ``{name: (workdir, process, stderr file)}`` (``None`` when nothing needs them).
    """
    if not any(
        item.get_closest_marker("workflow") and item.path == request.path
        for item in request.session.items
    ):
        yield None
        return
    root = tmp_path_factory.mktemp("workflow")
    work = _copy_test_workdir(root, "datasets")
    for name in ("all_ambiguous.a2m", "truncated.h5ad"):
        shutil.copy(bad / name, work / "data" / name)
    header = "dataset\tdomain\tsource\tsha256\tfocus_id\tlabels\tlabel_key\tbatch_key\n"
    rows = [
        f"{name}\t{domain}\t{source}\t\t{focus}\t\t{label}\t{batch}\n"
        for name, (domain, source, focus, label, batch) in BAD_SHEET.items()
    ]
    (work / "config" / "datasets.tsv").write_text(header + "".join(rows))
    # no batch-embedding or mapping queries: they would name models of the real sheet
    (work / "config" / "embed.tsv").write_text("dataset\tmodel\tsource\n")
    (work / "config" / "map.tsv").write_text("dataset\tmodel\tsource\n")
    (work / "config" / "variant_lists.tsv").write_text("name\tdataset\tvariants\n")
    # zero genes after QC for cells_qc; the other expression rows fail on their own check first
    _edit_config(work, lambda c: c["preprocess"]["expression"].update(min_cells=1000))
    targets = [
        f"results/{domain}/{name}/preprocessed.h5ad" for name, (domain, *_) in BAD_SHEET.items()
    ]
    commands = {"datasets": (work, ["--keep-going", *targets])}
    for name, edit in BAD_CONFIGS.items():
        dry = _copy_test_workdir(root, name)
        _edit_config(dry, edit)
        commands[name] = (dry, ["-n"])
    running = {}
    for name, (workdir, args) in commands.items():
        stderr = root / f"{name}.stderr"
        with open(stderr, "w") as err, open(root / f"{name}.stdout", "w") as out:
            process = subprocess.Popen(
                [*SNAKEMAKE, "--directory", str(workdir), "--cores", "2"]
                + ["--configfile", str(workdir / "config" / "config.yaml"), *args],
                stdout=out,
                stderr=err,
            )
        running[name] = (workdir, process, stderr)
    yield running
    for _, process, _ in running.values():
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def workflow_runs(workflow_started) -> dict[str, tuple[Path, int, str]]:
    """Wait for the snakemake runs; ``{name: (workdir, exit code, stderr)}``."""
    out = {}
    for name, (workdir, process, stderr) in workflow_started.items():
        out[name] = (workdir, process.wait(timeout=600), stderr.read_text())
    return out


def _edit_config(workdir: Path, edit) -> None:
    path = workdir / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


BAD_CONFIGS = {
    # run: change to the .test config
    "misspelt_key": lambda c: c["train"]["protein"].update(
        grad_clp=c["train"]["protein"].pop("grad_clip")
    ),
    "wrong_type": lambda c: c["train"]["protein"].update(lr="fast"),
}


WORKFLOW_CASES = {
    # id: (dataset, rule, source, problem, step function, step kwargs)
    "focus_id_not_found": (
        "fam_focus",
        "preprocess_protein",
        "tinyfam.a2m",
        "focus sequence 'no_such_seq' not found",
        {"focus_id": "no_such_seq"},
    ),
    "all_sequences_filtered_out": (
        "fam_ambiguous",
        "preprocess_protein",
        "all_ambiguous.a2m",
        "all sequences except the focus were filtered out",
        {},
    ),
    "missing_label_key": (
        "cells_label",
        "preprocess_expression",
        "tinycells.h5ad",
        "label key 'celltype' not in obs columns ['cell_type', 'batch']",
        {"label_key": "celltype"},
    ),
    "zero_genes_after_qc": (
        "cells_qc",
        "preprocess_expression",
        "tinycells.h5ad",
        "zero genes left after QC (min_cells=1000)",
        {"min_cells": 1000},
    ),
    "truncated_h5ad_swapped_in": (
        "cells_truncated",
        "preprocess_expression",
        "truncated.h5ad",
        "not a readable AnnData/count file (truncated: shorter than its header says)",
        {},
    ),
}


@pytest.mark.workflow
@pytest.mark.parametrize("case", list(WORKFLOW_CASES))
def test_workflow_bad_dataset(case, workflow_runs, bad, tmp_path) -> None:
    dataset, rule, source, problem, kwargs = WORKFLOW_CASES[case]
    work, code, stderr = workflow_runs["datasets"]
    assert code != 0
    assert f"error: data/{source}: {problem}" in stderr, stderr[-3000:]
    print(
        "observed:",
        next(
            ln for ln in stderr.splitlines() if ln.startswith(f"error: data/{source}: {problem}")
        ),
    )
    log = (work / "logs" / rule / f"{dataset}.log").read_text()
    assert "Traceback" not in log
    assert re.split(r" ERROR vae\.steps\.\w+: ", log.strip().splitlines()[-1])[1].startswith(
        f"data/{source}: {problem}"
    )
    domain = "protein" if rule == "preprocess_protein" else "expression"
    folder = work / "results" / domain / dataset
    assert not folder.exists() or list(folder.iterdir()) == []
    # the step itself keeps an earlier result at its output path (snakemake removes the
    # outputs of a failed job on its own, so this is checked on the step function)
    output, before = with_sentinel(tmp_path, "preprocessed.h5ad")
    src = bad / source if (bad / source).exists() else DATA / source
    with pytest.raises(VAEInputError, match=re.escape(problem)):
        getattr(steps, rule)(src, output, **kwargs)
    assert snapshot(output.parent) == before


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("case", "line"),
    [
        (
            "misspelt_key",
            "error: config: train.protein: Additional properties are not allowed "
            "('grad_clp' was unexpected)",
        ),
        ("wrong_type", "error: config: train.protein.lr: 'fast' is not of type 'number'"),
    ],
)
def test_workflow_bad_config(case, line, workflow_runs) -> None:
    work, code, stderr = workflow_runs[case]
    assert code != 0
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == line
    print(f"observed: {line}")
    assert not (work / "results").exists()
