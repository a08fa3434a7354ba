"""The checks the objectives make of a likelihood argument."""

from __future__ import annotations

from ._base import Likelihood
from ._bernoulli import Bernoulli

__all__ = ["check_likelihood", "describe", "same_likelihood"]


def check_likelihood(likelihood: object) -> Likelihood:
    """``likelihood``, or :class:`Bernoulli` for ``None``; a ``TypeError`` for anything else."""
    if likelihood is None:
        return Bernoulli()
    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"likelihood must be a torchvae Likelihood (Bernoulli(), Gaussian(), ...), "
            f"got {type(likelihood).__name__}"
        )
    return likelihood


def describe(likelihood: Likelihood) -> str:
    """``Name(arg=value, ...)``, as the constructor is called."""
    return f"{type(likelihood).__name__}({likelihood.extra_repr()})"


def same_likelihood(a: Likelihood, b: Likelihood) -> bool:
    """Whether ``a`` and ``b`` are the same family with the same constructor arguments."""
    return a is b or (type(a) is type(b) and a.config() == b.config())
