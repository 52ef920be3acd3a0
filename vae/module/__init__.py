"""Generative models with their ELBO."""

from vae.module._base import BaseModule, LossOutput
from vae.module._count_vae import CountVAE
from vae.module._sequence_vae import SequenceVAE

__all__ = ["BaseModule", "CountVAE", "LossOutput", "SequenceVAE"]
