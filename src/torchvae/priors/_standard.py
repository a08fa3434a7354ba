"""The standard normal prior."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.distributions import Independent, Normal

from .._validation import check_generator
from ..gaussian import GaussianParams, _gaussian_kl
from ..io.registry import register_by_arguments
from ..posteriors import DiagonalGaussian, Posterior
from ._base import _LOG_2PI, Prior

__all__ = ["StandardNormal"]


class StandardNormal(Prior):
    r"""The standard normal prior :math:`p(z) = \mathcal{N}(0, I)`.

    Against the diagonal Gaussian posterior the KL has the closed form of
    :func:`~torchvae.gaussian_kl`, per dimension. ``temperature`` :math:`t` samples
    :math:`\mathcal{N}(0, t^2 I)`.

    Args:
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.

    Example:
        >>> prior = StandardNormal(latent_dim=2)
        >>> prior().event_shape
        torch.Size([2])
    """

    def forward(self, y: Tensor | None = None) -> Independent[Normal]:
        zeros = self._like.new_zeros(self.dim if y is None else (y.shape[0], self.dim))
        return Independent(Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return -0.5 * (z.square() + _LOG_2PI).sum(-1)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        like = self._like
        check_generator(generator, like.device)
        z = torch.randn(n, self.dim, device=like.device, dtype=like.dtype, generator=generator)
        return z * temperature

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        if isinstance(posterior, DiagonalGaussian):
            return _gaussian_kl(params.mean, params.log_var)
        return None


register_by_arguments(StandardNormal)
