"""What a VAE's forward pass returns: the samples and the terms of the bound."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from ..gaussian import GaussianParams
from ..likelihoods import Likelihood

__all__ = ["VAEOutput"]


class VAEOutput(NamedTuple):
    r"""What :meth:`VAE.forward` returns: the samples and the terms of the bound.

    A :class:`VAE` fills every field; a user-written model may return only the first four
    (the losses then score ``logits`` with their own likelihood against
    :math:`\mathcal{N}(0, I)`).

    Attributes:
        logits: decoder output (the likelihood's parameters), ``x``'s shape (with
            ``n_samples=k``: ``(k, *x.shape)``); for a likelihood with its own layout
            (``likelihood.params_shape(data_shape)`` other than the data's shape, e.g.
            :class:`~torchvae.DiscretizedLogisticMixture`), ``(batch, *params_shape)``.
        mean: the encoder's :math:`\mu_\phi(x)`, ``(batch, latent_dim)``.
        log_var: the encoder's :math:`\log\sigma^2_\phi(x)`, ``(batch, latent_dim)``.
        z: the reparameterized sample(s), ``(batch, latent_dim)`` or ``(k, batch, latent_dim)``.
        log_px_z: :math:`\log p_\theta(x \mid z)` per sample, ``(batch,)`` or ``(k, batch)``.
        kl: the KL term per example, ``(batch,)``: closed form, or the Monte Carlo estimate
            :math:`\log q(z \mid x) - \log p(z)` averaged over the samples.
        kl_per_dim: the closed-form KL per example and latent dimension,
            ``(batch, latent_dim)``, where the posterior and prior factorize; else ``None``.
        log_qz: :math:`\log q_\phi(z \mid x)` at the samples, shape of ``log_px_z``.
        log_pz: :math:`\log p(z)` at the samples; ``None`` when a closed-form KL made it
            unnecessary (one sample per example).
        likelihood: the model's :math:`p_\theta(x \mid z)`.
        kl_exact: whether ``kl`` is in closed form (otherwise a Monte Carlo estimate).
    """

    logits: Tensor
    mean: Tensor
    log_var: Tensor
    z: Tensor
    log_px_z: Tensor | None = None
    kl: Tensor | None = None
    kl_per_dim: Tensor | None = None
    log_qz: Tensor | None = None
    log_pz: Tensor | None = None
    likelihood: Likelihood | None = None
    kl_exact: bool = True

    @property
    def x_hat(self) -> Tensor:
        r"""The reconstruction, the mean of :math:`p_\theta(x \mid z)`.

        For the Bernoulli likelihood it is :math:`\sigma(\text{logits})`, in [0, 1].
        """
        if self.likelihood is None:
            return torch.sigmoid(self.logits)
        return self.likelihood.mean(self.logits)

    @property
    def posterior(self) -> GaussianParams:
        r"""The encoder's parameters of :math:`q_\phi(z \mid x)`."""
        return GaussianParams(self.mean, self.log_var)
