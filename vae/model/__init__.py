"""User-facing models: set up from AnnData, train, embed, sample, save and load."""

from vae.model._base import BaseModel, load_model
from vae.model._count import CountModel
from vae.model._eve_mixture import EveMixture, eve_classes, eve_scores, fit_eve_mixture
from vae.model._mapping import QueryTraining, default_query_epochs, map_query_model
from vae.model._sequence import DEFAULT_LATENT_SHRINK, ESTIMATORS, SequenceModel
from vae.model._site_independent import SiteIndependentModel

__all__ = [
    "DEFAULT_LATENT_SHRINK",
    "ESTIMATORS",
    "BaseModel",
    "CountModel",
    "EveMixture",
    "QueryTraining",
    "SequenceModel",
    "SiteIndependentModel",
    "default_query_epochs",
    "eve_classes",
    "eve_scores",
    "fit_eve_mixture",
    "load_model",
    "map_query_model",
]
