r"""Fit an ex-post sampler (Ghosh et al., 2020) to a trained VAE's aggregate posterior.

:func:`fit_gmm_sampler` encodes a data set with the model, collects one code per example
(the posterior's location, :math:`\mu_\phi(x)` for the diagonal Gaussian, or a draw
:math:`z \sim q_\phi(z \mid x)`) and fits a :class:`~torchvae.GaussianMixtureSampler` to
them. Set it as ``model.sampler`` to keep it with the model (``save_model`` writes it)
and draw with ``model.sample(n, sampler=model.sampler)``.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from .._validation import check_positive_int
from ..models.vae import VAE
from ..training._batches import as_batches, unpack
from .gmm import Covariance, GaussianMixtureSampler

__all__ = ["aggregate_posterior", "fit_gmm_sampler"]

Codes = Literal["mean", "sample"]


@torch.no_grad()
def aggregate_posterior(
    model: VAE,
    data: Any,
    codes: Codes = "mean",
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""One latent code per example of ``data``: ``(n, latent_dim)`` on the model's device.

    Args:
        model: a trained :class:`~torchvae.VAE` (or :class:`~torchvae.ConditionalVAE`,
            whose batches must then carry labels).
        data: a Tensor of examples, a Dataset, a DataLoader or an iterable of batches
            ``x`` or ``(x, y)``.
        codes: ``"mean"``, the posterior's location (deterministic), or ``"sample"``, one
            draw :math:`z \sim q_\phi(z \mid x)` per example.
        batch_size: examples per encoder call for tensors and datasets.
        generator: random generator on the model's device for ``codes="sample"``.

    Raises:
        TypeError: ``model`` is not a VAE.
        ValueError: ``codes`` is neither choice, ``data`` holds no examples, or a
            conditional model gets batches without labels.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model must be a torchvae VAE, got {type(model).__name__}")
    if codes not in ("mean", "sample"):
        raise ValueError(f"codes must be 'mean' or 'sample', got {codes!r}")
    batch_size = check_positive_int(batch_size, "batch_size")
    device = model._like_params()[0]
    was_training = model.training
    model.eval()
    found: list[Tensor] = []
    try:
        for batch in as_batches(data, batch_size, train=False):
            x, y = unpack(batch, device)
            if model.is_conditional and y is None:
                raise ValueError("the model is conditional: batches must be (x, y) pairs")
            params = model.encode(x, y if model.is_conditional else None)
            head = model.posterior_head
            if codes == "mean":
                found.append(head.location(params))
            else:
                found.append(head.rsample_and_log_prob(params, None, generator)[0])
    finally:
        model.train(was_training)
    if not found:
        raise ValueError("data for aggregate_posterior holds no examples")
    return torch.cat(found)


def fit_gmm_sampler(
    model: VAE,
    data: Any,
    num_components: int = 10,
    *,
    covariance: Covariance = "full",
    codes: Codes = "mean",
    reg: float = 1e-6,
    max_iter: int = 100,
    tol: float = 1e-3,
    batch_size: int = 1024,
    generator: torch.Generator | None = None,
) -> GaussianMixtureSampler:
    r"""A Gaussian mixture fitted by EM to ``model``'s codes of ``data`` (its training set).

    Args:
        model: a trained :class:`~torchvae.VAE`.
        data: the data whose aggregate posterior to fit, as for
            :func:`aggregate_posterior`.
        num_components: :math:`C` (Ghosh et al. use 10 on MNIST and CIFAR-10).
        covariance: ``"full"`` or ``"diag"``.
        codes: ``"mean"`` or ``"sample"`` (see :func:`aggregate_posterior`).
        reg: added to each covariance's diagonal.
        max_iter: at most this many EM iterations.
        tol: EM stops when the mean log-likelihood improves by less (nats).
        batch_size: examples per encoder call.
        generator: random generator on the model's device (k-means++ seeding, and the
            draws for ``codes="sample"``): with one, the fit is deterministic.

    Returns:
        The fitted sampler, on the model's device, in its dtype.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 2), Decoder(2, 8, 16))
        >>> gmm = fit_gmm_sampler(model, torch.rand(100, 16), num_components=3,
        ...                       generator=torch.Generator().manual_seed(0))
        >>> model.sampler = gmm  # saved with the model from now on
        >>> model.sample(4, sampler=model.sampler).shape
        torch.Size([4, 16])
    """
    z = aggregate_posterior(model, data, codes, batch_size, generator)
    sampler = GaussianMixtureSampler(num_components, model.latent_dim, covariance, reg)
    sampler.to(device=z.device, dtype=z.dtype)
    return sampler.fit(z, max_iter=max_iter, tol=tol, generator=generator)
