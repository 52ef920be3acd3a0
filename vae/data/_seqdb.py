"""A protein FASTA database (plain or gzip) read in units of whole records, hashed on the way.

A pass over the database reads its bytes once, cuts them into *units* (runs of whole
FASTA records, at most ``max_bytes`` bytes and ``max_sequences`` records) and hands each
unit to HMMER as a file of its own (:class:`UnitFiles`: anonymous in-memory files). HMMER
then parses and searches a unit in C with Python's GIL released, so no Python object is
made per database sequence and the worker threads run side by side.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import queue
import re
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vae.errors import VAEInputError

#: Bytes read from the (decompressed) database at a time, at least.
_READ_BYTES = 1 << 20
#: A record longer than this is not a protein (HMMER searches at most 100,000 residues).
_MAX_RECORD_BYTES = 64 << 20
#: HMMER's longest target sequence (``HMMER_TARGET_LIMIT``).
MAX_RESIDUES = 100_000
_GZIP_ERRORS = (EOFError, OSError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class Unit:
    """A run of whole FASTA records: ``data`` starts at ``offset`` of the decompressed file.

    ``data`` is a view into the buffer the records were read into (no copy per unit).
    """

    offset: int
    data: memoryview


class _HashingReader(io.RawIOBase):
    """A binary reader that feeds every byte it hands out to SHA-256."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class SequenceDatabase:
    """Open the database for one pass: FASTA, plain or gzip; the first pass hashes it.

    Parameters
    ----------
    path
        The database file.
    hash_it
        Compute the SHA-256 of the file's bytes (``hasher.digest``) while reading.
    """

    def __init__(self, path: Path, *, hash_it: bool) -> None:
        self.path, self.hasher = path, None
        raw = open(path, "rb")  # noqa: SIM115 (closed in __exit__)
        if hash_it:
            self.hasher = raw = _HashingReader(raw)
        self._raw = raw
        self._text = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw

    def __enter__(self) -> SequenceDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self._text.close()
        self._raw.close()

    def _read_after(self, pending: bytes, size: int) -> bytearray:
        """Return ``pending`` followed by up to ``size`` bytes read (no more at the end)."""
        buffer = bytearray(len(pending) + size)
        buffer[: len(pending)] = pending
        try:
            with memoryview(buffer) as view, view[len(pending) :] as free:
                n = self._text.readinto(free) or 0
        except _GZIP_ERRORS as err:
            problem = " ".join(str(err).split()) or type(err).__name__
            raise VAEInputError(self.path, f"not a protein FASTA database: {problem}") from err
        del buffer[len(pending) + n :]
        return buffer

    def units(self, max_bytes: int, max_sequences: int) -> Iterator[Unit]:
        """Yield the database as units of whole records, in file order, until the end.

        A unit holds at most ``max_sequences`` records and ``max_bytes`` bytes (or one
        record, when a record alone is longer). Every unit but the first starts with
        ``>``, so HMMER parses each unit as it would parse that stretch of the file.
        """
        pending, offset, first = b"", 0, True
        while True:
            # a fresh buffer per read: the units handed out are views into it
            data = self._read_after(pending, max(max_bytes, _READ_BYTES))
            at_end = len(data) == len(pending)
            if first and data:
                _check_start(self.path, data)
                first = False
            start = 0
            while (cut := _cut(data, start, max_bytes, max_sequences, final=at_end)) is not None:
                yield Unit(offset + start, memoryview(data)[start:cut])
                start = cut
            offset, pending = offset + start, bytes(data[start:])
            if len(pending) > _MAX_RECORD_BYTES:
                raise VAEInputError(
                    self.path,
                    f"not a protein FASTA database: a record at byte {offset:,} is longer "
                    f"than {_MAX_RECORD_BYTES >> 20} MiB",
                )
            if at_end:
                return


def _check_start(path: Path, data: bytes) -> None:
    """Refuse a file whose first non-blank character is not a FASTA header's ``>``."""
    head = data.lstrip()[:1]
    if head and head != b">":
        raise VAEInputError(
            path, "not a protein FASTA database: it does not start with a '>' header line"
        )


