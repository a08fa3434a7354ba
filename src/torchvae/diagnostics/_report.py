"""What the diagnostics report: the KL per dimension, active units, I(x;z), collapse."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._validation import check_positive_int, check_real
from ..posteriors import DiagonalGaussian
from ..priors import StandardNormal
from ._information import estimate_mutual_information
from ._pass import Data, check_threshold, evaluating, posterior_parts, summarize

__all__ = [
    "ActiveUnits",
    "LatentReport",
    "PosteriorCollapseWarning",
    "active_units",
    "kl_per_dimension",
    "latent_report",
    "mutual_information",
    "warn_if_collapsed",
]


class PosteriorCollapseWarning(UserWarning):
    """The latent code carries (almost) no information about the data."""


class ActiveUnits(NamedTuple):
    r"""What :func:`active_units` returns.

    Attributes:
        n_active: the number of active dimensions.
        variances: :math:`\operatorname{Var}_x \mathbb{E}_{q(z \mid x)}[z_u]` for each
            dimension, ``(latent_dim,)``.
        active: ``variances > threshold``, a bool tensor ``(latent_dim,)``.
    """

    n_active: int
    variances: Tensor
    active: Tensor


@dataclass(frozen=True)
class LatentReport:
    r"""What :func:`latent_report` returns.

    Attributes:
        kl_per_dim: mean KL of each latent dimension, nats, ``(latent_dim,)``; ``None``
            where the KL does not split over dimensions in closed form.
        kl: :math:`\mathbb{E}_x \mathrm{KL}(q(z \mid x)\,\|\,p(z))` (the sum of
            ``kl_per_dim``, or a one-sample Monte Carlo estimate per example).
        active_units: the number of active dimensions (see :func:`active_units`).
        au_variances: the variance over the data of each posterior mean.
        mutual_information: the estimate of :math:`I(x; z)` (see
            :func:`mutual_information`), nats.
        marginal_kl: :math:`\mathrm{KL}(q(z)\,\|\,p(z))` from Hoffman and Johnson's
            decomposition, ``E_x KL - I`` on the examples the MI used: large values mean
            the aggregate posterior fills the prior badly (poor samples).
        collapsed: indices of the inactive dimensions.
        n_examples: how many examples were read.
    """

    kl_per_dim: Tensor | None
    kl: float
    active_units: int
    au_variances: Tensor
    mutual_information: float
    marginal_kl: float
    collapsed: tuple[int, ...]
    n_examples: int

    @property
    def latent_dim(self) -> int:
        """The number of latent dimensions."""
        return int(self.au_variances.shape[0])

    @property
    def collapsed_fraction(self) -> float:
        """The fraction of dimensions that are inactive."""
        return len(self.collapsed) / self.latent_dim

    def scalars(self) -> dict[str, float]:
        """The report as named numbers, e.g. for TensorBoard scalars or a results file."""
        return {
            "kl": self.kl,
            "active_units": float(self.active_units),
            "mutual_information": self.mutual_information,
            "marginal_kl": self.marginal_kl,
            "collapsed_fraction": self.collapsed_fraction,
        }

    def __str__(self) -> str:
        return (
            f"active units {self.active_units}/{self.latent_dim}, "
            f"KL {self.kl:.2f} nats, I(x;z) ~ {self.mutual_information:.2f} nats, "
            f"KL(q(z)||p(z)) ~ {self.marginal_kl:.2f} nats"
        )


def kl_per_dimension(
    model: nn.Module, data: Data, y: Tensor | None = None, *, batch_size: int = 1000
) -> Tensor:
    r"""The mean closed-form KL of each latent dimension over a data set.

    .. math::
        \mathrm{KL}_u = \frac1N \sum_{n=1}^N \tfrac12\left(\mu_u(x_n)^2 + \sigma_u^2(x_n)
        - 1 - \log\sigma_u^2(x_n)\right)

    A dimension whose KL stays near 0 is one the encoder does not use.

    Args:
        model: a :class:`~torchvae.VAE`, :class:`~torchvae.ConditionalVAE` or anything
            with ``encode`` returning ``(mean, log_var)``.
        data: examples or batches (see the module's documentation).
        y: labels for tensor ``data`` and a conditional model.
        batch_size: examples encoded at once, for tensor data and datasets.

    Returns:
        ``(latent_dim,)`` float64, in nats; their sum is the data set's mean KL.

    Raises:
        ValueError: ``data`` is empty, or a conditional model gets no labels.
        TypeError: ``data`` or ``model`` has the wrong type.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(6, 8, 3), Decoder(3, 8, 6))
        >>> kl_per_dimension(model, torch.rand(50, 6)).shape
        torch.Size([3])
    """
    with evaluating(model):
        parts = posterior_parts(model)
        if not (
            isinstance(parts.posterior, DiagonalGaussian)
            and (parts.prior is None or isinstance(parts.prior, StandardNormal))
        ):
            raise ValueError(
                f"kl_per_dimension needs a KL that splits over latent dimensions in closed "
                f"form (the diagonal Gaussian posterior with the standard normal prior); this "
                f"model has {type(parts.posterior).__name__} with "
                f"{type(parts.prior).__name__}: use latent_report for its total KL"
            )
        per_dim = summarize(model, data, y, batch_size, keep=0).kl_per_dim
        assert per_dim is not None
        return per_dim


def active_units(
    model: nn.Module,
    data: Data,
    y: Tensor | None = None,
    *,
    threshold: float = 0.01,
    batch_size: int = 1000,
) -> ActiveUnits:
    r"""Count the active latent dimensions (Burda et al., 2016).

    Dimension :math:`u` is active when its posterior mean varies over the data:

    .. math::
        A_u = \operatorname{Var}_{x}\!\left(\mathbb{E}_{q(z \mid x)}[z_u]\right)
        = \operatorname{Var}_x\, \mu_u(x) > 0.01

    (the unbiased sample variance over the :math:`N` examples, accumulated in float64).

    Args:
        model: a model with ``encode`` (see :func:`kl_per_dimension`).
        data: at least two examples or batches of them.
        y: labels for tensor ``data`` and a conditional model.
        threshold: the variance above which a dimension counts as active.
        batch_size: examples encoded at once, for tensor data and datasets.

    Returns:
        An :class:`ActiveUnits` ``(n_active, variances, active)``.

    Raises:
        ValueError: fewer than two examples, a bad ``threshold``, or missing labels.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(6, 8, 3), Decoder(3, 8, 6))
        >>> active_units(model, torch.rand(50, 6)).variances.shape
        torch.Size([3])
    """
    threshold = check_threshold(threshold)
    with evaluating(model):
        summary = summarize(model, data, y, batch_size, keep=0)
    if summary.n < 2:
        raise ValueError(f"data must hold at least 2 examples for active_units, got {summary.n}")
    active = summary.au_variances > threshold
    return ActiveUnits(int(active.sum()), summary.au_variances, active)


def mutual_information(
    model: nn.Module,
    data: Data,
    y: Tensor | None = None,
    *,
    n_samples: int = 1,
    max_examples: int = 10_000,
    generator: torch.Generator | None = None,
    batch_size: int = 1000,
) -> float:
    r"""Estimate the mutual information :math:`I(x; z)` under the aggregate posterior.

    With the :math:`M` first examples :math:`x_1..x_M` of ``data``, the aggregate
    posterior is the mixture :math:`q(z) = \frac1M \sum_j q(z \mid x_j)` and

    .. math::
        \hat I = \frac{1}{MS} \sum_{i=1}^M \sum_{s=1}^S
        \left[\log q(z_{is} \mid x_i) - \log \frac1M \sum_{j=1}^M q(z_{is} \mid x_j)\right],
        \qquad z_{is} \sim q(z \mid x_i),

    the estimator of He et al. (2019, "Lagging inference networks") taken over
    :math:`M` examples instead of one minibatch. Since
    :math:`\mathbb{E}_x \mathrm{KL}(q(z \mid x)\,\|\,p(z)) = I(x; z) + \mathrm{KL}(q(z)\,\|\,p(z))`
    (Hoffman and Johnson, 2016), it tells how much of the KL the code actually uses.

    **Bias.** For the empirical distribution of the :math:`M` examples, :math:`\hat I` is
    unbiased (only Monte-Carlo noise, which can make it slightly negative when the true
    value is 0). As an estimate of the population :math:`I(x; z)` it is the InfoNCE
    bound with critic :math:`\log q(z \mid x)` (Poole et al., 2019): biased *low*, and
    never above :math:`\log M`, a cap it nears when posteriors barely overlap. Use
    ``max_examples`` well above :math:`e^{I}` for a faithful value. The cost is
    :math:`O(S M^2 d)` operations, done in float64 and in chunks of bounded memory.

    Args:
        model: a model with ``encode`` (see :func:`kl_per_dimension`).
        data: examples or batches (see the module's documentation).
        y: labels for tensor ``data`` and a conditional model.
        n_samples: :math:`S`, samples of :math:`z` per example.
        max_examples: :math:`M`, the most examples used (the first ones read).
        generator: optional random generator for the samples of :math:`z`, on any
            device (a CPU generator gives the same estimate wherever the model is).
        batch_size: examples encoded at once, for tensor data and datasets.

    Returns:
        :math:`\hat I` in nats. For a conditional model the posteriors are
        :math:`q(z \mid x, y)` and the estimate is of :math:`I((x, y); z)`.

    Raises:
        ValueError: ``data`` is empty, bad ``n_samples``/``max_examples``, or missing labels.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(6, 8, 3), Decoder(3, 8, 6))
        >>> mi = mutual_information(model, torch.rand(50, 6))
        >>> mi <= math.log(50) + 1e-6
        True
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    max_examples = check_positive_int(max_examples, "max_examples")
    with evaluating(model):
        summary = summarize(model, data, y, batch_size, keep=max_examples, generator=generator)
        return estimate_mutual_information(
            summary.stored, n_samples, generator, posterior_parts(model).posterior
        )


