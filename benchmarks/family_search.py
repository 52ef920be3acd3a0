"""Family search benchmark: from a focus sequence alone (P53 or PTEN), rebuild its family.

Database: the sequences of the shipped P53 and PTEN alignments (gaps removed; ids without
their ``/start-end`` range) plus decoys: sequences emitted from four Pfam HMMs shipped with
pyhmmer (seeded) and shuffled sequences of the searched family. The other family's
sequences (ids prefixed ``PTEN_`` or ``P53_``) count as decoys too. ``--family`` picks the
focus (the first record of its alignment): ``P53`` (default; ``P53_HUMAN_b0.1.a2m``, built
by EVE at 0.1 bits per residue) or ``PTEN`` (``PTEN_HUMAN_b1.0.a2m``, at 1.0); ``--bits``
defaults to that alignment's threshold.

Measured: recall of the shipped alignment's ids, decoys admitted, wall time, CPU time
and peak RSS of the search (run in a child process, the import of the package included),
for ``vae``'s search and, when the ``jackhmmer`` binary is on PATH (Debian package
``hmmer``), for HMMER's jackhmmer on the same database, query, thresholds, iterations and
threads, side by side: ``--repeats N`` alternates N runs of each (on a shared machine both
see the same load) and reports the ratio of the median walls. ``--big-gb N`` adds a run on
a generated N GB FASTA database (random sequences plus the family), ours then jackhmmer;
``--big-repeats N`` alternates N pairs there (the first of ours hashes the database, the
later ones reuse its remembered checksum).

    .venv/bin/python benchmarks/family_search.py --threads 2 [--repeats 3] [--big-gb 5]
    .venv/bin/python benchmarks/family_search.py --family PTEN --threads 2

Writes ``benchmarks/out/family_search.json`` (and the work files under
``benchmarks/out/family_search/``); with ``--family PTEN``,
``benchmarks/out/family_search_PTEN.json`` and ``benchmarks/out/family_search_PTEN/``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "protein"
OUT = REPO / "benchmarks" / "out"
HMMS = ("Thioesterase.hmm", "PF02826.hmm", "KR.hmm", "LuxC.hmm")
BACKGROUND = "ACDEFGHIKLMNPQRSTVWY"
# the searched family: its EVE alignment (focus first) and the bits per residue it was
# built at (EVE's name: b0.1, b1.0), the default of --bits
FAMILIES = {
    "P53": {"alignment": "P53_HUMAN_b0.1.a2m", "bits": 0.1},
    "PTEN": {"alignment": "PTEN_HUMAN_b1.0.a2m", "bits": 1.0},
}


def read_a2m(path: Path) -> list[tuple[str, str]]:
    """``(id without range, unaligned upper-case sequence)``; repeated ids numbered."""
    from Bio import SeqIO

    out, seen = [], {}
    for record in SeqIO.parse(path, "fasta"):
        name, seq = record.id, str(record.seq)
        base = name.split("/")[0]
        seen[base] = seen.get(base, 0) + 1
        base = base if seen[base] == 1 else f"{base}_{seen[base]}"
        out.append((base, "".join(c for c in seq if c.isalpha()).upper()))
    return out


def emitted_decoys(n_per_hmm: int, seed: int = 1) -> list[tuple[str, str]]:
    import pyhmmer

    folder = Path(pyhmmer.__file__).parent / "tests" / "data" / "hmms" / "txt"
    rng = pyhmmer.easel.Randomness(seed)  # nonzero: Easel seeds 0 from the clock
    out = []
    for name in HMMS:
        with pyhmmer.plan7.HMMFile(folder / name) as handle:
            hmm = handle.read()
        for i in range(n_per_hmm):
            seq = hmm.emit_sequence(rng).textize().sequence
            out.append((f"decoy_{Path(name).stem}_{i}", seq))
    return out


def build_database(path: Path, n_emitted: int, n_shuffled: int, family: str = "P53") -> dict:
    (other,) = set(FAMILIES) - {family}
    alignment = DATA / FAMILIES[family]["alignment"]
    members = read_a2m(alignment)
    others = [
        (f"{other}_{name}", seq) for name, seq in read_a2m(DATA / FAMILIES[other]["alignment"])
    ]
    rng = np.random.default_rng(0)
    shuffled = [
        (f"shuffled_{family}_{i}", "".join(rng.permutation(list(members[i % len(members)][1]))))
        for i in range(n_shuffled)
    ]
    decoys = others + emitted_decoys(n_emitted) + shuffled
    with open(path, "w") as handle:
        for name, seq in members + decoys:
            handle.write(f">{name}\n{seq}\n")
    with open(alignment) as handle:  # the focus header, range included: P53_HUMAN/1-393
        header = handle.readline()[1:].split()[0]
    focus = path.parent / f"{header.split('/')[0]}.fasta"
    focus.write_text(f">{header}\n{members[0][1]}\n")
    return {
        "focus": focus,
        "focus_id": header,
        "focus_length": len(members[0][1]),
        "family": {name for name, _ in members},
        "decoys": {name for name, _ in decoys},
        "n_p53": len(members if family == "P53" else others),
        "n_pten": len(members if family == "PTEN" else others),
        "n_emitted": len(decoys) - len(others) - len(shuffled),
        "n_shuffled": len(shuffled),
    }


def append_random(path: Path, target_bytes: int, seed: int = 2) -> int:
    """Append random protein sequences (lengths 50-800) until the file has target bytes."""
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(BACKGROUND.encode(), dtype=np.uint8)
    n = 0
    with open(path, "ab") as handle:
        while path.stat().st_size < target_bytes:
            lengths = rng.integers(50, 800, 20_000)
            residues = letters[rng.integers(0, 20, int(lengths.sum()))]
            chunks, start = [], 0
            for length in lengths:
                chunks.append(b">rnd%d\n" % n + residues[start : start + length].tobytes() + b"\n")
                start += length
                n += 1
            handle.write(b"".join(chunks))
            handle.flush()
    return n


def child_run(command: list[str]) -> dict:
    """Run a command; wall seconds and peak RSS (MB) of the child."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    stdout, stderr = process.stdout.read(), process.stderr.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{command[:3]} failed ({code}): {stderr[-2000:]}")
    return {
        "wall_seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stdout": stdout,
    }


