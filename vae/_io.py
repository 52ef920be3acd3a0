"""Atomic file writing and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vae._constants import KEYS
from vae.errors import VAEInputError, unreadable


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it on success.

    A killed or failing writer never leaves a file at ``path`` that looks complete.

    Parameters
    ----------
    path
        Final destination.

    Yields
    ------
    Path
        Temporary file in the same directory; write to it, it is renamed on exit.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _cannot_write(path, err) from err
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as err:
            raise _cannot_write(path, err) from err
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _cannot_write(path: Path, err: OSError) -> VAEInputError:
    """Say in one line why ``path`` cannot be written (CLI and workflow print it as is)."""
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return VAEInputError(path, f"cannot write output: {blocker} is a file, not a folder")
    if path.is_dir():
        return VAEInputError(path, "cannot write output: an existing folder is in the way")
    return VAEInputError(path, f"cannot write output in {path.parent}: {err.strerror}")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Return the hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_embedding(path: str | Path, key: str = KEYS.X_VAE) -> Any:
    """``obs``, ``uns`` and ``obsm[key]`` of an ``.h5ad`` file, without ``X`` or layers.

    An embedding can carry a dense ``layers["denoised"]`` (cells x genes); metrics and
    figures need only the coordinates and the cell annotations.
    """
    import anndata as ad
    import h5py
    import numpy as np
    from anndata.io import read_elem

    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "file does not exist")
    try:
        with h5py.File(path, "r") as handle:
            obs = read_elem(handle["obs"])
            coordinates = np.asarray(read_elem(handle["obsm"][key]))
            uns = read_elem(handle["uns"]) if "uns" in handle else {}
    except KeyError as err:
        raise VAEInputError(path, f"obsm[{key!r}] or obs is missing") from err
    except OSError as err:
        raise VAEInputError(path, unreadable(err, "AnnData")) from err
    return ad.AnnData(obs=obs, obsm={key: coordinates}, uns=uns)


def write_h5ad_atomic(adata: Any, path: str | Path) -> None:
    """Write an AnnData to ``path`` (gzip) through a temporary file."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")


def read_h5ad(path: str | Path, *, backed: bool = False) -> Any:
    """Read an ``.h5ad`` file (``backed``: leave ``X`` on disk), errors as one clear line."""
    import anndata as ad

    path = Path(path)
    if not path.is_file():
        raise VAEInputError(path, "file does not exist")
    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:
        raise VAEInputError(path, unreadable(err, "AnnData")) from err


@contextlib.contextmanager
def staged_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path`` that replaces ``path`` whole on success.

    On an error the temporary folder is removed and an earlier ``path`` stays as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    staging.chmod(0o755)
    try:
        yield staging
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