def latent_report(
    model: nn.Module,
    data: Data,
    y: Tensor | None = None,
    *,
    threshold: float = 0.01,
    n_samples: int = 1,
    max_examples: int = 10_000,
    generator: torch.Generator | None = None,
    batch_size: int = 1000,
) -> LatentReport:
    r"""KL per dimension, active units and mutual information in one pass over ``data``.

    Args:
        model: a model with ``encode`` (see :func:`kl_per_dimension`).
        data: at least two examples, or batches of them (see the module's documentation).
        y: labels for tensor ``data`` and a conditional model.
        threshold: active-unit threshold (see :func:`active_units`).
        n_samples: samples per example for the MI (see :func:`mutual_information`).
        max_examples: the most examples used for the MI.
        generator: optional random generator for the MI's samples.
        batch_size: examples encoded at once, for tensor data and datasets.

    Returns:
        A :class:`LatentReport`; dimensions that are not active are listed as collapsed.

    Raises:
        ValueError: fewer than two examples, bad options, or missing labels.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(6, 8, 3), Decoder(3, 8, 6))
        >>> report = latent_report(model, torch.rand(50, 6))
        >>> report.latent_dim, sorted(report.scalars())[:2]
        (3, ['active_units', 'collapsed_fraction'])
    """
    threshold = check_threshold(threshold)
    n_samples = check_positive_int(n_samples, "n_samples")
    max_examples = check_positive_int(max_examples, "max_examples")
    with evaluating(model):
        summary = summarize(model, data, y, batch_size, keep=max_examples, generator=generator)
        mi = estimate_mutual_information(
            summary.stored, n_samples, generator, posterior_parts(model).posterior
        )
        kl_subset = float(summary.stored_kl.mean())
    if summary.n < 2:
        raise ValueError(f"data must hold at least 2 examples for latent_report, got {summary.n}")
    active = summary.au_variances > threshold
    return LatentReport(
        kl_per_dim=summary.kl_per_dim,
        kl=summary.kl if summary.kl_per_dim is None else float(summary.kl_per_dim.sum()),
        active_units=int(active.sum()),
        au_variances=summary.au_variances,
        mutual_information=mi,
        marginal_kl=kl_subset - mi,
        collapsed=tuple(int(i) for i in torch.nonzero(~active).flatten()),
        n_examples=summary.n,
    )


