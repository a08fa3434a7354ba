r"""Priors :math:`p(z)` (and :math:`p(z \mid y)` for a conditional model) as modules.

Every prior is an ``nn.Module`` that the :class:`~torchvae.VAE` holds and binds to its
latent size when it is built (``VAE(..., prior=VampPrior(500))``); calling it gives the
distribution, and :meth:`Prior.log_prob` / :meth:`Prior.sample` are what training and
generation use:

- :class:`StandardNormal`: :math:`\mathcal{N}(0, I)`, the textbook's prior; closed-form KL
  against a diagonal Gaussian posterior.
- :class:`MixturePrior`: a learnable mixture of :math:`K` diagonal Gaussians,
  :math:`p(z) = \sum_k \pi_k\, \mathcal{N}(z; m_k, \operatorname{diag} s_k^2)`.
- :class:`VampPrior`: the variational mixture of posteriors (Tomczak & Welling, 2018),
  :math:`p(z) = \frac1K \sum_k q_\phi(z \mid u_k)` at :math:`K` learned pseudo-inputs.
- :class:`FlowPrior`: a normalizing flow on :math:`\mathcal{N}(0, I)` (needs zuko).

Priors other than the standard normal have no closed-form KL against the posterior, so the
objectives estimate it by Monte Carlo on the same samples,
:math:`\log q(z \mid x) - \log p(z)`.

Conditioned on a label :math:`y` (a model built with ``num_classes``), the standard normal
ignores it, the mixture learns weights :math:`\pi_k(y)` per class, the VampPrior gives each
pseudo-input a class and mixes those of :math:`y`, and the flow takes :math:`y`'s one-hot
code as its context.
"""

from __future__ import annotations

from ._base import Prior, PriorOwner
from ._flow import FlowPrior
from ._mixture import MixturePrior
from ._standard import StandardNormal
from ._vamp import VampPrior

__all__ = [
    "FlowPrior",
    "MixturePrior",
    "Prior",
    "PriorOwner",
    "StandardNormal",
    "VampPrior",
]
