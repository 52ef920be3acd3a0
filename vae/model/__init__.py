"""User-facing models: set up from AnnData, train, embed, sample, save and load."""

from vae.model._base import BaseModel, load_model
from vae.model._count import CountModel
from vae.model._sequence import SequenceModel

__all__ = ["BaseModel", "CountModel", "SequenceModel", "load_model"]