def warn_if_collapsed(
    report: LatentReport, fraction: float | None = None, *, min_information: float = 0.05
) -> bool:
    r"""Warn with a :class:`PosteriorCollapseWarning` when the posterior has collapsed.

    Collapsed means the code carries (almost) nothing about :math:`x`: no dimension is
    active, or :math:`I(x; z)` is below ``min_information``. A model that uses only some
    of its dimensions is not collapsed: the textbook's 200-dimensional latent kept 45 to 49
    active after 5 epochs on Fashion-MNIST (two seeds), the rest at the prior, with
    :math:`I(x; z) \approx 6.8` nats; that is the model working as expected (the counts
    are in :attr:`LatentReport.active_units`, and in TensorBoard).

    Args:
        report: from :func:`latent_report`.
        fraction: optionally, also warn when more than this fraction of the dimensions
            are inactive (a stricter rule, for models meant to use most of their latent).
        min_information: warn when the estimated :math:`I(x; z)` is below this, in nats.

    Returns:
        Whether it warned.

    Raises:
        TypeError: ``report`` is not a :class:`LatentReport`, or an option not a number.
        ValueError: ``fraction`` is not in [0, 1), or ``min_information`` is negative.

    Example:
        >>> report = LatentReport(torch.zeros(2), 0.0, 2, torch.ones(2), 1.0, 0.0, (), 10)
        >>> warn_if_collapsed(report)
        False
    """
    if not isinstance(report, LatentReport):
        raise TypeError(f"report must be a LatentReport, got {type(report).__name__}")
    if fraction is not None and not (0 <= check_real(fraction, "fraction") < 1):
        raise ValueError(f"fraction must be in [0, 1) or None, got {fraction}")
    if not (0 <= check_real(min_information, "min_information") < math.inf):
        raise ValueError(f"min_information must be a finite number >= 0, got {min_information}")
    counts = f"{report.active_units} of {report.latent_dim} latent dimensions active"
    advice = "Consider KL warm-up, free bits, a smaller beta or a weaker decoder."
    mi = report.mutual_information
    if report.active_units == 0:
        why = f"no latent dimension is active ({counts}, I(x;z) ~ {mi:.3g} nats)"
    elif mi < min_information:
        why = f"I(x;z) ~ {mi:.3g} nats: the code carries almost nothing about x ({counts})"
    elif fraction is not None and len(report.collapsed) > fraction * report.latent_dim:
        why = (
            f"{len(report.collapsed)} of {report.latent_dim} latent dimensions are inactive "
            f"(more than fraction={fraction:g}), I(x;z) ~ {mi:.3g} nats"
        )
    else:
        return False
    warnings.warn(PosteriorCollapseWarning(f"posterior collapse: {why}. {advice}"), stacklevel=2)
    return True
