"""User-facing models: set up from AnnData, train, embed, sample, save and load."""

from vae.model._base import BaseModel, load_model
from vae.model._count import CountModel
from vae.model._sequence import SequenceModel
from vae.model._site_independent import SiteIndependentModel

__all__ = ["BaseModel", "CountModel", "SequenceModel", "SiteIndependentModel", "load_model"]
