"""The workflow through a real SLURM cluster with the `cluster` profile.

CI starts a one-node cluster (partitions `cpu` and `gpu`, no GPUs) with
`.ci/slurm.sh start DIR` and runs this file through `.ci/test-slurm.sh`, with
VAE_REQUIRE_SLURM=1: then an unreachable cluster is a failure, not a skip.
Without that variable the SLURM test runs only against such a throw-away cluster
(ClusterName=local, as .ci/slurm.sh writes it) and skips otherwise, so it never
submits jobs to a real site cluster by accident.

The run is `snakemake --profile cluster --profile .ci/cluster-test --directory .test
--configfile .test/config/config.yaml` from the root of a copy of the repository: the
real profile, with the CI overlay on top (see the comment in
.ci/cluster-test/config.yaml for why), on the tiny test data.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER_PROFILE = REPO / "cluster" / "config.yaml"
CI_PROFILE = REPO / ".ci" / "cluster-test" / "config.yaml"
# the tiny test setup: snakemake's working directory, and its config inside it
# (paths in that config, e.g. the dataset sheet, are relative to TEST_DIR)
TEST_DIR = Path(".test")
TEST_CONFIG = TEST_DIR / "config" / "config.yaml"

# rules that the cluster profile sends to the `gpu` partition; all others run in `cpu`
GPU_RULES = {
    "train_model",
    "train_member",
    "map_query",
    "embed_dataset",
    "score_variants",
    "score_variant_list",
}
PARTITIONS = {"cpu", "gpu"}

# artifacts per dataset, as in all_outputs() of workflow/rules/common.smk (the model
# folder as vae.steps.train_model writes it)
COMMON_ARTIFACTS = [
    "model/model.pt",
    "model/model.json",
    "embedding.h5ad",
    "history.tsv",
    "metrics.json",
    "figures/training_curves.png",
    "figures/latent_umap.png",
]
DOMAIN_ARTIFACTS = {
    "protein": ["samples.fasta", "variant_scores.csv", "figures/variant_scores.png"],
    "expression": ["samples.h5ad"],
}
# protein rows given as one focus sequence and a database (the test sheet's tinysearch):
# rule align_family (workflow/rules/align.smk), a CPU job, writes these before preprocessing
SEARCH_ARTIFACTS = ["alignment.a2m", "alignment.manifest.json", "search_thresholds.tsv"]
SEQUENCE_SUFFIXES = (".fasta", ".fa", ".faa")

# what is not copied into the temporary working directory (ignored build/run outputs)
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".snakemake",
    "results",
    "logs",
    "resources",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "*.egg-info",
    "build",
    "dist",
)

# "Job 3 has been submitted with SLURM jobid 17 (log: /.../rule_train_model/.../17.log)."
SUBMITTED_RE = re.compile(
    r"Job (?P<job>\d+) has been submitted with SLURM jobid (?P<slurm>\d+)"
    r" \(log: (?P<log>[^)]*)\)"
)
RULE_IN_LOG_PATH_RE = re.compile(r"/rule_(?P<rule>[A-Za-z0-9_]+)/")
RUN_ID_RE = re.compile(r"SLURM run ID: (\S+)")
LOCALRULE_RE = re.compile(r"^localrule (\w+):", re.MULTILINE)

TIMEOUT_S = int(os.environ.get("VAE_SLURM_TEST_TIMEOUT", "3600"))


def _load_yaml(path: Path) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh) or {}


# --- the profiles agree (no SLURM needed) --------------------------------------------


def test_ci_profile_mirrors_cluster_profile():
    """The CI overlay differs from the cluster profile only where it has to."""
    cluster = _load_yaml(CLUSTER_PROFILE)
    ci = _load_yaml(CI_PROFILE)

    assert cluster["executor"] == "slurm"
    assert "executor" not in ci, "the overlay must not change the executor"
    allowed = {
        "retries",
        "default-resources",
        "set-resources",
        "slurm-status-command",
        "slurm-init-seconds-before-status-checks",
        "slurm-keep-successful-logs",
    }
    assert set(ci) <= allowed, f"unexpected overlay keys: {set(ci) - allowed}"

    defaults = cluster["default-resources"]
    assert defaults["slurm_partition"] == ci["default-resources"]["slurm_partition"]
    assert set(defaults) - {"slurm_account"} <= set(ci["default-resources"])

    routed = cluster["set-resources"]
    assert set(routed) == GPU_RULES
    for rule, resources in routed.items():
        assert resources["slurm_partition"] == "gpu"
        assert resources["gpu"] == 1
        ci_resources = ci["set-resources"][rule]
        # same partition, but no GPU request on the GRES-less CI node
        assert ci_resources["slurm_partition"] == resources["slurm_partition"]
        assert ci_resources["gpu"] == 0
    for rule, ci_resources in ci["set-resources"].items():
        if rule not in routed:
            assert "slurm_partition" not in ci_resources, f"{rule}: routed only in CI"


# --- the real cluster run -------------------------------------------------------------


def _slurm_problem() -> str | None:
    """Why the SLURM cluster cannot be used, or None when it can."""
    for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            return f"`{tool}` not on PATH"
    try:
        out = subprocess.run(
            ["sinfo", "-h", "-o", "%R %a"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "`sinfo` timed out (is slurmctld running? SLURM_CONF set?)"
    if out.returncode != 0:
        return f"`sinfo` failed: {out.stderr.strip()} (SLURM_CONF={os.environ.get('SLURM_CONF')})"
    up = {line.split()[0] for line in out.stdout.splitlines() if line.endswith(" up")}
    if not PARTITIONS <= up:
        return f"partitions {sorted(PARTITIONS)} must be up; sinfo says: {out.stdout.strip()!r}"
    return None


def _cluster_name() -> str | None:
    out = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=False
    )
    m = re.search(r"^ClusterName\s*=\s*(\S+)", out.stdout, re.MULTILINE)
    return m.group(1) if m else None


def _require_slurm() -> None:
    """Fail (VAE_REQUIRE_SLURM=1) or skip unless the test cluster can be used.

    Called in the test body, not in a fixture, so that CI reports a FAILED test
    rather than an ERROR in setup.
    """
    required = os.environ.get("VAE_REQUIRE_SLURM") == "1"
    problem = _slurm_problem()
    if problem is not None:
        if required:
            pytest.fail(f"VAE_REQUIRE_SLURM=1 but SLURM is not usable: {problem}")
        pytest.skip(f"no SLURM cluster: {problem} (start one with .ci/test-slurm.sh)")
    if not required and _cluster_name() != "local":
        pytest.skip(
            "SLURM is reachable but is not the throw-away cluster of .ci/slurm.sh "
            "(ClusterName=local); set VAE_REQUIRE_SLURM=1 to submit to it anyway"
        )


class _PartitionRecorder(threading.Thread):
    """Polls squeue while the workflow runs: job id -> partition, for every job.

    There is no accounting database, and slurmctld forgets finished jobs after
    MinJobAge (600 s); a run can take longer than that, so the partitions are
    recorded while the jobs are still known.
    """

    def __init__(self, interval: float = 2.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.partitions: dict[str, str] = {}
        self._stop_event = threading.Event()

    def poll(self) -> None:
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-o", "%i %P"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        for line in out.stdout.splitlines():
            fields = line.split()
            if len(fields) == 2:
                self.partitions[fields[0]] = fields[1]

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.poll()
            except (subprocess.SubprocessError, OSError):
                pass
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)
        self.poll()


def _scontrol_partition(slurm_jobid: str) -> str | None:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", slurm_jobid],
        capture_output=True,
        text=True,
        check=False,
    )
    m = re.search(r"\bPartition=(\S+)", out.stdout)
    return m.group(1) if m else None


def _job_stats(log: str) -> dict[str, int]:
    """The first 'Job stats' table of a snakemake log: rule -> number of jobs."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    stats = {}
    for line in lines[start + 3 :]:
        fields = line.split()
        if len(fields) != 2 or not fields[1].isdigit() or fields[0] == "total":
            break
        stats[fields[0]] = int(fields[1])
    return stats


