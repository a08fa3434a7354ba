r"""Latent diagnostics: is the posterior collapsing?

Posterior collapse is the commonest silent failure of a VAE: some (or all) latent
dimensions carry no information about :math:`x`, their posterior equals the prior and
their KL is zero, while the loss looks fine. These functions measure it on a data set:

- :func:`kl_per_dimension`: :math:`\mathbb{E}_x\,\mathrm{KL}(q(z_u \mid x)\,\|\,p(z_u))`
  for each latent dimension :math:`u`, in nats.
- :func:`active_units`: the number of dimensions whose posterior mean varies with
  :math:`x` (Burda et al., 2016).
- :func:`mutual_information`: an estimate of :math:`I(x; z)` under the aggregate
  posterior.
- :func:`latent_report` gathers all three in one pass over the data, and
  :func:`warn_if_collapsed` warns when the posterior has collapsed (no active dimension,
  or :math:`I(x; z)` near 0).

They need the model's ``encode`` (``encode(x)``, or ``encode(x, y)`` for a model with
``is_conditional = True``) and, where it has them, its posterior and prior modules
(``posterior_head`` and ``prior`` of a :class:`~torchvae.VAE`; a model without them is
taken to have the diagonal Gaussian posterior and the standard normal prior). They run
under ``torch.no_grad()`` in eval mode, and leave the train/eval mode of every submodule
as they found it.

**Which model.** The KL per dimension exists only where the KL splits over dimensions in
closed form (the diagonal Gaussian posterior with the standard normal prior):
:func:`kl_per_dimension` refuses other models, and :func:`latent_report` then reports the
total KL as a Monte Carlo estimate with ``kl_per_dim=None``. Active units use the
posterior's location (its mean; for a flow posterior the flow applied to the base mean).
The mutual information works for any posterior.

**Data.** ``data`` is a tensor of examples ``(N, ...)`` (labels, for a conditional model,
in ``y=``), a ``torch.utils.data.Dataset`` yielding ``x`` or ``(x, y)``, or any iterable
of batches ``x`` or ``(x, y, ...)`` such as a ``DataLoader``. Labels are ignored by
unconditional models.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ._validation import check_positive_int, check_real, check_tensor
from .gaussian import GaussianParams, _gaussian_kl
from .posteriors import DiagonalGaussian, Posterior
from .priors import Prior, StandardNormal

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

Data = Union[Tensor, "Dataset[Any]", Iterable[Any]]

# Rows of z scored against every stored posterior at once in mutual_information.
_MI_CHUNK_ELEMENTS = 1 << 22


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


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for module, training in modes:
            module.training = training


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _batches(data: Data, y: Tensor | None, batch_size: int) -> Iterator[tuple[Tensor, Any]]:
    if isinstance(data, Tensor):
        if data.ndim < 2:
            raise ValueError(
                f"data must have shape (N, ...), one example per row, got {tuple(data.shape)}"
            )
        if y is not None and (check_tensor(y, "y").ndim != 1 or y.shape[0] != data.shape[0]):
            raise ValueError(
                f"y must hold one label per example of data, shape ({data.shape[0]},), "
                f"got {tuple(y.shape)}"
            )
        for start in range(0, data.shape[0], batch_size):
            stop = start + batch_size
            yield data[start:stop], None if y is None else y[start:stop]
        return
    if y is not None:
        raise ValueError(
            "y= is only for tensor data; with batches, give each batch as (x, y) instead"
        )
    if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
        data = DataLoader(data, batch_size=batch_size, shuffle=False)
    if not isinstance(data, Iterable):
        raise TypeError(
            f"data must be a tensor, a Dataset or an iterable of batches, got {type(data).__name__}"
        )
    for i, batch in enumerate(data):
        if isinstance(batch, Tensor):
            yield batch, None
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], Tensor):
            yield batch[0], batch[1] if len(batch) > 1 else None
        else:
            raise TypeError(
                f"each batch of data must be a tensor x or a tuple (x, y, ...), batch {i} is "
                f"{type(batch).__name__}"
            )


class _Parts(NamedTuple):
    posterior: Posterior
    prior: Prior | None  # None: the standard normal, for a model without prior module


def _parts(model: nn.Module) -> _Parts:
    posterior = getattr(model, "posterior_head", None)
    prior = getattr(model, "prior", None)
    return _Parts(
        posterior if isinstance(posterior, Posterior) else DiagonalGaussian(),
        prior if isinstance(prior, Prior) else None,
    )


def _posteriors(
    model: nn.Module, data: Data, y: Tensor | None, batch_size: int
) -> Iterator[tuple[GaussianParams, Tensor | None]]:
    """Encode every batch of ``data``; the caller holds :func:`_evaluating`."""
    batch_size = check_positive_int(batch_size, "batch_size")
    encode = getattr(model, "encode", None)
    if not callable(encode):
        raise TypeError(
            f"model must have an encode method returning (mean, log_var), "
            f"got {type(model).__name__}"
        )
    conditional = bool(getattr(model, "is_conditional", False))
    device = _model_device(model)
    for x, labels in _batches(data, y, batch_size):
        if x.device.type == "meta" and device.type != "meta":
            raise ValueError("data is a meta tensor, which holds no values to compute with")
        x = x.to(device)
        if conditional:
            if labels is None:
                raise ValueError(
                    f"{type(model).__name__} is conditional: give labels, as batches (x, y) "
                    f"or, for tensor data, y="
                )
            labels = labels.to(device)
            mean, log_var = encode(x, labels)
        else:
            mean, log_var = encode(x)
            labels = None
        yield GaussianParams(mean, log_var), labels


def _kl_terms(
    parts: _Parts, q: GaussianParams, y: Tensor | None, generator: torch.Generator | None
) -> tuple[Tensor | None, Tensor]:
    """``(KL per example and dimension or None, KL per example)`` in float64."""
    if parts.prior is None or isinstance(parts.prior, StandardNormal):
        if isinstance(parts.posterior, DiagonalGaussian):
            per_dim = _gaussian_kl(q.mean.double(), q.log_var.double())
            return per_dim, per_dim.sum(-1)
    elif isinstance(parts.posterior, DiagonalGaussian):
        closed = parts.prior.kl_closed_form(parts.posterior, q, y)
        if closed is not None:
            closed = closed.double()
            return (closed, closed.sum(-1)) if closed.ndim == 2 else (None, closed)
    noise = None if generator is None or generator.device == q.mean.device else generator
    z, log_q = parts.posterior.rsample_and_log_prob(q, None, noise)
    if parts.prior is None:
        log_p = -0.5 * (z.square() + math.log(2 * math.pi)).sum(-1)
    else:
        log_p = parts.prior.log_prob(z, y)
    return None, (log_q - log_p).double()


class _Moments:
    """Running mean and sum of squared deviations (Chan et al.'s pairwise update), float64."""

    def __init__(self) -> None:
        self.n = 0
        self.mean = torch.zeros(())
        self.m2 = torch.zeros(())

    def update(self, values: Tensor) -> None:
        values = values.double()
        n_b = values.shape[0]
        if n_b == 0:
            return
        mean_b = values.mean(0)
        m2_b = ((values - mean_b) ** 2).sum(0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / n)
        self.n = n

    def variance(self) -> Tensor:
        return self.m2 / (self.n - 1)


class _Summary(NamedTuple):
    kl_per_dim: Tensor | None
    kl: float
    au_variances: Tensor
    stored: GaussianParams
    stored_kl: Tensor
    n: int


def _summarize(
    model: nn.Module,
    data: Data,
    y: Tensor | None,
    batch_size: int,
    keep: int,
    generator: torch.Generator | None = None,
) -> _Summary:
    """One pass: mean KL (per dim where it splits), variance of the posterior locations,
    the first ``keep`` posteriors and their KLs."""
    parts = _parts(model)
    kl_dims: Tensor | None = None
    kl_total = 0.0
    split = True
    moments = _Moments()
    stored: list[GaussianParams] = []
    stored_kl: list[Tensor] = []
    kept = 0
    for q, labels in _posteriors(model, data, y, batch_size):
        per_dim, per_example = _kl_terms(parts, q, labels, generator)
        kl_total += float(per_example.sum())
        if per_dim is None:
            split = False
        elif split:
            kl_dims = per_dim.sum(0) if kl_dims is None else kl_dims + per_dim.sum(0)
        moments.update(parts.posterior.location(q))
        if kept < keep:
            take = keep - kept
            stored.append(GaussianParams(q.mean[:take], q.log_var[:take]))
            stored_kl.append(per_example[:take])
            kept += stored[-1].mean.shape[0]
    if moments.n == 0:
        raise ValueError("data holds no examples")
    params = (
        GaussianParams(torch.cat([s.mean for s in stored]), torch.cat([s.log_var for s in stored]))
        if stored
        else GaussianParams(torch.empty(0), torch.empty(0))
    )
    per_dim_mean = kl_dims / moments.n if split and kl_dims is not None else None
    kls = torch.cat(stored_kl) if stored_kl else torch.empty(0, dtype=torch.float64)
    return _Summary(per_dim_mean, kl_total / moments.n, moments.variance(), params, kls, moments.n)


def _check_threshold(threshold: float) -> float:
    threshold = check_real(threshold, "threshold")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite float >= 0, got {threshold}")
    return float(threshold)


def _log_aggregate_gaussian(z: Tensor, q: GaussianParams) -> Tensor:
    r""":math:`\log \frac1M \sum_j \mathcal{N}(z_i; \mu_j, \sigma_j^2)` for each row of ``z``."""
    mean, log_var = q.mean, q.log_var
    m, d = mean.shape
    # log N(z; mu_j, var_j) for all j at once as matrix products:
    # -1/2 [ z^2 . (1/var_j) - 2 z . (mu_j/var_j) + sum(mu_j^2/var_j + log var_j + log 2pi) ]
    precision = torch.exp(-log_var)
    scaled_mean = mean * precision
    const = (mean * scaled_mean + log_var).sum(1) + d * math.log(2 * math.pi)
    rows = max(1, _MI_CHUNK_ELEMENTS // m)
    return torch.cat(
        [
            torch.logsumexp(
                -0.5 * (zc.square() @ precision.T - 2 * zc @ scaled_mean.T + const), dim=1
            )
            for zc in torch.split(z, rows)
        ]
    ) - math.log(m)


def _log_aggregate(z: Tensor, q: GaussianParams, posterior: Posterior) -> Tensor:
    r"""The same for any posterior, from its density at every pair, in bounded chunks."""
    m = q.mean.shape[0]
    rows = max(1, _MI_CHUNK_ELEMENTS // (64 * m))  # room for a flow's hidden layers
    return torch.cat(
        [
            torch.logsumexp(posterior.log_prob(zc[:, None, :], q).double(), dim=1)
            for zc in torch.split(z, rows)
        ]
    ) - math.log(m)


def _mutual_information(
    q: GaussianParams,
    n_samples: int,
    generator: torch.Generator | None,
    posterior: Posterior | None = None,
) -> float:
    """The MI estimate on the stored posteriors."""
    gaussian = posterior is None or isinstance(posterior, DiagonalGaussian)
    mean, log_var = (q.mean.double(), q.log_var.double()) if gaussian else (q.mean, q.log_var)
    m, d = mean.shape
    params = GaussianParams(mean, log_var)
    if gaussian:
        # Noise drawn on the generator's own device, so a CPU generator gives the same
        # estimate for a model on any device.
        eps = torch.randn(
            (n_samples, m, d),
            generator=generator,
            dtype=mean.dtype,
            device=mean.device if generator is None else generator.device,
        ).to(mean.device)
    if gaussian:
        z = mean + params.std * eps
        log_own = params.log_prob(z).reshape(-1)
        log_aggregate = _log_aggregate_gaussian(z.reshape(-1, d), params)
    else:
        assert posterior is not None
        same = generator is None or generator.device == mean.device
        z, log_q = posterior.rsample_and_log_prob(params, n_samples, generator if same else None)
        log_own = log_q.reshape(-1).double()
        log_aggregate = _log_aggregate(z.reshape(-1, d), params, posterior)
    mi = float((log_own - log_aggregate).mean())
    if math.isnan(mi):
        raise ValueError(
            f"data gives posteriors too extreme for the mutual information estimate "
            f"(largest |mean| {float(mean.abs().max()):g}, log_var in "
            f"[{float(log_var.min()):g}, {float(log_var.max()):g}]): scale the data"
        )
    return mi


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
    with _evaluating(model):
        parts = _parts(model)
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
        per_dim = _summarize(model, data, y, batch_size, keep=0).kl_per_dim
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
    threshold = _check_threshold(threshold)
    with _evaluating(model):
        summary = _summarize(model, data, y, batch_size, keep=0)
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
    with _evaluating(model):
        summary = _summarize(model, data, y, batch_size, keep=max_examples, generator=generator)
        return _mutual_information(summary.stored, n_samples, generator, _parts(model).posterior)


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
    threshold = _check_threshold(threshold)
    n_samples = check_positive_int(n_samples, "n_samples")
    max_examples = check_positive_int(max_examples, "max_examples")
    with _evaluating(model):
        summary = _summarize(model, data, y, batch_size, keep=max_examples, generator=generator)
        mi = _mutual_information(summary.stored, n_samples, generator, _parts(model).posterior)
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
