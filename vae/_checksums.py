"""SHA-256 of input files, remembered per file version so a large input is hashed once.

A sequence database (UniRef100 is about 90 GB) or an atlas of counts is an input to many
jobs: the searches of 100 proteins, or every step after preprocessing. Each job's
provenance names the file's SHA-256. The digest of a file is remembered under a key made
of its real path, device, inode, size, modification and change times (nanoseconds), so
any write to the file, a replacement, or a copy elsewhere is a new key and is hashed
again; ``ctime`` cannot be set back by users, unlike ``mtime``.

The cache is a folder of one small file per key: ``$VAE_CACHE_DIR``, else
``$XDG_CACHE_HOME/vae/sha256``, else ``~/.cache/vae/sha256``. Entries are written
atomically, so concurrent jobs on a shared file system may race only to write the same
digest. A cache that cannot be written costs only the re-hash next time (logged once).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

from vae._io import sha256_file

logger = logging.getLogger(__name__)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_warned = False


def cache_dir() -> Path:
    """Return the folder of the remembered digests (see the module docstring)."""
    explicit = os.environ.get("VAE_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vae" / "sha256"


def _entry(path: str | Path) -> Path:
    real = os.path.realpath(path)
    info = os.stat(real)
    key = "\0".join(
        str(v)
        for v in (real, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
    )
    return cache_dir() / hashlib.sha256(key.encode()).hexdigest()


def remembered_sha256(path: str | Path) -> str | None:
    """Return the remembered SHA-256 of this version of ``path``, or ``None``."""
    try:
        text = _entry(path).read_text().strip()
    except OSError:
        return None
    return text if _DIGEST.fullmatch(text) else None


def remember_sha256(path: str | Path, digest: str) -> None:
    """Remember ``digest`` as the SHA-256 of the current version of ``path``."""
    global _warned
    tmp = None
    try:
        entry = _entry(path)
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            handle.write(digest + "\n")
        os.replace(tmp, entry)
        tmp = None
    except OSError as err:
        if not _warned:
            logger.warning(
                "checksum cache %s not written (%s): inputs will be re-hashed", cache_dir(), err
            )
            _warned = True
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def file_sha256(path: str | Path) -> str:
    """Return the SHA-256 of a file, remembered when this version of it was hashed before."""
    digest = remembered_sha256(path)
    if digest is None:
        digest = sha256_file(path)
        remember_sha256(path, digest)
    return digest
