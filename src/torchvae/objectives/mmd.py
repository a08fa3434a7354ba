r"""Maximum mean discrepancy between the codes and the prior: InfoVAE / MMD-VAE and WAE-MMD.

The MMD of two distributions under a kernel :math:`k` is the distance between their mean
embeddings; from :math:`n` samples :math:`z_i \sim q` and :math:`m` samples
:math:`\tilde z_j \sim p` its square has the unbiased estimate (Gretton et al., 2012)

.. math::
    \widehat{\mathrm{MMD}}^2_u = \frac{1}{n(n-1)}\sum_{i \neq i'} k(z_i, z_{i'})
    + \frac{1}{m(m-1)}\sum_{j \neq j'} k(\tilde z_j, \tilde z_{j'})
    - \frac{2}{nm}\sum_{i, j} k(z_i, \tilde z_j),

zero in expectation when :math:`q = p` (so a single estimate may be slightly negative).
Two kernels, both with the scale :math:`C = 2\,d_z\,\sigma_z^2` that Tolstikhin et al.
(2018) set from the latent dimension :math:`d_z` (:math:`\sigma_z^2 = 1` for
:math:`\mathcal{N}(0, I)`: the mean squared distance between two of its draws):

.. math::
    k_{\text{rbf}}(z, z') = \exp\!\left(-\frac{\lVert z - z'\rVert^2}{C}\right), \qquad
    k_{\text{imq}}(z, z') = \frac{C}{C + \lVert z - z'\rVert^2}.

The inverse multiquadric has heavier tails, so it still pulls samples far from the prior's
mass; WAE uses it. Several scales :math:`s\,C` may be summed (``scales=``).

The objectives match the aggregate posterior :math:`q(z)` (one sample of
:math:`q(z \mid x)` per example of the batch) to the prior (as many draws from
``prior.sample``, or from :math:`\mathcal{N}(0, I)`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from .._validation import check_floating
from ..likelihoods import Likelihood, check_likelihood
from ..models.vae import VAEOutput
from ..priors import Prior, StandardNormal
from ._objective import bound_parts, check_weight, one_sample
from .losses import LossOutput

__all__ = ["InfoVAELoss", "Kernel", "WAELoss", "kernel_matrix", "mmd"]

Kernel = Literal["rbf", "imq"]
"""The kernels: Gaussian (``"rbf"``) or inverse multiquadric (``"imq"``)."""


def _check_kernel(kernel: object) -> Kernel:
    if kernel not in ("rbf", "imq"):
        raise ValueError(f"kernel must be 'rbf' or 'imq', got {kernel!r}")
    return kernel


def _check_scales(scales: object) -> tuple[float, ...]:
    if isinstance(scales, (int, float)) and not isinstance(scales, bool):
        scales = (scales,)
    if not isinstance(scales, Sequence) or isinstance(scales, str) or not scales:
        raise TypeError(f"scales must be a non-empty sequence of floats, got {scales!r}")
    return tuple(check_weight(s, "scales", positive=True) for s in scales)


def kernel_matrix(
    x: Tensor,
    y: Tensor,
    kernel: Kernel = "imq",
    scale: float | None = None,
    scales: Sequence[float] = (1.0,),
) -> Tensor:
    r"""The kernel between every row of ``x`` ``(n, d)`` and of ``y`` ``(m, d)``: ``(n, m)``.

    Args:
        x: ``(n, d)``.
        y: ``(m, d)``.
        kernel: ``"imq"`` or ``"rbf"`` (see the module notes).
        scale: :math:`C`; default :math:`2d` (Tolstikhin et al. for :math:`\mathcal{N}(0,
            I)`).
        scales: multipliers :math:`s`; the result is :math:`\sum_s k_{sC}`.

    Example:
        >>> kernel_matrix(torch.zeros(2, 3), torch.zeros(4, 3))
        tensor([[1., 1., 1., 1.],
                [1., 1., 1., 1.]])
    """
    kernel = _check_kernel(kernel)
    x, y = check_floating(x, "x"), check_floating(y, "y")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have shapes (n, d) and (m, d) with one d, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    base = 2.0 * x.shape[1] if scale is None else check_weight(scale, "scale", positive=True)
    return _kernel(x, y, kernel, [base * s for s in _check_scales(scales)])


def _kernel(x: Tensor, y: Tensor, kernel: Kernel, widths: Sequence[float]) -> Tensor:
    # The Gram form needs B^2 memory where the differences would need B^2 d; its rounding
    # is far below the kernel's scale C = 2d.
    sq = (x.square().sum(1, keepdim=True) + y.square().sum(1) - 2.0 * x @ y.T).clamp_min(0)
    out = torch.zeros_like(sq)
    for c in widths:
        out = out + (torch.exp(-sq / c) if kernel == "rbf" else c / (c + sq))
    return out


def mmd(
    x: Tensor,
    y: Tensor,
    kernel: Kernel = "imq",
    scale: float | None = None,
    scales: Sequence[float] = (1.0,),
) -> Tensor:
    r"""The unbiased estimate :math:`\widehat{\mathrm{MMD}}^2_u` between samples ``x`` and ``y``.

    Args:
        x: samples of the first distribution, ``(n, d)``, :math:`n \geq 2`.
        y: samples of the second, ``(m, d)``, :math:`m \geq 2`.
        kernel: ``"imq"`` (the default) or ``"rbf"``.
        scale: the kernel's :math:`C`; default :math:`2d`.
        scales: multipliers of :math:`C` whose kernels are summed.

    Returns:
        A scalar, differentiable in ``x`` and ``y``; near 0 (either sign) for samples of one
        distribution, positive for different ones given enough samples.

    Raises:
        TypeError: ``x`` or ``y`` is not a floating-point tensor.
        ValueError: their shapes do not fit, fewer than 2 rows, or a bad kernel or scale.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> far = mmd(torch.randn(200, 2, generator=g), torch.randn(200, 2, generator=g) + 3)
        >>> bool(far > 0.1)
        True
    """
    kernel = _check_kernel(kernel)
    x, y = check_floating(x, "x"), check_floating(y, "y")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have shapes (n, d) and (m, d) with one d, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(
            f"the unbiased MMD needs at least 2 samples of each distribution, got {n} and {m} "
            f"(drop the last batch, e.g. TensorLoader(..., drop_last=True))"
        )
    base = 2.0 * x.shape[1] if scale is None else check_weight(scale, "scale", positive=True)
    widths = [base * s for s in _check_scales(scales)]
    kxx, kyy, kxy = (_kernel(a, b, kernel, widths) for a, b in ((x, x), (y, y), (x, y)))
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kxy.mean()


class _MMDObjective(nn.Module):
    """The prior, kernel and MMD shared by :class:`InfoVAELoss` and :class:`WAELoss`."""

    def __init__(
        self,
        prior: Prior | None,
        kernel: Kernel,
        scale: float | None,
        scales: Sequence[float],
        likelihood: Likelihood | None,
    ) -> None:
        super().__init__()
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError(
                f"prior must be a torchvae Prior (pass prior=model.prior) or None for "
                f"N(0, I), got {type(prior).__name__}"
            )
        # Not a submodule: the prior's parameters belong to the model (its optimizer, its
        # file); the loss only draws from it.
        self._prior_ref = (prior,)
        self.kernel = _check_kernel(kernel)
        self.scale = None if scale is None else check_weight(scale, "scale", positive=True)
        self.scales = _check_scales(scales)
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    @property
    def prior(self) -> Prior | None:
        """The prior the codes are matched to; ``None`` for :math:`\\mathcal{N}(0, I)`."""
        return self._prior_ref[0]

    def _prior_samples(self, out: VAEOutput, z: Tensor, who: str) -> Tensor:
        prior = self.prior
        if prior is None:
            if out.kl is not None and out.kl_per_dim is None:
                raise ValueError(
                    f"{who} matches the codes to N(0, I) by default, but this model's prior "
                    f"may be another (its KL has no closed form per dimension): pass "
                    f"prior=model.prior"
                )
            return torch.randn_like(z)
        if prior.num_classes is not None and not isinstance(prior, StandardNormal):
            raise ValueError(
                f"{who} draws from the prior without labels; this prior is conditioned on "
                f"{prior.num_classes} classes"
            )
        if prior.latent_dim != z.shape[1]:
            raise ValueError(
                f"the prior has latent_dim={prior.latent_dim}, the model's z has "
                f"{z.shape[1]} dimensions: pass prior=model.prior"
            )
        return prior.sample(z.shape[0]).to(z)

    def _mmd(self, out: VAEOutput, who: str) -> tuple[Tensor, Tensor]:
        z = one_sample(out, who)
        return z, mmd(z, self._prior_samples(out, z, who), self.kernel, self.scale, self.scales)

    def _repr(self) -> str:
        scale = "2 * latent_dim" if self.scale is None else f"{self.scale:g}"
        return f"kernel={self.kernel!r}, scale={scale}, scales={self.scales}"


class InfoVAELoss(_MMDObjective):
    r"""InfoVAE (Zhao et al., 2019) with the MMD divergence; ``alpha=1`` gives the MMD-VAE.

    .. math::
        \text{total} = -\frac1B\sum_b \log p_\theta(x_b \mid z_b)
        + (1 - \alpha)\,\frac1B\sum_b \mathrm{KL}_b
        + (\alpha + \lambda - 1)\,\widehat{\mathrm{MMD}}^2_u\!\left(q(z), p(z)\right)

    :math:`\alpha` trades the mutual information between :math:`x` and :math:`z` (the
    ELBO's KL term penalizes it; :math:`\alpha = 1` removes that penalty) and
    :math:`\lambda` weights the divergence of the aggregate posterior from the prior.
    Both weights must be >= 0: :math:`\alpha \le 1` and :math:`\alpha + \lambda \ge 1`.
    ``LossOutput.terms["mmd"]`` is the estimate. Works with any prior and posterior of
    the model; pass ``prior=model.prior`` unless it is :math:`\mathcal{N}(0, I)`.

    Args:
        alpha: :math:`\alpha`.
        lambda_: :math:`\lambda`.
        kernel: ``"rbf"`` (the default here) or ``"imq"``.
        scale: the kernel's :math:`C`; default :math:`2 d_z`.
        scales: multipliers of :math:`C` whose kernels are summed.
        prior: the model's prior (``model.prior``) to draw from; ``None``: :math:`\mathcal{N}
            (0, I)`.
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> x = torch.rand(32, 16)
        >>> out = InfoVAELoss(alpha=1.0, lambda_=100.0)(model(x), x)
        >>> sorted(out.terms)
        ['mmd']
    """

    def __init__(
        self,
        alpha: float = 0.0,
        lambda_: float = 1000.0,
        kernel: Kernel = "rbf",
        scale: float | None = None,
        scales: Sequence[float] = (1.0,),
        prior: Prior | None = None,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__(prior, kernel, scale, scales, likelihood)
        for value, name in ((alpha, "alpha"), (lambda_, "lambda_")):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{name} must be a float, got {type(value).__name__}")
        self.alpha, self.lambda_ = float(alpha), float(lambda_)
        check_weight(1.0 - self.alpha, "the KL weight 1 - alpha")
        check_weight(self.alpha + self.lambda_ - 1.0, "the MMD weight alpha + lambda_ - 1")

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss and its parts (``out = model(x)``)."""
        parts = bound_parts(out, x, self.likelihood, "InfoVAELoss")
        _, divergence = self._mmd(out, "InfoVAELoss")
        kl_weight, mmd_weight = 1.0 - self.alpha, self.alpha + self.lambda_ - 1.0
        total = parts.reconstruction + kl_weight * parts.kl + mmd_weight * divergence
        return LossOutput(
            total,
            parts.reconstruction,
            parts.kl,
            parts.kl_per_dim,
            parts.kl_exact,
            {"mmd": divergence.detach()},
        )

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, lambda_={self.lambda_:g}, {self._repr()}"


class WAELoss(_MMDObjective):
    r"""The Wasserstein autoencoder with the MMD penalty, WAE-MMD (Tolstikhin et al., 2018).

    .. math::
        \text{total} = -\frac1B\sum_b \log p_\theta(x_b \mid z_b)
        + \lambda\,\widehat{\mathrm{MMD}}^2_u\!\left(q(z), p(z)\right)

    The paper's reconstruction cost :math:`c(x, G(z))` is here the model's negative
    log-likelihood (the squared error, up to a constant, for a Gaussian likelihood with a
    fixed scale), and :math:`z` is the model's sample of :math:`q(z \mid x)` (the paper
    allows a deterministic encoder; the KL to the prior is not penalized, so the model
    may shrink its variances). ``LossOutput.kl`` is still reported and
    ``LossOutput.terms["mmd"]`` is the estimate.

    Args:
        lambda_: :math:`\lambda` (the paper: 10 on MNIST, 100 on CelebA).
        kernel: ``"imq"`` (the paper's, the default) or ``"rbf"``.
        scale: the kernel's :math:`C`; default :math:`2 d_z`, the paper's for
            :math:`\mathcal{N}(0, I)`.
        scales: multipliers of :math:`C` whose kernels are summed (the paper's code sums
            several).
        prior: the model's prior (``model.prior``) to draw from; ``None``: :math:`\mathcal{N}
            (0, I)`.
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(16, 8, 3), Decoder(3, 8, 16))
        >>> x = torch.rand(32, 16)
        >>> WAELoss(lambda_=10.0)(model(x), x).total.shape
        torch.Size([])
    """

    def __init__(
        self,
        lambda_: float = 10.0,
        kernel: Kernel = "imq",
        scale: float | None = None,
        scales: Sequence[float] = (1.0,),
        prior: Prior | None = None,
        likelihood: Likelihood | None = None,
    ) -> None:
        super().__init__(prior, kernel, scale, scales, likelihood)
        self.lambda_ = check_weight(lambda_, "lambda_")

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """Compute the loss and its parts (``out = model(x)``)."""
        parts = bound_parts(out, x, self.likelihood, "WAELoss")
        _, divergence = self._mmd(out, "WAELoss")
        total = parts.reconstruction + self.lambda_ * divergence
        return LossOutput(
            total,
            parts.reconstruction,
            parts.kl,
            parts.kl_per_dim,
            parts.kl_exact,
            {"mmd": divergence.detach()},
        )

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_:g}, {self._repr()}"