def run_vae(focus: Path, database: Path, out: Path, args, iterations: int) -> dict:
    code = (
        "import json, sys; from vae.data._search import search_family;"
        "from vae.data._search_a2m import read_focus, write_a2m;"
        f"r = search_family(read_focus({str(focus)!r}), {str(database)!r},"
        f" iterations={iterations}, bitscore_per_residue={args.bits}, threads={args.threads},"
        f" block_size={args.block_size}); write_a2m(r.rows, {str(out)!r});"
        "print(json.dumps(r.record))"
    )
    result = child_run([sys.executable, "-c", code])
    record = json.loads(result.pop("stdout"))
    ids = [line[1:].strip().rsplit("/", 1)[0] for line in out.read_text().splitlines()[2::2]]
    return result | {"ids": ids, "record": record}


def run_jackhmmer(
    focus: Path, database: Path, out: Path, args, iterations: int, data: dict
) -> dict:
    bits = f"{args.bits * data['focus_length']:.2f}"
    command = ["jackhmmer", "-N", str(iterations), "--cpu", str(args.threads), "-o", "/dev/null"]
    command += ["-T", bits, "--domT", bits, "--incT", bits, "--incdomT", bits]
    command += ["--noali", "-A", str(out), str(focus), str(database)]
    result = child_run(command)
    result.pop("stdout")
    return result | {"ids": jackhmmer_ids(out, data["focus_id"]), "hmmer": hmmer_version()}


def jackhmmer_ids(stockholm: Path, focus_id: str) -> list[str]:
    """Hit ids of a jackhmmer ``-A`` alignment (the ``0001|`` prefix of clashing names gone)."""
    lines = stockholm.read_text().splitlines()
    names = [line.split()[1] for line in lines if line.startswith("#=GS ")]
    names = [re.sub(r"^\d+\|", "", name) for name in names]
    return [name.rsplit("/", 1)[0] for name in names if not name.startswith(focus_id)]


def hmmer_version() -> str:
    version = subprocess.run(["jackhmmer", "-h"], capture_output=True, text=True).stdout
    return version.splitlines()[1].strip("# ").strip()


def score(ids: list[str], data: dict) -> dict:
    found = set(ids)
    family, decoys = data["family"], data["decoys"]
    return {
        "n_rows": len(ids),
        "n_unique_ids": len(found),
        "recall": round(len(found & family) / len(family), 4),
        "n_family_found": len(found & family),
        "n_family": len(family),
        "decoys_admitted": len(found & decoys),
        "decoy_rate": round(len(found & decoys) / len(decoys), 5),
        "n_decoys": len(decoys),
    }


