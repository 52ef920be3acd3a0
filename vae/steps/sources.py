"""Materialise dataset sources: built-in demo sets and checksummed downloads."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

from vae._io import atomic_path, sha256_file, write_h5ad_atomic, write_text_atomic
from vae.data._demo import builtin_sources
from vae.errors import VAEInputError

#: Built-in source -> file suffix (vae/data/builtin_sources.tsv, also read by the workflow)
BUILTIN_SOURCES = builtin_sources()


def fetch_source(source: str, output: str | Path, *, sha256: str | None = None) -> None:
    """Materialise a dataset source: a built-in demo set or an https URL.

    Parameters
    ----------
    source
        ``builtin:pbmc68k`` (scanpy's 700-cell PBMC subset, raw counts recovered),
        ``builtin:pf02826`` (family emitted from pyhmmer's Pfam PF02826 profile),
        ``builtin:pf02826_raw`` (new unaligned sequences from that profile plus random
        decoys, for batch embedding),
        or an ``https://`` URL (``sha256`` required).
    output
        Destination file.
    sha256
        Expected checksum of a downloaded file.
    """
    from vae.data._demo import emit_family_alignment, emit_raw_sequences, pbmc68k_counts

    output = Path(output)
    if source == "builtin:pbmc68k":
        write_h5ad_atomic(pbmc68k_counts(), output)
    elif source == "builtin:pf02826":
        rows = emit_family_alignment(n_sequences=3000, seed=0)
        write_text_atomic(output, "".join(f">{name}\n{row}\n" for name, row in rows))
    elif source == "builtin:pf02826_raw":
        rows = emit_raw_sequences(n_sequences=300, n_decoys=5, seed=1)
        write_text_atomic(output, "".join(f">{name}\n{seq}\n" for name, seq in rows))
    elif source.startswith("https://"):
        if not sha256:
            raise VAEInputError(source, "an https source needs a sha256 in the dataset sheet")
        with atomic_path(output) as tmp:
            with urllib.request.urlopen(source, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
            if sha256_file(tmp) != sha256:
                raise VAEInputError(source, "downloaded file does not match its sha256")
    else:
        raise VAEInputError(source, "unknown source; use a path, builtin:NAME or an https URL")
