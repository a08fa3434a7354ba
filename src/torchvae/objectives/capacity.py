r"""β-VAE with a controlled capacity (Burgess et al., 2018): the KL pulled towards a target.

Instead of pushing the KL down with a large :math:`\beta`, the objective holds it near a
target capacity :math:`C` (in nats) that rises during training, so that the code gains
information gradually and each new nat goes to the factor that improves the
reconstruction most:

.. math::
    \text{total} = -\mathbb{E}_{q}\log p_\theta(x \mid z)
    + \gamma\,\bigl|\,\mathrm{KL}(q(z \mid x)\,\|\,p(z)) - C_t\bigr|,
    \qquad C_t = C_{\min} + (C_{\max} - C_{\min})\min\!\left(1, \frac{t}{T}\right).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..likelihoods import Likelihood, check_likelihood
from ..models.vae import VAEOutput
from ._objective import bound_parts, check_weight
from .losses import LossOutput

__all__ = ["CapacityLoss"]


class CapacityLoss(nn.Module):
    r"""β-VAE with capacity annealing: :math:`\text{recon} + \gamma\,|\mathrm{KL} - C_t|`.

    :math:`\mathrm{KL}` is the batch mean of the model's KL per example (closed form where
    the model has one, otherwise its Monte Carlo estimate), :math:`C_t` rises linearly
    from ``c_min`` to ``c_max`` over ``steps`` training steps and then stays.

    **The step counter** :math:`t` is a buffer of the loss, ``loss.step``: it is in
    ``loss.state_dict()``, so a checkpoint (which holds the loss's state) resumes the
    ramp exactly where it stopped. Each call made with gradients enabled (a training
    step) uses :math:`C_t` and then advances :math:`t` by one; calls under
    ``torch.no_grad()`` (evaluation, as :meth:`~torchvae.Trainer.evaluate` does) use the
    current :math:`C_t` and leave it. ``loss.step.fill_(n)`` moves the ramp by hand.
    ``LossOutput.terms["capacity"]`` is the :math:`C_t` a call used.

    Args:
        gamma: :math:`\gamma`, the weight of :math:`|\mathrm{KL} - C|` (the paper: 1000
            with the Bernoulli likelihood on dSprites).
        c_min: :math:`C_{\min}`, nats at step 0.
        c_max: :math:`C_{\max}`, nats from step ``steps`` on (the paper: 25 on dSprites).
        steps: :math:`T`, the length of the ramp in training steps (the paper: 100,000).
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> loss = CapacityLoss(gamma=100.0, c_max=10.0, steps=1000)
        >>> x = torch.rand(4, 16)
        >>> out = loss(model(x), x)
        >>> int(loss.step), loss.capacity
        (1, 0.01)
    """

    step: Tensor

    def __init__(
        self,
        gamma: float = 1000.0,
        c_min: float = 0.0,
        c_max: float = 25.0,
        steps: int = 100_000,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__()
        self.gamma = check_weight(gamma, "gamma")
        self.c_min = check_weight(c_min, "c_min")
        self.c_max = check_weight(c_max, "c_max")
        self.steps = check_positive_int(steps, "steps")
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)
        self.register_buffer("step", torch.zeros((), dtype=torch.int64))

    def capacity_at(self, step: int) -> float:
        """:math:`C_t` at training step ``step``."""
        fraction = min(1.0, max(0, step) / self.steps)
        return self.c_min + (self.c_max - self.c_min) * fraction

    @property
    def capacity(self) -> float:
        """:math:`C_t` at the current step: what the next call uses."""
        return self.capacity_at(int(self.step))

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss (``out = model(x)``); advances the step when gradients are on."""
        parts = bound_parts(out, x, self.likelihood, "CapacityLoss")
        # C_t as tensor arithmetic on the buffer: no device synchronisation per step.
        fraction = (self.step.to(parts.kl.dtype) / self.steps).clamp(max=1.0)
        capacity = self.c_min + (self.c_max - self.c_min) * fraction
        total = parts.reconstruction + self.gamma * (parts.kl - capacity).abs()
        if torch.is_grad_enabled():
            self.step.add_(1)
        logged = {"capacity": capacity.detach()}
        return LossOutput(
            total, parts.reconstruction, parts.kl, parts.kl_per_dim, parts.kl_exact, logged
        )

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma:g}, c_min={self.c_min:g}, c_max={self.c_max:g}, steps={self.steps}"
        )
