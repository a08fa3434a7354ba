"""The Gaussian likelihood, with a fixed or learned scale."""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Normal

from .._validation import check_generator
from ..io.registry import register_by_arguments
from ._base import Likelihood

__all__ = ["Gaussian"]

_LOG_2PI = math.log(2.0 * math.pi)


class Gaussian(Likelihood):
    r"""Gaussian likelihood with a fixed or learned scale.

    .. math::
        \log p(x \mid z) = -\sum_i \left[\frac{(x_i - \mu_i)^2}{2 s^2} + \log s
        + \tfrac12 \log 2\pi\right]

    The mean is :math:`\mu = \sigma(\ell)` (``link="sigmoid"``, for data in [0, 1], so that
    it equals the decoder's output ``x_hat``) or :math:`\mu = \ell` (``link="identity"``,
    for unbounded data).

    Args:
        scale: the standard deviation :math:`s` (the initial one when learned).
        learn_scale: learn one shared :math:`\log s` as a parameter; the optimizer must
            then see this module's parameters (the Trainer includes them).
        link: ``"sigmoid"`` or ``"identity"``.

    Example:
        >>> Gaussian(scale=1.0, link="identity").log_prob(torch.zeros(1, 2), torch.zeros(1, 2))
        tensor([-1.8379])
    """

    def __init__(
        self,
        scale: float = 1.0,
        learn_scale: bool = False,
        link: Literal["sigmoid", "identity"] = "sigmoid",
    ) -> None:
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, (int, float)):
            raise TypeError(f"scale must be a positive float, got {type(scale).__name__}")
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive finite float, got {scale}")
        if link not in ("sigmoid", "identity"):
            raise ValueError(f"link must be 'sigmoid' or 'identity', got {link!r}")
        if not isinstance(learn_scale, bool):
            raise TypeError(f"learn_scale must be a bool, got {type(learn_scale).__name__}")
        self.link = link
        self.learn_scale = learn_scale
        self.initial_scale = float(scale)
        self.data_range = (0.0, 1.0) if link == "sigmoid" else None
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def config(self) -> dict[str, Any]:
        return {"scale": self.initial_scale, "learn_scale": self.learn_scale, "link": self.link}

    def mean(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits) if self.link == "sigmoid" else logits

    def sample(self, logits: Tensor, generator: torch.Generator | None = None) -> Tensor:
        r"""Draws :math:`x = \mu + s\,\varepsilon`, :math:`\varepsilon \sim \mathcal{N}(0, I)`."""
        check_generator(generator, logits.device)
        eps = torch.randn(
            logits.shape, generator=generator, device=logits.device, dtype=logits.dtype
        )
        return self.mean(logits) + torch.exp(self.log_scale.to(logits.dtype)) * eps

    def log_prob_elementwise(self, logits: Tensor, x: Tensor) -> Tensor:
        log_scale = self.log_scale.to(logits.dtype)
        z = (x - self.mean(logits)) * torch.exp(-log_scale)
        return -0.5 * z.square() - log_scale - 0.5 * _LOG_2PI

    def distribution_elementwise(self, logits: Tensor) -> Distribution:
        scale = torch.exp(self.log_scale.to(logits.dtype)).expand_as(logits)
        return Normal(self.mean(logits), scale, validate_args=False)


register_by_arguments(Gaussian)
