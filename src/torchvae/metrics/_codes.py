"""Representations, and the codes of images drawn from a factor data set."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_positive_int
from ..data.factors import FactorDataset

__all__ = [
    "Representation",
    "codes_for",
    "make_generator",
    "model_representation",
    "resolve_device",
    "sample_codes",
    "work_dtype",
]

Representation = Callable[[Tensor], Tensor]
"""A function from images ``(n, *image_shape)`` to codes ``(n, d)``."""


def _mean_of(out: Any) -> Tensor:
    if isinstance(out, Tensor):
        return out
    mean = getattr(out, "mean", None)
    if isinstance(mean, Tensor):  # GaussianParams, any NamedTuple with .mean, a Distribution
        return mean
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    raise TypeError(
        f"the model's encoder returned {type(out).__name__}; expected a tensor, an object "
        f"with a tensor attribute .mean, or a tuple whose first item is the mean"
    )


def model_representation(model: nn.Module) -> Representation:
    r"""The posterior mean :math:`\mu_\phi(x)` of a model, as a representation for the metrics.

    Uses ``model.posterior_mean(x)`` when the model has one, else ``model.encode(x)``;
    from what either returns it takes the tensor itself, its ``.mean`` (a
    :class:`~torchvae.GaussianParams`, a NamedTuple, a ``torch.distributions`` object) or
    its first item (a ``(mean, log_var)`` tuple). Images are moved to the model's device
    and dtype, the model runs in eval mode under ``torch.no_grad()`` (its previous mode is
    restored), and the codes are flattened to ``(n, d)``.

    Args:
        model: A torchvae model or any module with ``encode`` or ``posterior_mean``.

    Raises:
        TypeError: The model has neither method.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> rep = model_representation(VAE(Encoder(4096, 32, 6), Decoder(6, 32, 4096)))
        >>> rep(torch.rand(3, 1, 64, 64)).shape
        torch.Size([3, 6])
    """
    fn = getattr(model, "posterior_mean", None)
    if not callable(fn):
        fn = getattr(model, "encode", None)
    if not callable(fn):
        raise TypeError(
            f"model ({type(model).__name__}) has neither posterior_mean(x) nor encode(x)"
        )
    encode: Callable[[Tensor], Any] = fn

    def representation(x: Tensor) -> Tensor:
        param = next(iter(model.parameters()), None)
        if param is not None:
            x = x.to(param.device, param.dtype)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                mean = _mean_of(encode(x))
        finally:
            model.train(was_training)
        return mean.reshape(mean.shape[0], -1)

    return representation


def make_generator(seed: int | torch.Generator) -> torch.Generator:
    """A CPU generator: ``seed`` itself, or a new one seeded with the int."""
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise ValueError(f"seed must be a CPU torch.Generator, got one on {seed.device}")
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def resolve_device(device: torch.device | str | None) -> torch.device:
    """``device`` as a ``torch.device``; the CPU by default."""
    return torch.device("cpu") if device is None else torch.device(device)


def work_dtype(device: torch.device) -> torch.dtype:
    """float64 for the metrics' arithmetic, except where the device has none (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def check_dataset(dataset: object) -> FactorDataset:
    """Return ``dataset`` if it is a :class:`~torchvae.FactorDataset` with two factors or more."""
    if not isinstance(dataset, FactorDataset):
        raise TypeError(f"dataset must be a torchvae.FactorDataset, got {type(dataset).__name__}")
    if dataset.num_factors < 1:
        raise ValueError("dataset has no factors")
    return dataset


def codes_for(
    representation: Representation,
    dataset: FactorDataset,
    factors: Tensor,
    eval_batch_size: int,
    device: torch.device,
) -> Tensor:
    """The codes ``(n, d)`` of the images of ``factors``, in the metric's dtype on ``device``.

    Images are made ``eval_batch_size`` at a time and moved to ``device`` before
    ``representation`` sees them.

    Raises:
        TypeError: ``representation`` is not callable or returns no floating tensor.
        ValueError: The codes have the wrong shape, differ in width, or hold NaN/inf.
    """
    if not callable(representation):
        raise TypeError(
            f"representation must be a callable x -> codes, got {type(representation).__name__};"
            f" for a model use torchvae.metrics.model_representation(model)"
        )
    eval_batch_size = check_positive_int(eval_batch_size, "eval_batch_size")
    dtype = work_dtype(device)
    chunks = []
    width = None
    for start in range(0, factors.shape[0], eval_batch_size):
        chunk = factors[start : start + eval_batch_size]
        codes = representation(dataset.images_for(chunk).to(device))
        if not isinstance(codes, Tensor) or not codes.is_floating_point():
            raise TypeError(
                f"representation must return a floating-point tensor of codes, got "
                f"{codes.dtype if isinstance(codes, Tensor) else type(codes).__name__}"
            )
        if codes.dim() != 2 or codes.shape[0] != chunk.shape[0] or codes.shape[1] < 1:
            raise ValueError(
                f"representation must return codes of shape (n, d) = ({chunk.shape[0]}, d) for "
                f"{chunk.shape[0]} images, got {tuple(codes.shape)}"
            )
        if width is not None and codes.shape[1] != width:
            raise ValueError(f"representation returned {codes.shape[1]} codes, then {width}")
        width = codes.shape[1]
        codes = codes.detach().to(device, dtype)
        if not bool(torch.isfinite(codes).all()):
            raise ValueError("representation returned NaN or inf codes")
        chunks.append(codes)
    if not chunks:
        return torch.empty(0, 0, dtype=dtype, device=device)
    return torch.cat(chunks)


def sample_codes(
    representation: Representation,
    dataset: FactorDataset,
    n: int,
    gen: torch.Generator,
    eval_batch_size: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """``n`` random factor tuples (on ``device``) and their codes: the metrics' training data."""
    factors = dataset.sample_factors(n, gen)
    return codes_for(representation, dataset, factors, eval_batch_size, device), factors.to(device)
