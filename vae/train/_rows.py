"""What the trainer draws minibatches from: a store of examples, one row each.

A :class:`RowStore` turns row indices into the keyword arguments of one call of the
module (see :class:`~vae.module.BaseModule`). :class:`NamedRows`, the store every
model uses, holds named inputs with the same rows: dense tensors, a device-resident CSR
matrix (:class:`~vae.data._csr.CSRCounts`) or counts read from disk block by block
(:class:`~vae.data._backed.BackedCounts`, which also orders an epoch itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Rows(Protocol):
    """One named input with a row per example (a tensor is one).

    ``rows[index]`` gathers the rows at a tensor of row indices (in that order) or a
    slice; ``to(device)`` places future gathers on ``device``.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: torch.Tensor | slice) -> Any: ...

    def to(self, device: torch.device) -> Rows: ...


@runtime_checkable
class EpochOrderedRows(Rows, Protocol):
    """Rows that choose the order of an epoch themselves (e.g. whole blocks read from disk)."""

    def epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Return a permutation of ``range(n)`` drawn with ``generator``."""
        ...


class RowStore(Protocol):
    """The examples a :class:`~vae.train.Trainer` trains on."""

    def __len__(self) -> int: ...

    def to(self, device: torch.device) -> RowStore:
        """Return the store with minibatches placed on ``device``."""
        ...

    def batch(self, index: torch.Tensor) -> dict[str, Any]:
        """Return the keyword arguments of the module for the rows at ``index``."""
        ...

    def epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Return the order of an epoch over ``n`` rows, or ``None`` to shuffle uniformly."""
        ...


class NamedRows:
    """A :class:`RowStore` of named inputs with the same rows, passed to the module by name.

    Parameters
    ----------
    columns
        Input name to its :class:`Rows`, e.g. ``{"x": counts, "batch": codes}``. The
        first input that is an :class:`EpochOrderedRows` orders the epochs.
    """

    def __init__(self, columns: Mapping[str, Rows]) -> None:
        if not columns:
            raise ValueError("a row store needs at least one input")
        self.columns = dict(columns)
        lengths = {name: len(rows) for name, rows in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"inputs have different numbers of rows: {lengths}")
        self._n_rows = next(iter(lengths.values()))

    def __len__(self) -> int:
        return self._n_rows

    def to(self, device: torch.device) -> NamedRows:
        """Return the inputs on ``device``."""
        return NamedRows({name: rows.to(device) for name, rows in self.columns.items()})

    def batch(self, index: torch.Tensor | slice) -> dict[str, Any]:
        """Return every input's rows at ``index`` (index tensor or slice), by name."""
        return {name: rows[index] for name, rows in self.columns.items()}

    def epoch_order(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Return the epoch order of the first input that has one, else ``None``."""
        for rows in self.columns.values():
            if isinstance(rows, EpochOrderedRows):
                return rows.epoch_order(n, generator)
        return None
