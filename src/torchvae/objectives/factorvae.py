r"""FactorVAE (Kim & Mnih, 2018): the total correlation estimated by a discriminator.

A discriminator :math:`D_\psi(z)` learns to tell samples of the aggregate posterior
:math:`q(z)` from samples of the product of its marginals :math:`\bar q(z) = \prod_k
q(z_k)`, which are made by shuffling each latent dimension independently across the batch
(:func:`permute_dims`). At its optimum :math:`D/(1 - D) = q(z)/\bar q(z)`, so its logit
estimates the density ratio and

.. math::
    \mathrm{TC}(z) = \mathrm{KL}\!\left(q(z)\,\|\,\bar q(z)\right)
    \approx \mathbb{E}_{q(z)}\left[\log\frac{D_\psi(z)}{1 - D_\psi(z)}\right].

The model and the discriminator are trained in turn, each by its own optimizer:
the model on the ELBO plus :math:`\gamma` times that estimate, the discriminator on the
cross-entropy of telling the two kinds of samples apart.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from .._validation import check_floating, check_positive_int, check_positive_ints
from ..likelihoods import Likelihood, check_likelihood
from ..models.vae import VAEOutput
from ._objective import bound_parts, check_weight, one_sample
from .losses import LossOutput

__all__ = ["Discriminator", "FactorVAELoss", "permute_dims"]


def permute_dims(z: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Shuffle each column of ``z`` ``(batch, d)`` independently across the batch.

    If the rows of ``z`` are samples of :math:`q(z)`, the rows of the result are samples of
    the product of its marginals :math:`\prod_k q(z_k)` (Kim & Mnih, 2018, Algorithm 1).

    Example:
        >>> z = torch.arange(12.0).reshape(4, 3)
        >>> p = permute_dims(z)
        >>> bool((p.sort(dim=0).values == z).all())
        True
    """
    z = check_floating(z, "z")
    if z.ndim != 2:
        raise ValueError(f"z must have shape (batch, latent_dim), got {tuple(z.shape)}")
    if generator is None:
        keys = torch.rand(z.shape, device=z.device)
    else:
        keys = torch.rand(z.shape, device=z.device, generator=generator)
    return z.gather(0, keys.argsort(dim=0))


class Discriminator(nn.Module):
    r"""The FactorVAE discriminator: an MLP from :math:`z` to the logit of "drawn from q(z)".

    Hidden layers of ``hidden_features`` units with LeakyReLU(0.2), then one output, the
    logit :math:`\log D(z) - \log(1 - D(z))`. The paper uses six layers of 1000 units.

    Args:
        latent_dim: the size of :math:`z`.
        hidden_features: the width of each hidden layer.

    Example:
        >>> Discriminator(10, (32, 32))(torch.randn(5, 10)).shape
        torch.Size([5])
    """

    def __init__(self, latent_dim: int, hidden_features: Sequence[int] = (1000,) * 6) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.hidden_features = check_positive_ints(hidden_features, "hidden_features")
        layers: list[nn.Module] = []
        width = self.latent_dim
        for features in self.hidden_features:
            layers += [nn.Linear(width, features), nn.LeakyReLU(0.2)]
            width = features
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """The logits ``(batch,)`` for ``z`` ``(batch, latent_dim)``."""
        out: Tensor = self.net(z).squeeze(-1)
        return out


