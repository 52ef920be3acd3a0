"""Iterative profile-HMM search of a focus sequence against a sequence database (pyhmmer).

The search follows HMMER's ``jackhmmer`` as pyhmmer implements it
(:class:`pyhmmer.plan7.IterativeSearch`): a profile HMM is built from the focus sequence
alone, the database is searched, the included hits (with the focus) are aligned to the
model and a new HMM is built from that alignment, for up to ``iterations`` rounds or
until no new sequence is included. Unlike ``pyhmmer.hmmer.jackhmmer``, the database is
never loaded whole: each round reads it from disk once and cuts it into units of whole
records (:mod:`vae.data._seqdb`; at most ``block_size`` sequences and a few MB each),
which ``threads`` worker threads hand to HMMER to parse and search in C, with the GIL
released, while the main thread reads ahead. Memory is bounded by the units in flight and
the hits. Several inclusion thresholds can be searched in lockstep, one pass over the
database per round for all.

Inclusion follows EVcouplings (``use_bitscores``): a sequence and a domain are reported
and included when their bit score reaches ``bitscore_per_residue`` times the length of the
focus sequence. EVE's alignment names carry the same number: ``P53_HUMAN_b0.1`` was
built at 0.1 bits per residue, ``PTEN_HUMAN_b1.0`` at 1.0.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vae._checksums import remember_sha256, remembered_sha256
from vae.data._denormals import denormals_flushed, flush_denormals
from vae.data._search_a2m import focus_mode_rows
from vae.data._seqdb import SequenceDatabase, Unit, UnitFiles, check_database, unit_problem
from vae.errors import VAEInputError

logger = logging.getLogger(__name__)

#: Defaults: EVcouplings' jackhmmer protocol (5 iterations, 0.5 bits per residue).
DEFAULT_ITERATIONS = 5
DEFAULT_BITSCORE_PER_RESIDUE = 0.5
#: Most database sequences per search unit (units are also at most MAX_UNIT_BYTES).
DEFAULT_BLOCK_SIZE = 100_000


@dataclass
class SearchResult:
    """A family alignment found by :func:`search_family`.

    Attributes
    ----------
    rows
        ``(name, a2m row)`` pairs, the focus first (``id/start-end`` in its own numbering),
        then every included domain as ``name/start-end`` of the database sequence.
        Upper case and ``-``: the focus sequence's match columns; lower case and ``.``:
        insertions.
    record
        Provenance: settings, database checksum and size, hits per iteration.
    """

    rows: list[tuple[str, str]]
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    """One threshold's iterative search between database passes."""

    bitscore_per_residue: float
    threshold: float
    builder: Any
    hmm: Any = None
    msa: Any = None
    hits: Any = None
    ranking: Any = None
    n_previous: int = 1
    converged: bool = False
    iterations: list[dict[str, Any]] = field(default_factory=list)


#: Bounds of a search unit's size in bytes: a pass is cut into about ``UNITS_PER_THREAD``
#: units per thread, so that threads take units as they free up (a stretch of true hits,
#: slow to align, does not hold up a pass), and units stay small in memory.
MIN_UNIT_BYTES, MAX_UNIT_BYTES, UNITS_PER_THREAD = 32 << 10, 8 << 20, 32
_local = threading.local()


def unit_bytes(path: Path, threads: int) -> int:
    """Bytes per search unit for a database file searched with ``threads`` threads."""
    target = path.stat().st_size // (max(1, threads) * UNITS_PER_THREAD)
    return min(MAX_UNIT_BYTES, max(MIN_UNIT_BYTES, target))


def _pipeline(threshold: float, alphabet):
    """Return this thread's pipeline for ``threshold``, made once and reused."""
    from pyhmmer import plan7

    pipelines = _local.__dict__.setdefault("pipelines", {})
    pipeline = pipelines.get((threshold, alphabet.type))
    if pipeline is None:
        pipeline = pipelines[threshold, alphabet.type] = plan7.Pipeline(
            alphabet, T=threshold, domT=threshold, incT=threshold, incdomT=threshold
        )
    return pipeline


def _search_unit(path: Path, states: list[_State], files: UnitFiles, unit: Unit) -> list:
    """Search one unit of records with every state's HMM: HMMER reads and searches it in C."""
    from pyhmmer import easel

    alphabet = states[0].hmm.alphabet
    found = []
    with files.open(unit) as unit_path:
        for state in states:
            pipeline = _pipeline(state.threshold, alphabet)
            try:
                with easel.SequenceFile(
                    unit_path, format="fasta", digital=True, alphabet=alphabet
                ) as sequences:
                    found.append(pipeline.search_hmm(state.hmm, sequences))
            except ValueError as err:  # easel could not parse the unit, or too long a sequence
                raise VAEInputError(path, unit_problem(path, unit, alphabet)) from err
            finally:
                pipeline.clear()
    return found


