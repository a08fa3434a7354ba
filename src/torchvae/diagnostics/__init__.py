r"""Latent diagnostics: is the posterior collapsing?

Posterior collapse is the commonest silent failure of a VAE: some (or all) latent
dimensions carry no information about :math:`x`, their posterior equals the prior and
their KL is zero, while the loss looks fine. These functions measure it on a data set:

- :func:`kl_per_dimension`: :math:`\mathbb{E}_x\,\mathrm{KL}(q(z_u \mid x)\,\|\,p(z_u))`
  for each latent dimension :math:`u`, in nats.
- :func:`active_units`: the number of dimensions whose posterior mean varies with
  :math:`x` (Burda et al., 2016).
- :func:`mutual_information`: an estimate of :math:`I(x; z)` under the aggregate
  posterior.
- :func:`latent_report` gathers all three in one pass over the data, and
  :func:`warn_if_collapsed` warns when the posterior has collapsed (no active dimension,
  or :math:`I(x; z)` near 0).

They need the model's ``encode`` (``encode(x)``, or ``encode(x, y)`` for a model with
``is_conditional = True``) and, where it has them, its posterior and prior modules
(``posterior_head`` and ``prior`` of a :class:`~torchvae.VAE`; a model without them is
taken to have the diagonal Gaussian posterior and the standard normal prior). They run
under ``torch.no_grad()`` in eval mode, and leave the train/eval mode of every submodule
as they found it.

**Which model.** The KL per dimension exists only where the KL splits over dimensions in
closed form (the diagonal Gaussian posterior with the standard normal prior):
:func:`kl_per_dimension` refuses other models, and :func:`latent_report` then reports the
total KL as a Monte Carlo estimate with ``kl_per_dim=None``. Active units use the
posterior's location (its mean; for a flow posterior the flow applied to the base mean).
The mutual information works for any posterior.

**Data.** ``data`` is a tensor of examples ``(N, ...)`` (labels, for a conditional model,
in ``y=``), a ``torch.utils.data.Dataset`` yielding ``x`` or ``(x, y)``, or any iterable
of batches ``x`` or ``(x, y, ...)`` such as a ``DataLoader``. Labels are ignored by
unconditional models.
"""

from __future__ import annotations

from ._layers import LayerReport, layer_report
from ._report import (
    ActiveUnits,
    LatentReport,
    PosteriorCollapseWarning,
    active_units,
    kl_per_dimension,
    latent_report,
    mutual_information,
    warn_if_collapsed,
)

__all__ = [
    "ActiveUnits",
    "LatentReport",
    "LayerReport",
    "PosteriorCollapseWarning",
    "active_units",
    "kl_per_dimension",
    "latent_report",
    "layer_report",
    "mutual_information",
    "warn_if_collapsed",
]
