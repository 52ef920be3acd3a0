"""Training loop: minibatches from device-resident tensors, KL warm-up, early stopping."""

from vae.train._trainer import TrainConfig, Trainer, TrainingResult

__all__ = ["TrainConfig", "Trainer", "TrainingResult"]
