r"""Reconstruction likelihoods :math:`p_\theta(x \mid z)` computed from decoder logits.

Each likelihood turns the decoder's unconstrained output (``logits``) and the data ``x``
into :math:`\log p_\theta(x \mid z)`, summed over every feature of an example, in nats.
They work from logits, never from ``log(sigmoid(...))``, so they stay finite where the
sigmoid saturates.

``log_prob(logits, x)`` broadcasts: ``x`` has shape ``(batch, *event)`` and ``logits``
``(*sample, batch, *event)`` (e.g. ``k`` importance samples in front); the result has
shape ``(*sample, batch)``.

A likelihood is a module of the model (``VAE(..., likelihood=Gaussian(...))``): calling it
on the decoder's output gives :math:`p_\theta(x \mid z)` as a ``torch.distributions``
object, :meth:`Likelihood.mean` its mean (what ``model.sample()`` and
``model.reconstruct()`` return) and :meth:`Likelihood.sample` a draw.
"""

from __future__ import annotations

from ._base import Likelihood
from ._bernoulli import Bernoulli, ContinuousBernoulli, continuous_bernoulli_log_norm
from ._checks import check_likelihood, describe, same_likelihood
from ._discretized import (
    DiscretizedLogistic,
    DiscretizedLogisticDistribution,
    DiscretizedLogisticMixture,
    DiscretizedLogisticMixtureDistribution,
)
from ._gaussian import Gaussian

__all__ = [
    "Bernoulli",
    "ContinuousBernoulli",
    "DiscretizedLogistic",
    "DiscretizedLogisticDistribution",
    "DiscretizedLogisticMixture",
    "DiscretizedLogisticMixtureDistribution",
    "Gaussian",
    "Likelihood",
    "check_likelihood",
    "continuous_bernoulli_log_norm",
    "describe",
    "same_likelihood",
]
