"""One pass over the data: the posteriors, their KL, the moments of their locations."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, Union

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .._validation import check_positive_int, check_real, check_tensor
from ..gaussian import GaussianParams, _gaussian_kl
from ..posteriors import DiagonalGaussian, Posterior
from ..priors import Prior, StandardNormal

__all__ = [
    "Moments",
    "Parts",
    "Summary",
    "batches_of",
    "check_threshold",
    "evaluating",
    "kl_terms",
    "model_device",
    "posterior_parts",
    "posteriors_of",
    "summarize",
]


Data = Union[Tensor, "Dataset[Any]", Iterable[Any]]


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
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


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def batches_of(data: Data, y: Tensor | None, batch_size: int) -> Iterator[tuple[Tensor, Any]]:
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


class Parts(NamedTuple):
    posterior: Posterior
    prior: Prior | None  # None: the standard normal, for a model without prior module


def posterior_parts(model: nn.Module) -> Parts:
    posterior = getattr(model, "posterior_head", None)
    prior = getattr(model, "prior", None)
    return Parts(
        posterior if isinstance(posterior, Posterior) else DiagonalGaussian(),
        prior if isinstance(prior, Prior) else None,
    )


def posteriors_of(
    model: nn.Module, data: Data, y: Tensor | None, batch_size: int
) -> Iterator[tuple[GaussianParams, Tensor | None]]:
    """Encode every batch of ``data``; the caller holds :func:`evaluating`."""
    batch_size = check_positive_int(batch_size, "batch_size")
    encode = getattr(model, "encode", None)
    if not callable(encode):
        raise TypeError(
            f"model must have an encode method returning (mean, log_var), "
            f"got {type(model).__name__}"
        )
    conditional = bool(getattr(model, "is_conditional", False))
    device = model_device(model)
    for x, labels in batches_of(data, y, batch_size):
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


def kl_terms(
    parts: Parts, q: GaussianParams, y: Tensor | None, generator: torch.Generator | None
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


class Moments:
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


class Summary(NamedTuple):
    kl_per_dim: Tensor | None
    kl: float
    au_variances: Tensor
    stored: GaussianParams
    stored_kl: Tensor
    n: int


def summarize(
    model: nn.Module,
    data: Data,
    y: Tensor | None,
    batch_size: int,
    keep: int,
    generator: torch.Generator | None = None,
) -> Summary:
    """One pass: mean KL (per dim where it splits), variance of the posterior locations,
    the first ``keep`` posteriors and their KLs."""
    parts = posterior_parts(model)
    kl_dims: Tensor | None = None
    kl_total = 0.0
    split = True
    moments = Moments()
    stored: list[GaussianParams] = []
    stored_kl: list[Tensor] = []
    kept = 0
    for q, labels in posteriors_of(model, data, y, batch_size):
        per_dim, per_example = kl_terms(parts, q, labels, generator)
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
    return Summary(per_dim_mean, kl_total / moments.n, moments.variance(), params, kls, moments.n)


def check_threshold(threshold: float) -> float:
    threshold = check_real(threshold, "threshold")
    if not (math.isfinite(threshold) and threshold >= 0):
        raise ValueError(f"threshold must be a finite float >= 0, got {threshold}")
    return float(threshold)