def _cut(data: bytes, start: int, max_bytes: int, max_sequences: int, *, final: bool):
    """End of the unit that starts at ``data[start]``, or ``None`` to read more first."""
    end = len(data)
    if start >= end:
        return None
    limit = start + max_bytes
    if _holds_starts(data, start, min(limit, end), max_sequences):
        pos = start
        for _ in range(max_sequences):
            pos = data.index(b"\n>", pos) + 1
        return pos
    if end <= limit:
        return end if final else None
    pos = data.rfind(b"\n>", start, limit + 1)
    if pos >= start:
        return pos + 1
    pos = data.find(b"\n>", limit)  # a record longer than max_bytes: the unit is that record
    if pos >= 0:
        return pos + 1
    return end if final else None


def _holds_starts(data: bytes, start: int, stop: int, n: int) -> bool:
    r"""Whether ``data[start:stop]`` holds ``n`` record starts (``\n>``) or more.

    Cheap bounds first: a record takes two bytes or more, and every record start holds a
    ``>`` (counted by numpy, a few times faster than counting ``\n>``).
    """
    if (stop - start) // 2 < n:
        return False
    window = np.frombuffer(data, dtype=np.uint8, count=stop - start, offset=start)
    if int(np.count_nonzero(window == ord(">"))) < n:
        return False
    return data.count(b"\n>", start, stop) >= n


class UnitFiles:
    """Anonymous in-memory files that HMMER opens by path, one per worker, reused.

    A worker writes a unit into a free file (:meth:`open`) and HMMER reads it from
    ``/proc/self/fd/N``; rewriting a file in place spares the kernel allocating and
    freeing its pages for every unit. Closing the set frees the memory.

    Parameters
    ----------
    n
        Number of files: the number of units searched at once.
    """

    def __init__(self, n: int) -> None:
        self._files, self._free = [], queue.SimpleQueue()
        for _ in range(max(1, n)):
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create("vae-search-unit", os.MFD_CLOEXEC)
                self._files.append(fd)
                self._free.put((fd, f"/proc/self/fd/{fd}"))
            else:  # pragma: no cover - platforms without memfd (macOS)
                handle = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
                self._files.append(handle)
                self._free.put((handle.fileno(), f"/dev/fd/{handle.fileno()}"))

    def __enter__(self) -> UnitFiles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every file."""
        for file in self._files:
            if isinstance(file, int):
                os.close(file)
            else:  # pragma: no cover - a temporary file (no memfd)
                file.close()
        self._files = []

    @contextlib.contextmanager
    def open(self, unit: Unit) -> Iterator[str]:
        """Write ``unit`` into a free file; yield the path that HMMER opens."""
        fd, path = self._free.get()
        try:
            view, at = memoryview(unit.data), 0
            while at < len(view):
                at += os.pwrite(fd, view[at:], at)
            os.ftruncate(fd, len(view))
            yield path
        finally:
            self._free.put((fd, path))


def unit_problem(path: Path, unit: Unit, alphabet) -> str:
    """Say why HMMER could not read a unit: easel's message, its line numbered in the file."""
    from pyhmmer import easel

    message = "could not parse the file"
    try:
        with (
            UnitFiles(1) as files,
            files.open(unit) as unit_path,
            easel.SequenceFile(unit_path, format="fasta", digital=True, alphabet=alphabet) as seqs,
        ):
            for sequence in iter(seqs.read, None):
                if len(sequence) > MAX_RESIDUES:
                    name = sequence.name
                    if isinstance(name, bytes):  # pyhmmer < 0.11
                        name = name.decode(errors="replace")
                    return f"sequence {name!r} is longer than HMMER's {MAX_RESIDUES:,} residues"
    except ValueError as err:
        message = " ".join(str(err).split())
    lines_before = _lines_before(path, unit.offset)
    message = re.sub(r"Line (\d+)", lambda m: f"line {int(m[1]) + lines_before}", message)
    return f"not a protein FASTA database: {message}"


def _lines_before(path: Path, offset: int) -> int:
    """Newlines in the first ``offset`` bytes of the (decompressed) database."""
    count = 0
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rb") as handle:
        while offset > 0:
            chunk = handle.read(min(offset, _READ_BYTES))
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset -= len(chunk)
    return count


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def check_database(path: str | Path) -> Path:
    """Return the database path, or raise :class:`VAEInputError` when it cannot be searched."""
    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "sequence database does not exist")
    if path.stat().st_size == 0:
        raise VAEInputError(path, "sequence database is empty")
    return path
