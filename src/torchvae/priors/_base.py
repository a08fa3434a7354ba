"""The base class of priors, and what a prior may ask of the model that holds it."""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from .._validation import check_positive_int, check_real
from ..gaussian import GaussianParams
from ..posteriors import Posterior

__all__ = ["Prior", "PriorOwner", "check_temperature"]

_LOG_2PI = math.log(2.0 * math.pi)
# Elements of the (rows, components, latent_dim) block scored at once by the mixtures.
_BLOCK = 1 << 22


class PriorOwner(Protocol):
    """What a prior reads from the model it is bound to (a :class:`~torchvae.VAE`)."""

    latent_dim: int
    num_classes: int | None
    data_shape: tuple[int, ...] | None
    posterior_head: Posterior

    @property
    def data_range(self) -> tuple[float, float] | None:
        """The interval the data lie in (the likelihood's), or ``None``."""
        ...

    def encode_trusted(self, x: Tensor, y: Tensor | None = None) -> GaussianParams:
        """The encoder's output for inputs the caller made, without checks."""
        ...


def check_temperature(temperature: object) -> float:
    """``temperature`` as a finite float >= 0, else a ``ValueError``/``TypeError``."""
    t = check_real(temperature, "temperature")
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"temperature must be a finite float >= 0, got {t}")
    return t


def rows_per_block(per_row: int) -> int:
    """How many rows of ``per_row`` elements fit a block."""
    return max(1, _BLOCK // max(1, per_row))


class Prior(nn.Module):
    """Base class of priors over a ``latent_dim``-dimensional :math:`z`.

    A subclass implements :meth:`forward`, :meth:`log_prob` and :meth:`sample`, and may
    override :meth:`kl_closed_form` and :meth:`bind` (which builds parameters that depend
    on the model: the latent size, the number of classes, the input shape).
    """

    latent_dim: int | None = None
    num_classes: int | None = None
    _like: Tensor

    def __init__(self, latent_dim: int | None = None) -> None:
        super().__init__()
        if latent_dim is not None:
            self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        # Where and in which dtype to make tensors; moves with the module, not saved.
        self.register_buffer("_like", torch.zeros(0), persistent=False)

    def bind(self, model: PriorOwner) -> None:
        """Fix the latent size and the number of classes from ``model`` (once).

        Raises:
            ValueError: the prior was built for another latent size, or is already bound
                to another model.
        """
        if self.latent_dim is not None and self.latent_dim != model.latent_dim:
            raise ValueError(
                f"prior={type(self).__name__}(latent_dim={self.latent_dim}) differs from the "
                f"encoder's latent_dim={model.latent_dim}; build the prior with "
                f"latent_dim={model.latent_dim} or leave latent_dim out"
            )
        if getattr(self, "_bound", False):
            raise ValueError(
                f"this {type(self).__name__} already belongs to a model; give each model "
                f"its own prior"
            )
        self.latent_dim = model.latent_dim
        self.num_classes = model.num_classes
        self._bound = True

    @property
    def dim(self) -> int:
        """The latent size (after :meth:`bind`)."""
        if self.latent_dim is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to a model yet")
        return self.latent_dim

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this prior (JSON values)."""
        return {}

    def forward(self, y: Tensor | None = None) -> Distribution:
        """:math:`p(z)` (or :math:`p(z \\mid y)`, batch shape ``(batch,)``) as a distribution."""
        raise NotImplementedError

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """:math:`\\log p(z)` for ``z`` ``(..., batch, latent_dim)``; labels ``y`` ``(batch,)``."""
        out: Tensor = self(y).log_prob(z)
        return out

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``n`` draws ``(n, latent_dim)``; ``temperature`` scales the spread (1: the prior).

        Args:
            n: how many.
            y: labels ``(n,)`` for a conditional prior.
            temperature: :math:`t \\geq 0`; each prior says how it scales.
            generator: optional random generator on the prior's device.
        """
        raise NotImplementedError

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        """:math:`\\mathrm{KL}(q(z \\mid x) \\| p(z))` in closed form, or ``None``.

        Returns ``(batch, latent_dim)`` where the KL splits over dimensions, ``(batch,)``
        where it only has a total, ``None`` where no closed form is known (the objectives
        then estimate it by Monte Carlo). This default asks ``torch.distributions`` for a
        registered pair.
        """
        try:
            kl = kl_divergence(posterior(params), self(y))
        except NotImplementedError:
            return None
        return kl if isinstance(kl, Tensor) else None

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.config().items())
