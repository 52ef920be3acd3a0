"""Training loop: minibatches from a row store, KL warm-up, early stopping."""

from vae.train._budget import resolve_max_steps
from vae.train._rows import EpochOrderedRows, NamedRows, Rows, RowStore
from vae.train._trainer import TrainConfig, Trainer, TrainingResult

__all__ = [
    "EpochOrderedRows",
    "NamedRows",
    "RowStore",
    "Rows",
    "TrainConfig",
    "Trainer",
    "TrainingResult",
    "resolve_max_steps",
]