class FactorVAELoss(nn.Module):
    r"""The FactorVAE objective, with its discriminator as a submodule and its own loss.

    For the model (``total``):

    .. math::
        \text{total} = -\frac1B\sum_b \log p_\theta(x_b \mid z_b)
        + \frac1B\sum_b \mathrm{KL}_b + \gamma\,\frac1B\sum_b \operatorname{logit} D_\psi(z_b)

    and for the discriminator (``aux["discriminator"]``), on the same batch's samples,
    detached from the model, and their shuffle :math:`\tilde z = \operatorname{permute}(z)`:

    .. math::
        \mathcal{L}_D = -\tfrac12\,\frac1B\sum_b\left[\log D_\psi(z_b)
        + \log\bigl(1 - D_\psi(\tilde z_b)\bigr)\right].

    The paper draws a second batch for :math:`\tilde z`; this uses the same one, as
    disentanglement_lib does, so that a step needs one forward pass. ``total`` sends no
    gradient to the discriminator (it is evaluated with detached parameters) and the
    discriminator's loss none to the model (it sees detached samples), so each of the two
    updates gets exactly its own gradient, in whichever order they are made.

    **Training.** The discriminator's parameters, :meth:`aux_parameters`, need their own
    optimizer and must be kept out of the model's. Each step: backward ``total`` and step
    the model's optimizer; zero the discriminator's gradients, backward
    ``aux["discriminator"]`` and step its optimizer (the paper: Adam, learning rate
    :math:`10^{-4}`, :math:`\beta = (0.5, 0.9)`). ``LossOutput.terms`` holds ``"tc"`` (the
    estimate) and ``"discriminator_accuracy"``.

    Args:
        latent_dim: the size of :math:`z`.
        gamma: :math:`\gamma`, the weight of the total correlation (the paper tries 10 to
            100).
        hidden_features: the discriminator's hidden layers (ignored with ``discriminator``).
        discriminator: a module from ``(batch, latent_dim)`` to logits ``(batch,)``;
            default :class:`Discriminator` with ``hidden_features``.
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> loss = FactorVAELoss(3, gamma=10.0, hidden_features=(16, 16))
        >>> x = torch.rand(32, 16)
        >>> out = loss(model(x), x)
        >>> sorted(out.aux), sorted(loss.aux_parameters())
        (['discriminator'], ['discriminator'])
    """

    def __init__(
        self,
        latent_dim: int,
        gamma: float = 10.0,
        hidden_features: Sequence[int] = (1000,) * 6,
        discriminator: nn.Module | None = None,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.gamma = check_weight(gamma, "gamma")
        if discriminator is not None and not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"discriminator must be a torch.nn.Module, got {type(discriminator).__name__}"
            )
        self.discriminator = (
            Discriminator(self.latent_dim, hidden_features)
            if discriminator is None
            else discriminator
        )
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    def aux_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The parameters of each auxiliary loss: ``{"discriminator": [...]}``."""
        return {"discriminator": list(self.discriminator.parameters())}

    def _logits(self, z: Tensor, frozen: bool) -> Tensor:
        if frozen:
            params = {k: v.detach() for k, v in self.discriminator.named_parameters()}
            logits: Tensor = functional_call(self.discriminator, params, (z,))
        else:
            logits = self.discriminator(z)
        if logits.shape != z.shape[:1]:
            raise ValueError(
                f"the discriminator must return one logit per example, shape "
                f"({z.shape[0]},), got {tuple(logits.shape)}"
            )
        return logits

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """The model's loss and, in ``aux``, the discriminator's (``out = model(x)``)."""
        parts = bound_parts(out, x, self.likelihood, "FactorVAELoss")
        z = one_sample(out, "FactorVAELoss")
        if z.shape[1] != self.latent_dim:
            raise ValueError(
                f"FactorVAELoss was built for latent_dim={self.latent_dim}, the model's z has "
                f"{z.shape[1]} dimensions"
            )
        if z.shape[0] < 2:
            raise ValueError(
                "FactorVAELoss needs at least 2 examples per batch to shuffle the latents "
                "(drop the last batch, e.g. TensorLoader(..., drop_last=True))"
            )
        tc = self._logits(z, frozen=True).mean()
        total = parts.reconstruction + parts.kl + self.gamma * tc
        real = z.detach()
        real_logits = self._logits(real, frozen=False)
        shuffled_logits = self._logits(permute_dims(real), frozen=False)
        d_loss = 0.5 * (F.softplus(-real_logits).mean() + F.softplus(shuffled_logits).mean())
        accuracy = 0.5 * (
            (real_logits > 0).to(z.dtype).mean() + (shuffled_logits <= 0).to(z.dtype).mean()
        )
        logged = {"tc": tc.detach(), "discriminator_accuracy": accuracy.detach()}
        return LossOutput(
            total,
            parts.reconstruction,
            parts.kl,
            parts.kl_per_dim,
            parts.kl_exact,
            logged,
            {"discriminator": d_loss},
        )

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, gamma={self.gamma:g}"
