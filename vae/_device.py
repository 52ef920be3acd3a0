"""Device selection, done once at the entry point."""

from __future__ import annotations

import torch

from vae.errors import VAEInputError


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N`` into a device (``auto``: CUDA when present)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VAEInputError("device", f"{name!r} requested but CUDA is not available")
    if name != "cpu" and not name.startswith("cuda"):
        raise VAEInputError("device", f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)
