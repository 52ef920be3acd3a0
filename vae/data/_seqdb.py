"""A protein FASTA database (plain or gzip) read from disk in blocks, hashed on the way."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

from vae.errors import VAEInputError


class _HashingReader(io.RawIOBase):
    """A binary reader that feeds every byte it hands out to SHA-256."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.n_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._raw.readinto(buffer)
        if n:
            self.digest.update(memoryview(buffer)[:n])
            self.n_bytes += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class SequenceDatabase:
    """Open the database for one pass: FASTA, plain or gzip; the first pass hashes it."""

    def __init__(self, path: Path, alphabet, *, hash_it: bool) -> None:
        self.path, self.alphabet, self.hasher = path, alphabet, None
        raw = open(path, "rb")  # noqa: SIM115 (closed in __exit__)
        if hash_it:
            self.hasher = raw = _HashingReader(raw)
        self._raw = raw
        self._text = gzip.GzipFile(fileobj=raw) if _is_gzip(path) else raw

    def __enter__(self):
        from pyhmmer import easel

        self._file = easel.SequenceFile(
            self._text, format="fasta", digital=True, alphabet=self.alphabet
        )
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()
        self._text.close()
        self._raw.close()

    def blocks(self, size: int):
        """Yield digital sequence blocks of up to ``size`` sequences until the end."""
        while True:
            try:
                block = self._file.read_block(sequences=size)
            except (ValueError, EOFError, OSError, gzip.BadGzipFile) as err:
                problem = " ".join(str(err).split()) or type(err).__name__
                raise VAEInputError(self.path, f"not a protein FASTA database: {problem}") from err
            if not len(block):
                return
            yield block


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