def _datasets(repo: Path) -> list[tuple[str, str, bool]]:
    """(dataset, domain, searched) rows of the test config's dataset sheet.

    ``searched``: a protein row whose source is a focus sequence and that has a database
    (its ``database`` column or the config's ``search.database``), as search_database()
    in workflow/rules/common.smk decides.
    """
    config = _load_yaml(repo / TEST_CONFIG)
    default_database = (config.get("search") or {}).get("database") or ""
    with open(repo / TEST_DIR / config["datasets"], newline="") as fh:
        rows = csv.DictReader(
            (line for line in fh if line.strip() and not line.startswith("#")),
            delimiter="\t",
        )
        return [
            (
                row["dataset"],
                row["domain"],
                row["domain"] == "protein"
                and bool(row.get("database") or default_database)
                and row["source"].lower().endswith(SEQUENCE_SUFFIXES),
            )
            for row in rows
        ]


def _tail(text: str, n: int = 150) -> str:
    return "\n".join(text.splitlines()[-n:])


@pytest.mark.slurm
@pytest.mark.workflow
def test_workflow_through_slurm(tmp_path):
    _require_slurm()
    # TODO(test config): .test/config/config.yaml is written with the workflow; this
    # fails (does not skip) while it is missing.
    assert (REPO / TEST_CONFIG).is_file(), f"missing test config {TEST_CONFIG}"

    workdir = tmp_path / "repo"
    shutil.copytree(REPO, workdir, ignore=COPY_IGNORE, symlinks=True)
    assert (workdir / "cluster" / "config.yaml").is_file()

    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "cluster",
        "--profile",
        ".ci/cluster-test",
        "--directory",
        str(TEST_DIR),
        "--configfile",
        str(TEST_CONFIG),
    ]
    log_path = tmp_path / "snakemake.log"
    recorder = _PartitionRecorder()
    recorder.start()
    t0 = time.monotonic()
    with open(log_path, "w") as log_fh:
        proc = subprocess.Popen(
            cmd, cwd=workdir, stdout=log_fh, stderr=subprocess.STDOUT, text=True
        )
        try:
            returncode = proc.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"snakemake did not finish within {TIMEOUT_S} s:\n" + _tail(log_path.read_text())
            )
        finally:
            # timeout or interrupt: stop snakemake (it cancels its SLURM jobs on SIGINT)
            # and scancel by run id in case it could not
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    proc.kill()
                run_id = RUN_ID_RE.search(log_path.read_text())
                if run_id:
                    subprocess.run(["scancel", "--name", run_id.group(1)], check=False)
            recorder.stop()
    wall_s = time.monotonic() - t0
    log = log_path.read_text()
    print(f"workflow through SLURM: {wall_s:.0f} s wall, log {log_path}")

    # (a) snakemake succeeded
    assert returncode == 0, (
        f"`{' '.join(cmd[1:])}` exited {returncode} in {workdir}:\n{_tail(log)}"
    )
    assert "Using profiles cluster and .ci/cluster-test" in log

    # (b) every job of the run went through sbatch
    submitted = [m.groupdict() for m in SUBMITTED_RE.finditer(log)]
    assert submitted, f"no 'submitted with SLURM jobid' lines in the log:\n{_tail(log)}"
    jobs: dict[str, str] = {}  # SLURM job id -> rule
    for sub in submitted:
        m = RULE_IN_LOG_PATH_RE.search(sub["log"])
        assert m, f"no rule in SLURM log path {sub['log']}"
        jobs[sub["slurm"]] = m.group("rule")
    # jobs that snakemake runs itself ("localrule all:" etc.) are not submitted
    local_rules = set(LOCALRULE_RE.findall(log))
    planned = {rule: n for rule, n in _job_stats(log).items() if rule not in local_rules}
    by_rule: dict[str, int] = {}
    for rule in jobs.values():
        by_rule[rule] = by_rule.get(rule, 0) + 1
    assert by_rule == planned, f"SLURM jobs per rule {by_rule} != planned jobs {planned}"
    assert "train_model" in by_rule
    # one family search per searched row, submitted like any other job
    datasets = _datasets(workdir)
    n_searched = sum(searched for _, _, searched in datasets)
    assert n_searched, "the test sheet has no focus-sequence row: align_family is not run"
    assert by_rule.get("align_family", 0) == n_searched

    # (c) partitions: the GPU rules in `gpu`, everything else (align_family too) in `cpu`
    wrong = {}
    for slurm_jobid, rule in sorted(jobs.items(), key=lambda kv: int(kv[0])):
        partition = recorder.partitions.get(slurm_jobid) or _scontrol_partition(slurm_jobid)
        expected = "gpu" if rule in GPU_RULES else "cpu"
        print(f"SLURM job {slurm_jobid:>4}  {rule:<22} Partition={partition}")
        if partition != expected:
            wrong[f"{rule} (SLURM job {slurm_jobid})"] = (partition, expected)
        # the per-job SLURM log exists (the overlay keeps logs of successful jobs)
        sub = next(s for s in submitted if s["slurm"] == slurm_jobid)
        assert Path(sub["log"]).is_file(), f"missing SLURM log {sub['log']}"
    assert not wrong, f"jobs in the wrong partition (got, expected): {wrong}"

    # (d) the artifacts of every dataset of the test config (and of its search)
    assert datasets, "the test dataset sheet is empty"
    missing = []
    for name, domain, searched in datasets:
        base = workdir / TEST_DIR / "results" / domain / name
        search = SEARCH_ARTIFACTS if searched else []
        for rel in COMMON_ARTIFACTS + DOMAIN_ARTIFACTS[domain] + search:
            path = base / rel
            if not (path.is_file() and path.stat().st_size > 0):
                missing.append(str(path.relative_to(workdir)))
    assert not missing, f"missing or empty artifacts: {missing}"
