"""Provenance manifests: inputs with checksums, settings, versions, seed, device, wall time."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from vae._checksums import file_sha256
from vae._constants import FILES
from vae._io import write_json_atomic

_PACKAGES = ("vae-workflow", "torch", "anndata", "scanpy", "snakemake", "numpy", "biopython")


def package_versions() -> dict[str, str | None]:
    """Versions of Python and the packages that shape results."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def cpu_capability() -> dict[str, Any]:
    """CPU kernels and BLAS that shape floating-point results (they differ between machines).

    The same seed on AVX-512 and AVX2 kernels rounds differently, enough to move a
    1,000-step protein model's AUC by a few hundredths; record them with every result.
    """
    import torch

    config = torch.__config__.show()
    blas = next(
        (
            part.split("=", 1)[1]
            for part in config.replace("\n", ",").split(",")
            if "BLAS_INFO=" in part
        ),
        None,
    )
    return {
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_blas": blas,
        "torch_threads": torch.get_num_threads(),
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def git_commit(directory: str | Path = ".") -> str | None:
    """Commit of the git checkout holding ``directory`` (``None`` outside git)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def input_record(path: str | Path) -> dict[str, Any]:
    """Path, size and SHA-256 of an input file (or of every file in a folder)."""
    path = Path(path)
    if path.is_dir():
        return {
            "path": str(path),
            "files": {
                str(p.relative_to(path)): file_sha256(p)
                for p in sorted(path.rglob("*"))
                if p.is_file()
            },
        }
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def sidecar_manifest(output: str | Path) -> Path:
    """Return the manifest path of a single-file output: ``x.h5ad`` -> ``x.manifest.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.{FILES.MANIFEST}")


def write_manifest(
    directory: str | Path,
    *,
    inputs: dict[str, str | Path],
    config: dict[str, Any],
    seed: int | None,
    device: str,
    wall_seconds: float,
    extra: dict[str, Any] | None = None,
    name: str = FILES.MANIFEST,
) -> Path:
    """Write a manifest (``manifest.json`` by default) into ``directory``; return its path."""
    manifest = {
        "inputs": {name: input_record(p) for name, p in inputs.items()},
        "config": config,
        "versions": package_versions(),
        "git_commit": git_commit(Path(__file__).parent),
        "seed": seed,
        "device": device,
        "compute": cpu_capability(),
        "wall_seconds": round(wall_seconds, 3),
    } | (extra or {})
    path = Path(directory) / name
    write_json_atomic(path, manifest)
    return path
