r"""Disentanglement metrics: scores of a representation against a data set with known factors.

Every metric takes a *representation* (a callable from images ``(n, *image_shape)`` to
codes ``(n, d)``; :func:`model_representation` makes one from a torchvae model's posterior
mean) and a :class:`~torchvae.FactorDataset`, draws every random number from ``seed`` (so
a seed gives the same value on every run), makes and encodes images in batches, and runs
its arithmetic on ``device``. The estimators are those of google-research's
disentanglement_lib, the reference implementation, unless a docstring says otherwise.

Example:
    >>> import torch
    >>> from torchvae import TensorFactorDataset
    >>> factors = torch.cartesian_prod(torch.arange(4), torch.arange(5))
    >>> ds = TensorFactorDataset(factors.to(torch.uint8), factors)  # each image: its factors
    >>> codes_are_factors = lambda x: x * 255
    >>> mig(codes_are_factors, ds, n_train=2000).score > 0.99  # at the top: codes = factors
    True
"""

from __future__ import annotations

from ._beta_vae import BetaVAEScore, beta_vae_score
from ._codes import Representation, model_representation
from ._dci import DCIScore, dci, dci_from_importance
from ._factor_vae import FactorVAEScore, factor_vae_score
from ._mig import MIGScore, discrete_mutual_information, discretize, mig
from ._sap import SAPScore, sap_score

__all__ = [
    "BetaVAEScore",
    "DCIScore",
    "FactorVAEScore",
    "MIGScore",
    "Representation",
    "SAPScore",
    "beta_vae_score",
    "dci",
    "dci_from_importance",
    "discrete_mutual_information",
    "discretize",
    "factor_vae_score",
    "mig",
    "model_representation",
    "sap_score",
]