def _search_pass(
    database: SequenceDatabase, states: list[_State], *, block_size: int, threads: int
) -> dict[str, int]:
    """Search every state's HMM against the whole database in one streamed pass.

    The main thread reads the database and cuts it into units while ``threads`` workers
    search the units already read, so reading overlaps searching. At most ``2 * threads``
    units wait or run at a time; a slow unit (true hits take long to align) holds up no
    worker, since a new unit is read as soon as any one is done. Hits are merged in file
    order, so the result does not depend on which thread searched what.
    """
    threads = max(1, threads)
    parts: list[list] = [[] for _ in states]
    ordered: deque = deque()  # futures in file order; done ones wait to be merged in order

    def collect(block: bool) -> None:
        while ordered and (block or ordered[0].done()):
            for index, hits in enumerate(ordered.popleft().result()):
                parts[index].append(hits)
                if len(parts[index]) >= 256:  # bound the number of small TopHits kept
                    parts[index] = [parts[index][0].merge(*parts[index][1:])]

    # each worker flushes denormals to zero, as HMMER's own worker threads do (_denormals)
    pool = ThreadPoolExecutor(max_workers=threads, initializer=flush_denormals)
    files = UnitFiles(threads)
    try:
        size = unit_bytes(database.path, threads)
        for unit in database.units(size, block_size):
            running = [future for future in ordered if not future.done()]
            if len(running) >= 2 * threads:
                wait(running, return_when=FIRST_COMPLETED)
            ordered.append(pool.submit(_search_unit, database.path, states, files, unit))
            collect(block=False)
        collect(block=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        files.close()
    for state, found in zip(states, parts, strict=True):
        hits = found[0].merge(*found[1:]) if found else None
        if hits is not None:
            hits.sort(by="key")
        state.hits = hits
    first = states[0].hits
    if first is None or first.searched_sequences == 0:
        raise VAEInputError(database.path, "sequence database holds no sequences")
    return {"n_sequences": first.searched_sequences, "n_residues": first.searched_residues}


def _advance(state: _State, focus, iteration: int, seconds: float) -> None:
    """Count a round's hits and build the next round's alignment (as pyhmmer's jackhmmer)."""
    hits = state.hits
    n_new = hits.compare_ranking(state.ranking)
    state.msa = hits.to_msa(
        focus.alphabet,
        sequences=[focus],
        traces=[_focus_trace(state.hmm, focus, first=iteration == 1)],
        all_consensus_cols=True,
        digitize=True,
    )
    state.msa.name = focus.name
    n_rows = len(state.msa.sequences)
    state.converged = n_new == 0 and n_rows <= state.n_previous
    state.n_previous = n_rows
    included = list(hits.included)
    state.iterations.append(
        {
            "iteration": iteration,
            "hmm_length": int(state.hmm.M),
            "n_sequences_included": len(included),
            "n_domains_included": sum(len(list(hit.domains.included)) for hit in included),
            "n_new": int(n_new),
            "converged": state.converged,
            "seconds": round(seconds, 3),
        }
    )
    logger.info("search %.2f bits/residue: %s", state.bitscore_per_residue, state.iterations[-1])


def _focus_trace(hmm, focus, *, first: bool = False):
    """Return the focus's path through ``hmm`` for the round's alignment.

    All match states for the single-sequence model of round one (as pyhmmer's jackhmmer);
    for models built later, whose length differs from the focus's, its ``hmmalign`` path.
    """
    from pyhmmer import easel, plan7

    if first and hmm.M == len(focus):
        return plan7.Trace.from_sequence(focus)
    block = easel.DigitalSequenceBlock(focus.alphabet, [focus])
    return plan7.TraceAligner().compute_traces(hmm, block)[0]


def _digitize_focus(focus: tuple[str, str]):
    from pyhmmer import easel

    name, sequence = focus
    alphabet = easel.Alphabet.amino()
    try:
        text = easel.TextSequence(name=name, sequence=sequence.upper())
        return text.digitize(alphabet)
    except ValueError as err:
        raise VAEInputError(name, f"focus sequence is not a protein sequence ({err})") from err


def search_family_thresholds(
    focus: tuple[str, str],
    database: str | Path,
    thresholds: list[float],
    *,
    iterations: int = DEFAULT_ITERATIONS,
    block_size: int = DEFAULT_BLOCK_SIZE,
    threads: int = 1,
) -> list[SearchResult]:
    """Search several inclusion thresholds in lockstep: one database pass per round for all.

    Parameters
    ----------
    focus
        ``(id, sequence)`` of the focus protein; an ``id/start-end`` range gives the
        numbering of its first residue (1 without one).
    database
        Protein FASTA file, plain or gzip-compressed.
    thresholds
        Inclusion thresholds in bits per residue of the focus length.
    iterations
        Largest number of search rounds (``jackhmmer -N``); a search stops earlier when a
        round includes no new sequence.
    block_size
        Most database sequences per search unit (a unit is also a few MB at most).
    threads
        Worker threads searching the units of the database.

    Returns
    -------
    list of SearchResult
        One per threshold, in the order given; see :func:`search_family`.
    """
    if iterations < 1 or block_size < 1 or threads < 1 or not thresholds:
        raise ValueError("iterations, block_size, threads and thresholds must be positive")
    database = check_database(database)
    with denormals_flushed() as flushed:  # model building and alignment run in this thread
        results = _search_thresholds(focus, database, thresholds, iterations, block_size, threads)
    for result in results:
        result.record["settings"]["flush_denormals"] = flushed
    return results


def _search_thresholds(focus, database, thresholds, iterations, block_size, threads):
    """Run the rounds of :func:`search_family_thresholds` on a checked database."""
    from pyhmmer import easel, plan7

    digital = _digitize_focus(focus)
    background = plan7.Background(digital.alphabet)
    length = len(digital)
    states = []
    for bits in thresholds:
        builder = plan7.Builder(digital.alphabet)
        hmm, _, _ = builder.build(digital, background)
        states.append(_State(bits, bits * length, builder, hmm=hmm, ranking=easel.KeyHash()))
    started, counts, passes = time.perf_counter(), {}, 0
    # a database searched before (another focus, another threshold) is not hashed again
    sha256 = remembered_sha256(database)
    from_cache = sha256 is not None
    for iteration in range(1, iterations + 1):
        active = [state for state in states if not state.converged]
        if not active:
            break
        for state in active:
            if state.msa is not None:
                state.hmm, _, _ = state.builder.build_msa(state.msa, background)
        tick = time.perf_counter()
        with SequenceDatabase(database, hash_it=sha256 is None) as handle:
            counts = _search_pass(handle, active, block_size=block_size, threads=threads)
            if handle.hasher is not None:
                sha256 = handle.hasher.digest.hexdigest()
                remember_sha256(database, sha256)
        passes += 1
        for state in active:
            _advance(state, digital, iteration, time.perf_counter() - tick)
    database_record = {"path": str(database), "bytes": os.stat(database).st_size}
    database_record |= {"sha256": sha256, "sha256_remembered": from_cache, "passes": passes}
    database_record |= counts
    wall = time.perf_counter() - started
    return [
        _finish(state, focus, digital, database_record, iterations, block_size, threads, wall)
        for state in states
    ]


def _finish(state, focus, digital, database, iterations, block_size, threads, wall):
    """Align the final round's hits and the focus to the final HMM; the provenance record."""
    import pyhmmer

    n_included = len(list(state.hits.included))
    record = {
        "method": "iterative profile-HMM search (jackhmmer-style, pyhmmer)",
        "focus": {"id": focus[0], "length": len(digital)},
        "database": database,
        "settings": {
            "iterations": iterations,
            "bitscore_per_residue": state.bitscore_per_residue,
            "threshold_bits": round(state.threshold, 3),
            "block_size": block_size,
            "unit_bytes": unit_bytes(Path(database["path"]), threads),
            "threads": threads,
            "pyhmmer": pyhmmer.__version__,
        },
        "iterations": state.iterations,
        "converged": state.converged,
        "n_sequences_included": n_included,
    }
    if n_included == 0:
        return SearchResult(rows=[], record=record)
    msa = state.hits.to_msa(
        digital.alphabet,
        sequences=[digital],
        traces=[_focus_trace(state.hmm, digital)],
        trim=True,
        all_consensus_cols=True,
    )
    rows = focus_mode_rows(focus, list(msa.names), list(msa.alignment))
    record["n_rows"] = len(rows)
    record["n_match_columns"] = sum(c.isupper() or c == "-" for c in rows[0][1])
    record["wall_seconds"] = round(wall, 3)
    return SearchResult(rows=rows, record=record)


def search_family(
    focus: tuple[str, str],
    database: str | Path,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    bitscore_per_residue: float = DEFAULT_BITSCORE_PER_RESIDUE,
    block_size: int = DEFAULT_BLOCK_SIZE,
    threads: int = 1,
) -> SearchResult:
    """Find a focus protein's family in a sequence database and align it (A2M).

    Parameters
    ----------
    focus
        ``(id, sequence)``; an ``id/start-end`` range gives the numbering.
    database
        Protein FASTA file, plain or gzip-compressed, read in units (never whole).
    iterations
        Largest number of search rounds (EVcouplings: 5).
    bitscore_per_residue
        Inclusion threshold in bits per focus residue (EVcouplings' default 0.5; EVE's
        ``b0.1`` alignments used 0.1).
    block_size
        Most database sequences per search unit (a unit is also a few MB at most).
    threads
        Worker threads.

    Returns
    -------
    SearchResult
        The A2M rows (focus first) and the provenance record. Raises
        :class:`~vae.errors.VAEInputError` when no sequence reaches the threshold.
    """
    (result,) = search_family_thresholds(
        focus,
        database,
        [bitscore_per_residue],
        iterations=iterations,
        block_size=block_size,
        threads=threads,
    )
    if not result.rows:
        settings = result.record["settings"]
        raise VAEInputError(
            database,
            f"no sequence scores {settings['threshold_bits']:g} bits or more against the "
            f"focus ({bitscore_per_residue:g} bits per residue x {len(focus[1])} residues)",
        )
    return result
