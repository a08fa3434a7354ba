r"""Importance-weighted estimates of the marginal log-likelihood :math:`\log p_\theta(x)`.

With :math:`z_1..z_k \sim q_\phi(z \mid x)` and weights
:math:`w_i = p_\theta(x \mid z_i)\,p(z_i)/q_\phi(z_i \mid x)`,

.. math::
    \log p_\theta(x) \;\geq\; \mathbb{E}\left[\log \frac1k \sum_{i=1}^k w_i\right]
    \;\geq\; \text{ELBO},

the IWAE bound (Burda et al., 2016), which tightens as :math:`k` grows and converges to
:math:`\log p_\theta(x)`. With :math:`k` in the thousands it is the test log-likelihood
the VAE literature reports.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from .._validation import check_floating, check_positive_int, check_real, validation_enabled
from ..data.dequantization import dequantization_correction
from ..likelihoods import Likelihood
from ._terms import check_output, model_likelihood, terms

if TYPE_CHECKING:
    from ..models.vae import VAEOutput

__all__ = ["bits_per_dim", "importance_log_weights", "log_likelihood"]


def importance_log_weights(
    out: VAEOutput, x: Tensor, likelihood: Likelihood | None = None
) -> tuple[Tensor, Tensor]:
    r"""Log importance weights :math:`\log p(x \mid z) + \log p(z) - \log q(z \mid x)`.

    Args:
        out: output of ``model(x, n_samples=k)``.
        x: ``(batch, ...)``.
        likelihood: only for a user-written model's output (default Bernoulli); with a
            torchvae model it must be the model's own.

    Returns:
        ``(log_w, log_px_z)``, each ``(k, batch)``.

    Raises:
        TypeError: ``likelihood`` is not a :class:`~torchvae.Likelihood`.
        ValueError: ``x`` does not fit ``out`` or is not a valid target, or ``likelihood``
            is not the model's.
    """
    out = check_output(out, x)
    chosen = model_likelihood(out.likelihood, likelihood, "importance_log_weights")
    if out.log_px_z is None:
        chosen.log_prob(out.logits, x)  # only for its checks of logits and x
    return _importance_log_weights(out, x, chosen)


def _importance_log_weights(
    out: VAEOutput, x: Tensor, likelihood: Likelihood
) -> tuple[Tensor, Tensor]:
    """:func:`importance_log_weights` without the checks, for callers that made them."""
    t = terms(out, x, likelihood, weights=True)
    assert t.log_qz is not None and t.log_pz is not None
    return t.log_px_z + t.log_pz - t.log_qz, t.log_px_z


@torch.no_grad()
def log_likelihood(
    model: nn.Module,
    x: Tensor,
    k: int = 1000,
    likelihood: Likelihood | None = None,
    chunk_size: int = 8192,
    generator: torch.Generator | None = None,
    **model_kwargs: Any,
) -> Tensor:
    r"""Importance-weighted estimate of :math:`\log p_\theta(x)` for each example, in nats.

    .. math::
        \log \hat p(x) = \log \frac1k \sum_{i=1}^k
        \frac{p_\theta(x \mid z_i)\,p(z_i)}{q_\phi(z_i \mid x)},\qquad z_i \sim q_\phi(z \mid x)

    The ``k`` samples are drawn and decoded in chunks of at most ``chunk_size`` decoded
    examples at a time, and combined with a running log-sum-exp, so peak memory is set by
    ``chunk_size`` whatever ``k`` is (``k=5000`` fits as well as ``k=50``). Each chunk
    holds all ``k`` samples of as few examples as it can, so that an example is encoded
    once (``ceil(k / chunk_size)`` times when ``k > chunk_size``). The model's
    train/eval mode is left as it is: call ``model.eval()`` first if it has dropout or
    batch norm.

    Args:
        model: a :class:`~torchvae.VAE` (or anything whose ``forward(x, n_samples=k)``
            returns a :class:`~torchvae.VAEOutput`).
        x: ``(batch, ...)``.
        k: importance samples per example, >= 1 (``k=1`` gives a one-sample ELBO).
        likelihood: not needed for a torchvae model (its own is used; one given must
            agree with it); for a user-written model, its :math:`p_\theta(x \mid z)`
            (default :class:`~torchvae.Bernoulli`).
        chunk_size: most decoded examples held at once.
        generator: optional random generator, for reproducible estimates.
        **model_kwargs: passed on to the model (e.g. a label for a conditional VAE).

    Returns:
        ``(batch,)`` estimates of :math:`\log p_\theta(x)`; negate for the NLL.

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(784, 64, 8), Decoder(8, 64, 784))
        >>> log_likelihood(model, torch.rand(3, 784), k=100).shape
        torch.Size([3])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    k = check_positive_int(k, "k")
    chunk_size = check_positive_int(chunk_size, "chunk_size")
    owned = getattr(model, "likelihood", None)
    likelihood = model_likelihood(
        owned if isinstance(owned, Likelihood) else None, likelihood, "log_likelihood"
    )
    likelihood.validate_target(check_floating(x, "x"))
    if x.ndim < 2:
        raise ValueError(f"x must have shape (batch, ...), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        return x.new_empty((0,))
    # As few examples per call as fill a chunk with all k samples: the encoder then runs
    # once per example (k <= chunk_size), not once per sample.
    rows = max(1, min(x.shape[0], chunk_size // k))
    pieces = []
    for start in range(0, x.shape[0], rows):
        xs = x[start : start + rows]
        extra = {
            key: (v[start : start + rows] if isinstance(v, Tensor) and v.ndim else v)
            for key, v in model_kwargs.items()
        }
        per_chunk = max(1, chunk_size // xs.shape[0])
        total = torch.full((xs.shape[0],), -math.inf, device=x.device, dtype=x.dtype)
        done = 0
        while done < k:
            kc = min(per_chunk, k - done)
            out = model(xs, n_samples=kc, generator=generator, **extra)
            log_w, _ = _importance_log_weights(out, xs.to(out.logits.dtype), likelihood)
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0).to(total.dtype))
            done += kc
        pieces.append(total - math.log(k))
    return torch.cat(pieces)


def bits_per_dim(
    nll: Tensor | float,
    dims: int,
    likelihood: Likelihood | None = None,
    *,
    dequantized: bool = False,
    levels: int = 256,
) -> Tensor | float:
    r"""Convert a negative log-likelihood in nats per example to bits per dimension.

    .. math::
        \text{bpd} = \frac{\text{NLL}}{D \ln 2}
        \quad\text{or, on dequantized data,}\quad
        \text{bpd} = \frac{\text{NLL} + D \ln(\text{levels})}{D \ln 2}
        = \frac{\text{NLL}}{D \ln 2} + \log_2(\text{levels})

    The rule: a *discrete* likelihood (``likelihood.discrete``: the Bernoulli on binary
    data, :class:`~torchvae.DiscretizedLogistic`, :class:`~torchvae.DiscretizedLogisticMixture`)
    gives :math:`-\log P(x)` of the 8-bit values themselves, so its bits/dim are the NLL's,
    with nothing added. A *density* (Gaussian, continuous Bernoulli, a flow) trained and
    evaluated on dequantized data :math:`y = (x + u)/\text{levels}` (``dequantize=True``
    in the loaders) gives :math:`-\log p(y)`; :math:`-\log p(y) + D \ln(\text{levels})`
    bounds the discrete :math:`-\log P(x)` (see :mod:`torchvae.dequantization`), which is
    what ``dequantized=True`` reports. Only those two are comparable with the literature's
    bits/dim. Without ``dequantized``, a density's NLL is converted as it is: its bits/dim
    as a density (for data that are continuous, or binary under a Bernoulli).

    Args:
        nll: nats per example (e.g. :math:`-\text{ELBO}` or :math:`-\log \hat p(x)` from
            :func:`log_likelihood`).
        dims: features per example :math:`D` (784 for MNIST, 3072 for CIFAR-10), the data's,
            not the decoder's output size.
        likelihood: the model's :math:`p_\theta(x \mid z)` (``model.likelihood``); with it,
            ``dequantized=True`` is refused for a discrete likelihood.
        dequantized: ``nll`` is a density's on uniformly dequantized data: add
            :math:`\log_2(\text{levels})` bits per dimension.
        levels: values per dimension of the discrete data (256 for 8 bits).

    Returns:
        ``nll`` in bits per dimension, a tensor if ``nll`` is one.

    Raises:
        TypeError: ``nll`` is not a real number or a floating-point tensor, or
            ``likelihood`` is not a :class:`~torchvae.Likelihood`.
        ValueError: ``nll`` holds NaN, ``dims`` < 1, ``levels`` < 2, or ``dequantized``
            with a discrete likelihood.

    Example:
        >>> bits_per_dim(3072 * math.log(2.0), 3072)  # 1 bit per dimension
        1.0
        >>> bits_per_dim(0.0, 3072, dequantized=True)  # a uniform density on [0, 1)^D
        8.0
    """
    dims = check_positive_int(dims, "dims")
    if likelihood is not None and not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"likelihood must be a torchvae Likelihood (model.likelihood), got "
            f"{type(likelihood).__name__}"
        )
    if not isinstance(dequantized, bool):
        raise TypeError(f"dequantized must be a bool, got {type(dequantized).__name__}")
    correction = dequantization_correction(dims, levels)  # checks levels in any case
    if not dequantized:
        correction = 0.0
    elif likelihood is not None and likelihood.discrete:
        raise ValueError(
            f"dequantized=True adds the correction of a density on dequantized data, but "
            f"{type(likelihood).__name__} is a discrete likelihood: its NLL is already "
            f"-log P(x) of the discrete values (train and evaluate it on x / 255, "
            f"dequantize=False)"
        )
    if isinstance(nll, Tensor):
        check_floating(nll, "nll")
        if validation_enabled() and bool(torch.isnan(nll).any()):
            raise ValueError(f"nll must not hold NaN, got {nll}")
    elif math.isnan(check_real(nll, "nll")):
        raise ValueError("nll must not be NaN")
    return (nll + correction) / (dims * math.log(2.0))
