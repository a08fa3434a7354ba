"""The VampPrior: a mixture of the model's own posteriors at learned pseudo-inputs."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, MixtureSameFamily

from .._validation import check_generator, check_positive_int
from ..gaussian import GaussianParams
from ..io.registry import register_by_arguments
from ..posteriors import DiagonalGaussian, Posterior
from ._base import Prior, PriorOwner, rows_per_block
from ._mixture import diagonal_log_prob

__all__ = ["VampPrior"]


class VampPrior(Prior):
    r"""The VampPrior (Tomczak & Welling, 2018): a mixture of the model's own posteriors.

    .. math:: p(z) = \frac1K \sum_{k=1}^K q_\phi(z \mid u_k)

    at :math:`K` pseudo-inputs :math:`u_k`, learned with the model. They live in the data's
    space (the encoder's input shape) and, for data in a bounded range (the likelihood's
    ``data_range``, e.g. [0, 1]), are clipped to it by a hard tanh, as in the paper; they
    start at :math:`\mathcal{N}(0.05, 0.01^2)` scaled to that range (the paper's
    initialization; :math:`\mathcal{N}(0, 1)` for unbounded data). Each training step
    encodes the :math:`K` pseudo-inputs, so a step costs about :math:`1 + K/B` times the
    encoder's work at batch size :math:`B`.

    Conditioned on a label, pseudo-input :math:`k` belongs to class :math:`k \bmod C` and
    :math:`p(z \mid y)` mixes the posteriors of the pseudo-inputs of class :math:`y`
    (encoded with that label); :math:`K` must then be at least the number of classes. The
    ``temperature`` :math:`t` scales the chosen posterior's base standard deviation.

    Args:
        n_components: :math:`K`, the number of pseudo-inputs.
        latent_dim: optional; otherwise taken from the encoder when the VAE is built.
    """

    pseudo_labels: Tensor

    def __init__(self, n_components: int = 500, latent_dim: int | None = None) -> None:
        super().__init__(latent_dim)
        self.n_components = check_positive_int(n_components, "n_components")
        self.pseudo_inputs: nn.Parameter | None = None
        self.bounds: tuple[float, float] | None = None
        self._owner: list[PriorOwner] = []

    def bind(self, model: PriorOwner) -> None:
        super().bind(model)
        shape = model.data_shape
        if shape is None:
            raise ValueError(
                "VampPrior needs the shape of the encoder's input, for its pseudo-inputs: give "
                "the encoder an int attribute input_dim or a tuple input_shape"
            )
        classes = self.num_classes
        if classes is not None and self.n_components < classes:
            raise ValueError(
                f"VampPrior(n_components={self.n_components}) needs at least one pseudo-input "
                f"per class, num_classes={classes}"
            )
        self.bounds = model.data_range
        if self.bounds is None:
            init = torch.randn(self.n_components, *shape)
        else:
            low, high = self.bounds
            init = low + (high - low) * (0.05 + 0.01 * torch.randn(self.n_components, *shape))
        self.pseudo_inputs = nn.Parameter(init)
        labels = torch.arange(self.n_components) % (classes or 1)
        self.register_buffer("pseudo_labels", labels)
        self._owner = [model]  # a plain list: the encoder is the model's, not a submodule here

    def config(self) -> dict[str, Any]:
        return {"n_components": self.n_components}

    def components(self) -> GaussianParams:
        r"""The encoder's output at the pseudo-inputs, each ``(K, latent_dim)``."""
        if self.pseudo_inputs is None or not self._owner:
            raise RuntimeError("VampPrior is not bound to a model yet")
        u: Tensor = self.pseudo_inputs
        if self.bounds is not None:
            u = F.hardtanh(u, *self.bounds)
        labels = self.pseudo_labels if self.num_classes is not None else None
        return self._owner[0].encode_trusted(u, labels)

    def _log_weights(self, y: Tensor | None) -> Tensor:
        """``log pi_k``: uniform, or uniform over the pseudo-inputs of class ``y``."""
        k = self.n_components
        like = self._like
        if y is None:
            return like.new_full((k,), -math.log(k))
        member = self.pseudo_labels == y[:, None]
        count = member.sum(-1, keepdim=True).to(like.dtype)
        return torch.where(member, -count.log(), like.new_tensor(-math.inf))

    def forward(self, y: Tensor | None = None) -> Distribution:
        params = self.components()
        posterior = self._owner[0].posterior_head
        components = posterior(params)
        if y is not None:
            components = components.expand((y.shape[0], self.n_components))
        weights = Categorical(logits=self._log_weights(y), validate_args=False)
        return MixtureSameFamily(weights, components, validate_args=False)

    def log_prob(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        params = self.components()
        posterior = self._owner[0].posterior_head
        if isinstance(posterior, DiagonalGaussian):
            per = diagonal_log_prob(z, params.mean, 0.5 * params.log_var)
        else:
            d = z.shape[-1]
            flat = z.reshape(-1, 1, d)
            rows = rows_per_block(self.n_components * d * 16)  # room for the flow's hidden layers
            per = torch.cat(
                [posterior.log_prob(part, params) for part in torch.split(flat, rows)]
            ).reshape(*z.shape[:-1], self.n_components)
        return torch.logsumexp(per + self._log_weights(y), -1)

    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        params = self.components()
        check_generator(generator, params.mean.device)
        probs = self._log_weights(None if y is None else y).exp()
        which = torch.multinomial(probs.expand(n, -1), 1, generator=generator).squeeze(-1)
        mean, log_var = params.mean[which], params.log_var[which]
        chosen = GaussianParams(mean, log_var)
        posterior = self._owner[0].posterior_head
        if temperature == 0:
            return posterior.location(chosen)
        scaled = GaussianParams(mean, log_var + 2.0 * math.log(temperature))
        return posterior.rsample_and_log_prob(scaled, None, generator)[0]

    def kl_closed_form(
        self, posterior: Posterior, params: GaussianParams, y: Tensor | None = None
    ) -> Tensor | None:
        return None


register_by_arguments(VampPrior)
