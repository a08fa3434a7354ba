r"""Objectives of the VQ-VAE family: the VQ-VAE's own loss, and its code prior's.

**VQLoss** (van den Oord et al., 2017, eq. 3), per example, in the project's units (nats
per example for the reconstruction, mean over the batch):

.. math::
    \mathcal{L} = \underbrace{-\log p_\theta(x \mid z_q(x))}_{\text{reconstruction}}
    + \underbrace{\lVert \operatorname{sg}(z_e(x)) - z_q \rVert^2}_{\text{codebook}}
    + \beta\, \underbrace{\lVert z_e(x) - \operatorname{sg}(z_q) \rVert^2}_{\text{commitment}},

the squared norms summed over the code map's positions and dimensions
(``reduction="sum"``, the paper's) or averaged over them (``reduction="mean"``, as in
Sonnet and pythae, whose :math:`\beta` then means the same). With an EMA codebook the
codebook term is zero (the codes follow moving averages instead).

What the :class:`~torchvae.Trainer` reads: ``total`` (minimized), ``reconstruction`` (the
first term) and ``kl``, which for a VQ-VAE holds the **latent penalty**, codebook
:math:`+\ \beta\,\cdot` commitment, so that ``total = reconstruction + kl`` as for the
ELBO. It is *not* a KL: the VQ-VAE's KL from its point-mass posterior to a uniform prior
over the codes is the constant :math:`hw \log K`, which changes nothing in training and is
logged as the term ``kl_uniform``. The terms ``codebook``, ``commitment`` (both reduced
as the loss uses them, before :math:`\beta`), ``perplexity`` and ``usage`` are logged too.

**CodePriorLoss**: the negative log-likelihood :math:`-\log p_\psi(k)` of code maps under
a :class:`~torchvae.PixelCNNPrior`, in nats per map (``reconstruction``; ``kl`` is 0).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from ..models.code_prior import CodePriorOutput
from ..models.vqvae import VQVAEOutput
from .losses import LossOutput

__all__ = ["CodePriorLoss", "VQLoss"]

Reduction = Literal["sum", "mean"]


def _check_beta(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"beta must be a float, got {type(value).__name__}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"beta must be a finite float >= 0, got {value}")
    return float(value)


class VQLoss(nn.Module):
    r"""The VQ-VAE objective: reconstruction, codebook and :math:`\beta` commitment terms.

    See the module's description for the formula and for what each field of the
    returned :class:`~torchvae.LossOutput` holds.

    Args:
        beta: :math:`\beta`, the commitment weight (the paper's 0.25 by default).
        reduction: ``"sum"`` (the squared norms over the whole code map, per example) or
            ``"mean"`` (divided by the number of latent values :math:`D \cdot h \cdot w`).

    Example:
        >>> from torchvae import VQVAE, Codebook, VQDecoder, VQEncoder
        >>> model = VQVAE(VQEncoder(embedding_dim=4), VQDecoder(embedding_dim=4), Codebook(16, 4))
        >>> x = torch.rand(2, 1, 28, 28)
        >>> losses = VQLoss()(model(x), x)
        >>> bool(torch.isclose(losses.total, losses.reconstruction + losses.kl))
        True
        >>> sorted(losses.terms)
        ['codebook', 'commitment', 'kl_uniform', 'perplexity', 'usage']
    """

    def __init__(self, beta: float = 0.25, reduction: Reduction = "sum") -> None:
        super().__init__()
        self.beta = beta
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        self.reduction: Reduction = reduction

    @property
    def beta(self) -> float:
        r"""The commitment weight :math:`\beta` (finite, >= 0)."""
        return self._beta

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta = _check_beta(value)

    def forward(self, out: VQVAEOutput, x: Tensor) -> LossOutput:
        """The loss and its parts for ``out = model(x)``."""
        if not isinstance(out, VQVAEOutput):
            raise TypeError(
                f"out must be the VQVAEOutput a VQVAE's forward returns, got {type(out).__name__}"
            )
        if not isinstance(x, Tensor) or tuple(x.shape) != tuple(out.logits.shape):
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"x must be the batch the model was called with, of shape "
                f"{tuple(out.logits.shape)}; got {got}"
            )
        scale = 1.0 if self.reduction == "sum" else 1.0 / out.z_e[0].numel()
        reconstruction = -out.log_px_z.mean()
        codebook = out.codebook_loss.mean() * scale
        commitment = out.commitment.mean() * scale
        penalty = codebook + self._beta * commitment
        positions = out.indices[0].numel()
        kl_uniform = torch.full_like(reconstruction, positions * math.log(out.num_codes))
        terms = {
            "codebook": codebook.detach(),
            "commitment": commitment.detach(),
            "perplexity": out.perplexity.detach(),
            "usage": out.usage.detach(),
            "kl_uniform": kl_uniform,
        }
        return LossOutput(reconstruction + penalty, reconstruction, penalty, None, True, terms)

    def extra_repr(self) -> str:
        return f"beta={self._beta:g}, reduction={self.reduction!r}"


class CodePriorLoss(nn.Module):
    r"""The negative log-likelihood of code maps under a :class:`~torchvae.PixelCNNPrior`.

    ``total`` and ``reconstruction`` are :math:`-\frac1B \sum_b \log p_\psi(k_b)` in nats
    per map; ``kl`` is 0 (so the Trainer's ``bits_per_dim`` is bits per code).

    Example:
        >>> from torchvae import PixelCNNPrior
        >>> prior = PixelCNNPrior(num_codes=8, code_shape=(3, 3), channels=8, layers=2)
        >>> codes = torch.randint(8, (4, 3, 3)).float()
        >>> float(CodePriorLoss()(prior(codes), codes).total) > 0
        True
    """

    def forward(self, out: CodePriorOutput, codes: Tensor) -> LossOutput:
        """The loss for ``out = prior(codes)``."""
        if not isinstance(out, CodePriorOutput):
            raise TypeError(
                f"out must be the CodePriorOutput a PixelCNNPrior returns, got {type(out).__name__}"
            )
        nll = -out.log_prob.mean()
        return LossOutput(nll, nll, torch.zeros_like(nll), None, True)