def big_database_runs(data: dict, database: Path, work: Path, args) -> dict:
    """Ours and jackhmmer alternated on a generated ``--big-gb`` database; the file is deleted.

    Ours runs with a checksum cache of its own, emptied first: the first run hashes the
    database (as the first search of a new database does), later runs reuse the digest.
    """
    big = work / "big.fasta"
    shutil.copy(database, big)
    n_random = append_random(big, int(args.big_gb * 1e9))
    cache = work / "checksum-cache"
    shutil.rmtree(cache, ignore_errors=True)
    os.environ["VAE_CACHE_DIR"] = str(cache)
    report = {"big": {"bytes": big.stat().st_size, "n_random": n_random, "runs": []}}
    peer = shutil.which("jackhmmer") and not args.no_jackhmmer
    pairs = []
    try:
        for _ in range(max(1, args.big_repeats)):
            run = run_vae(data["focus"], big, work / "big.a2m", args, args.big_iterations)
            run |= score(run.pop("ids"), data)
            run["sha256_remembered"] = run["record"]["database"].get("sha256_remembered")
            report["big"]["runs"].append(run)
            print("big", json.dumps({k: v for k, v in run.items() if k != "record"}), flush=True)
            if peer:
                jack = run_jackhmmer(
                    data["focus"], big, work / "big.sto", args, args.big_iterations, data
                )
                jack |= score(jack.pop("ids"), data)
                report.setdefault("big_jackhmmer", {"runs": []})["runs"].append(jack)
                print("big jackhmmer", json.dumps(jack), flush=True)
                pairs.append((run["wall_seconds"], jack["wall_seconds"], run["sha256_remembered"]))
    finally:
        big.unlink()
    if pairs:
        report["big_time_ratios_per_pair"] = [
            {"ratio": round(ours / peer_wall, 3), "sha256_remembered": remembered}
            for ours, peer_wall, remembered in pairs
        ]
        report["big_time_ratio_vae_over_jackhmmer"] = report["big_time_ratios_per_pair"][0][
            "ratio"
        ]
        warm = [ours / peer_wall for ours, peer_wall, remembered in pairs if remembered]
        if warm:
            report["big_time_ratio_remembered_checksum_median"] = round(float(np.median(warm)), 3)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--family",
        choices=sorted(FAMILIES),
        default="P53",
        help="the focus: first record of its EVE alignment; the other family are decoys",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument(
        "--bits",
        type=float,
        default=None,
        help="bits per residue (default: the family's EVE alignment's, P53 0.1, PTEN 1.0)",
    )
    parser.add_argument("--block-size", type=int, default=100_000)
    parser.add_argument("--emitted", type=int, default=500, help="decoys per Pfam HMM")
    parser.add_argument("--shuffled", type=int, default=1000)
    parser.add_argument("--big-gb", type=float, default=0.0, help="memory run database size")
    parser.add_argument("--big-iterations", type=int, default=1)
    parser.add_argument(
        "--big-repeats",
        type=int,
        default=1,
        help="alternated pairs on the big database; the first of ours hashes the file, the "
        "later ones reuse the remembered checksum (a fresh cache folder per benchmark)",
    )
    parser.add_argument("--no-jackhmmer", action="store_true")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="runs of ours and jackhmmer, alternated, on the small database (shared machine)",
    )
    args = parser.parse_args()
    if args.bits is None:
        args.bits = FAMILIES[args.family]["bits"]
    name = "family_search" if args.family == "P53" else f"family_search_{args.family}"
    work = OUT / name  # P53 keeps the names of the first runs (BENCHMARKS.md)
    work.mkdir(parents=True, exist_ok=True)
    database = work / "db.fasta"
    data = build_database(database, args.emitted, args.shuffled, args.family)
    report = {
        "settings": vars(args),
        "focus": {"id": data["focus_id"], "length": data["focus_length"]},
        "database": {
            "bytes": database.stat().st_size,
            "n_p53": data["n_p53"],
            "n_pten": data["n_pten"],
            "n_emitted": data["n_emitted"],
            "n_shuffled": data["n_shuffled"],
        },
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            None,
        ),
    }
    peer = shutil.which("jackhmmer") and not args.no_jackhmmer
    walls: dict[str, list[float]] = {"vae": [], "jackhmmer": []}
    for _ in range(max(1, args.repeats)):  # alternated: both see the same load
        vae = run_vae(data["focus"], database, work / "vae.a2m", args, args.iterations)
        report["vae"] = score(vae.pop("ids"), data) | vae
        walls["vae"].append(vae["wall_seconds"])
        print("vae", json.dumps({k: v for k, v in report["vae"].items() if k != "record"}))
        if peer:
            jack = run_jackhmmer(
                data["focus"], database, work / "jackhmmer.sto", args, args.iterations, data
            )
            report["jackhmmer"] = score(jack.pop("ids"), data) | jack
            walls["jackhmmer"].append(jack["wall_seconds"])
            print("jackhmmer", json.dumps(report["jackhmmer"]))
    if peer:
        report["walls"] = walls
        report["time_ratio_vae_over_jackhmmer"] = round(
            float(np.median(walls["vae"]) / np.median(walls["jackhmmer"])), 3
        )
        report["time_ratios_per_pair"] = [
            round(a / b, 3) for a, b in zip(walls["vae"], walls["jackhmmer"], strict=True)
        ]
        print("ratio (medians)", report["time_ratio_vae_over_jackhmmer"], walls)
    if args.big_gb:
        report |= big_database_runs(data, database, work, args)
    (OUT / f"{name}.json").write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
