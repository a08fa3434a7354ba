r"""Importance-weighted objectives: MIWAE, PIWAE, CIWAE and doubly-reparameterized gradients.

With :math:`z_1..z_K \sim q_\phi(z \mid x)` and weights
:math:`w_k = p_\theta(x, z_k) / q_\phi(z_k \mid x)`, Rainforth et al. (2018) show that a
tighter bound gives the *generative* network :math:`\theta` a better gradient but the
*inference* network :math:`\phi` a noisier one (its signal-to-noise ratio falls as
:math:`O(1/\sqrt K)`), and propose three compromises, all here:

.. math::
    \mathrm{IWAE}_K = \log \frac1K \sum_{k=1}^K w_k, \qquad
    \mathrm{MIWAE}_{M,K} = \frac1M \sum_{m=1}^M \log \frac1K \sum_{k=1}^K w_{m,k},

.. math::
    \mathrm{CIWAE}_\beta = \beta\, \mathrm{ELBO}_K + (1 - \beta)\, \mathrm{IWAE}_K,
    \quad \mathrm{ELBO}_K = \frac1K \sum_k \log w_k; \qquad
    \mathrm{PIWAE}:\ \theta \leftarrow \nabla_\theta \mathrm{IWAE}_{MK},\
    \phi \leftarrow \nabla_\phi \mathrm{MIWAE}_{M,K}.

Tucker et al. (2019) remove the score-function term from the inference network's IWAE
gradient (DReG), whose signal-to-noise ratio then grows with :math:`K`:

.. math::
    \nabla_\phi \mathrm{IWAE}_K \doteq \sum_{k=1}^K \tilde w_k^2\,
    \frac{\partial \log w_k}{\partial z_k} \frac{\partial z_k}{\partial \phi},
    \qquad \tilde w_k = \frac{w_k}{\sum_j w_j},

with :math:`\log w_k` differentiated through :math:`z_k` only (:math:`q`'s parameters
held fixed), an unbiased estimate of the same gradient.

Every objective is a loss module like :class:`~torchvae.IWAELoss`: it has ``n_samples``
(the Trainer calls the model with it) and returns a :class:`~torchvae.LossOutput` whose
``total`` is the negative bound; where the parameter groups get different gradients, one
``total.backward()`` gives each group its own (the loss is built so that each part's graph
reaches only its group). The inference network :math:`\phi` is the model's ``encoder``
and ``posterior_head``; :math:`\theta` is every other parameter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .._validation import check_positive_int
from ..gaussian import GaussianParams
from ..likelihoods import Likelihood, check_likelihood
from ..models.hierarchical import HierarchicalVAE
from ..models.vae import VAE, VAEOutput
from ..posteriors import DiagonalGaussian, FlowPosterior, Posterior
from ._terms import Terms, check_output, model_likelihood, terms
from .losses import LossOutput

__all__ = ["CIWAELoss", "DReGIWAELoss", "MIWAELoss", "PIWAELoss"]

_INFERENCE = ("encoder.", "posterior_head.")
# PIWAE's one-pass gradient: the decoder path's weights are floored at this fraction of the
# MIWAE weights (so that the rescaling at z never multiplies an underflowed gradient).
_FLOOR = 1e-20
# Posteriors whose log q(z|x) is computed along the sampling path, never from the sample
# z itself: a gradient hook on z then rescales only what comes back through p(x, z).
_LOG_Q_ALONG_PATH = (DiagonalGaussian, FlowPosterior)


def _log_weights(
    out: object, x: Tensor, n: int, given: Likelihood | None, who: str
) -> tuple[Tensor, Terms]:
    """``log w`` ``(n, batch)`` of a checked output with ``n`` samples per example."""
    out = check_output(out, x)
    if out.z.ndim != 3 or out.z.shape[0] != n:
        got = f"z of shape {tuple(out.z.shape)}"
        raise ValueError(
            f"{who} needs {n} samples per example: call model(x, n_samples={n}) (the Trainer "
            f"does so from loss.n_samples); got {got}"
        )
    likelihood = model_likelihood(out.likelihood, given, who)
    t = terms(out, x, likelihood, weights=True)
    assert t.log_qz is not None and t.log_pz is not None
    return t.log_px_z + t.log_pz - t.log_qz, t


def _iwae(log_w: Tensor) -> Tensor:
    r""":math:`\log \frac1K \sum_k w_k` over the first dimension."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


def _miwae(log_w: Tensor, m: int) -> Tensor:
    r""":math:`\frac1M \sum_m \log \frac1K \sum_k w_{m,k}` of ``(M K, batch)`` log-weights."""
    return _iwae(log_w.reshape(m, -1, log_w.shape[-1]).transpose(0, 1)).mean(0)


def _output(total: Tensor, t: Terms, extra: dict[str, Tensor] | None = None) -> LossOutput:
    kl_per_dim = None if t.kl_per_dim is None else t.kl_per_dim.mean(0)
    kl = t.kl.mean() if kl_per_dim is None else kl_per_dim.sum()
    return LossOutput(total, -t.log_px_z.mean(), kl, kl_per_dim, t.exact, terms=extra)


def _check_model(model: object, who: str) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"{who} needs the torchvae VAE it trains, got {type(model).__name__}")
    return model


class _Call(nn.Module):
    """``fn(model, *args)`` as a module's forward, for :func:`torch.func.functional_call`."""

    def __init__(self, model: nn.Module, fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, *args: Any) -> Tensor:
        return self.fn(self.model, *args)


def _call_detached(
    module: nn.Module, fn: Callable[..., Tensor], *args: Any, keep: tuple[str, ...] = ()
) -> Tensor:
    """``fn(module, *args)`` with the module's parameters detached, but those in ``keep``."""
    frozen = {
        f"model.{name}": p.detach()
        for name, p in module.named_parameters()
        if not name.startswith(keep)
    }
    if not frozen:
        return fn(module, *args)
    out: Tensor = functional_call(_Call(module, fn), frozen, args)
    return out


def _vae_log_joint(model: VAE, x: Tensor, z: Tensor) -> Tensor:
    r""":math:`\log p_\theta(x \mid z) + \log p(z)` of a VAE without labels."""
    logits = model._decode(z, None).reshape(*z.shape[:-2], *x.shape)
    return model.likelihood._log_prob(logits, x) + model.prior.log_prob(z)


def _posterior_log_prob(posterior: Posterior, z: Tensor, params: GaussianParams) -> Tensor:
    return posterior.log_prob(z, params)


def _prior_log_prob(model: VAE, z: Tensor) -> Tensor:
    return model.prior.log_prob(z)


class MIWAELoss(nn.Module):
    r"""The negative multiply importance-weighted bound :math:`\mathrm{MIWAE}_{M,K}`.

    .. math::
        \text{total} = -\frac1B \sum_b \frac1M \sum_{m=1}^M
        \log \frac1K \sum_{k=1}^K \frac{p_\theta(x_b, z_{m,k})}{q_\phi(z_{m,k} \mid x_b)}

    :math:`M K` samples per example (``n_samples = k * m``). ``m=1`` is the IWAE bound
    (:class:`~torchvae.IWAELoss`), ``k=1`` an :math:`M`-sample ELBO. Rainforth et al.
    (2018) found :math:`M = K = 8` better than :math:`\mathrm{IWAE}_{64}` for the
    inference network at the same cost. The bound is never above the IWAE bound with
    :math:`K` samples, hence below :math:`\log p_\theta(x)`.

    Args:
        k: importance samples in each inner bound, :math:`K`.
        m: inner bounds averaged, :math:`M`.
        likelihood: only for user-written models (see :class:`~torchvae.ELBOLoss`).

    Example:
        >>> from torchvae import VAE, Encoder, Decoder
        >>> model = VAE(Encoder(784, 64, 8), Decoder(8, 64, 784))
        >>> x, loss = torch.rand(4, 784), MIWAELoss(k=5, m=2)
        >>> loss(model(x, n_samples=loss.n_samples), x).total.shape
        torch.Size([])
    """

    def __init__(self, k: int = 5, m: int = 1, likelihood: Likelihood | None = None) -> None:
        super().__init__()
        self.k, self.m = check_positive_int(k, "k"), check_positive_int(m, "m")
        self.n_samples = self.k * self.m
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """The loss; ``out`` from ``model(x, n_samples=k * m)``."""
        log_w, t = _log_weights(out, x, self.n_samples, self.likelihood, "MIWAELoss")
        return _output(-_miwae(log_w, self.m).mean(), t)

    def extra_repr(self) -> str:
        return f"k={self.k}, m={self.m}"


class CIWAELoss(nn.Module):
    r"""The negative combination bound :math:`\beta\,\mathrm{ELBO}_K + (1-\beta)\,\mathrm{IWAE}_K`.

    .. math::
        \text{total} = -\frac1B \sum_b \left[\beta\, \frac1K \sum_k \log w_{b,k}
        + (1 - \beta) \log \frac1K \sum_k w_{b,k}\right]

    on the same :math:`K` samples (the ELBO is their Monte Carlo estimate). It is a convex
    combination of two lower bounds, so a lower bound itself; its gradient is the same
    combination of theirs for every parameter. ``beta=1`` is the :math:`K`-sample ELBO,
    ``beta=0`` the IWAE. ``terms`` log both parts (``neg_elbo``, ``neg_iwae``).

    Args:
        k: samples per example.
        beta: :math:`\beta \in [0, 1]`.
        likelihood: only for user-written models.
    """

    def __init__(self, k: int = 5, beta: float = 0.5, likelihood: Likelihood | None = None) -> None:
        super().__init__()
        self.n_samples = check_positive_int(k, "k")
        if isinstance(beta, bool) or not isinstance(beta, (int, float)):
            raise TypeError(f"beta must be a float in [0, 1], got {type(beta).__name__}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.beta = float(beta)
        self.likelihood = None if likelihood is None else check_likelihood(likelihood)

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """The loss; ``out`` from ``model(x, n_samples=k)``."""
        log_w, t = _log_weights(out, x, self.n_samples, self.likelihood, "CIWAELoss")
        elbo, iwae = log_w.mean(0).mean(), _iwae(log_w).mean()
        total = -(self.beta * elbo + (1.0 - self.beta) * iwae)
        return _output(total, t, {"neg_elbo": -elbo.detach(), "neg_iwae": -iwae.detach()})

    def extra_repr(self) -> str:
        return f"k={self.n_samples}, beta={self.beta:g}"


class PIWAELoss(nn.Module):
    r"""Partially importance-weighted: IWAE for :math:`\theta`, MIWAE for :math:`\phi`.

    On the same :math:`M K` samples per example, the generative parameters :math:`\theta`
    (decoder, prior, likelihood, and a hierarchical model's top-down networks) get
    :math:`\nabla_\theta \mathrm{IWAE}_{MK}` and the inference network :math:`\phi` (the
    ``encoder`` and ``posterior_head``) gets :math:`\nabla_\phi \mathrm{MIWAE}_{M,K}`, in
    one backward pass:

    .. math::
        \text{total} = -\mathrm{IWAE}_{MK}(\theta, \phi)
        - \left[\mathrm{MIWAE}_{M,K} - \mathrm{IWAE}_{MK}\right](\bar\theta, \phi)
        + \text{(the bracket's value, so that total is } -\mathrm{IWAE}_{MK}\text{)},

    where :math:`\bar\theta` is :math:`\theta` detached. ``total`` is
    :math:`-\mathrm{IWAE}_{MK}`, a bound; ``terms["neg_miwae"]`` is
    :math:`-\mathrm{MIWAE}_{M,K}`.

    For a :class:`~torchvae.VAE` with a :class:`~torchvae.DiagonalGaussian` or
    :class:`~torchvae.FlowPosterior` posterior this gradient takes one pass. Both
    bounds' gradients are sums over the samples,
    :math:`\sum_{m,k} \tilde w_{m,k} \nabla \log w_{m,k}`, with
    :math:`\tilde w^{\mathrm{IW}}` the weights normalized over all :math:`MK` samples and
    :math:`\tilde w^{\mathrm{MI}}_{m,k}` those normalized within bound :math:`m`, over
    :math:`M`. :math:`\phi` reaches :math:`\log w = \log p_\theta(x, z) - \log
    q_\phi(z \mid x)` through the sample :math:`z` and through :math:`\log q` directly,
    :math:`\theta` through :math:`\log p_\theta` at fixed :math:`z`. So the loss weighs
    :math:`\log p_\theta(x, z)` by :math:`\tilde w^{\mathrm{IW}}` and :math:`\log q` by
    :math:`\tilde w^{\mathrm{MI}}`, and a gradient hook on ``out.z`` multiplies what flows
    back into each sample by :math:`\tilde w^{\mathrm{MI}} / \tilde w^{\mathrm{IW}}
    = \exp(\mathrm{LSE}_{\text{all}} - \mathrm{LSE}_m) / M`. The
    :math:`\tilde w^{\mathrm{IW}}` on that path are floored at :math:`10^{-20}\,\tilde
    w^{\mathrm{MI}}`, so that a bound far below the others still gets its gradient (an
    underflowed product cannot be rescaled); this adds to :math:`\theta`'s gradient at
    most :math:`10^{-20}` times the MIWAE-weighted sum of the samples' gradients, far
    below float32's resolution. A prior that calls the encoder (the
    :class:`~torchvae.VampPrior`) gets one more, cheap term: its density at the detached
    samples with only :math:`\phi` live, weighted by :math:`\tilde w^{\mathrm{MI}} -
    \tilde w^{\mathrm{IW}}`. Use each output for this loss only (the hook is on it).

    Elsewhere (a :class:`~torchvae.HierarchicalVAE`, whose posterior shares the top-down
    networks with :math:`p`; another posterior; a float16 decoder) the bracket re-scores
    the same samples with the generative parameters held fixed: one more pass of the
    decoder, and for a hierarchical model of the top-down networks on the same noise.

    Args:
        model: the :class:`~torchvae.VAE` (or :class:`~torchvae.HierarchicalVAE`) being
            trained; not conditional (the loss does not see the labels).
        k: :math:`K`, samples in each inner bound of the MIWAE.
        m: :math:`M`, inner bounds.

    Raises:
        TypeError: ``model`` is not a torchvae VAE.
        ValueError: ``model`` is conditional.
    """

    def __init__(self, model: VAE, k: int = 5, m: int = 2) -> None:
        super().__init__()
        model = _check_model(model, "PIWAELoss")
        if model.is_conditional:
            raise ValueError(
                "PIWAELoss re-scores the samples with the decoder, which needs the labels the "
                "loss does not see: conditional models are not supported"
            )
        self._model = [model]  # a plain list: the model is not a part of the loss
        self.k, self.m = check_positive_int(k, "k"), check_positive_int(m, "m")
        self.n_samples = self.k * self.m
        self._prior_checked: list[nn.Module] = []  # a list: not a submodule of the loss
        self._prior_uses_phi = False

    def _frozen_log_weights(self, out: VAEOutput, x: Tensor) -> Tensor:
        model = self._model[0]
        if isinstance(model, HierarchicalVAE):
            noise = model.noise_of(out)
            return _call_detached(model, HierarchicalVAE._log_weights, x, noise, keep=_INFERENCE)
        assert out.log_qz is not None
        return _call_detached(model, _vae_log_joint, x, out.z, keep=_INFERENCE) - out.log_qz

    def _one_pass(self, out: VAEOutput) -> bool:
        model = self._model[0]
        return (
            not isinstance(model, HierarchicalVAE)
            and type(model.posterior_head) in _LOG_Q_ALONG_PATH
            and out.logits.dtype != torch.float16
            and out.z.requires_grad
        )

    def _prior_of_phi(self, z: Tensor) -> Tensor | None:
        r""":math:`\log p(z)` with only :math:`\phi` live, where the prior uses :math:`\phi`."""
        model = self._model[0]
        if self._prior_checked[:1] != [model.prior]:  # a property of the model: ask once
            probe = _call_detached(model, _prior_log_prob, z[:1, :1].detach(), keep=_INFERENCE)
            self._prior_uses_phi = probe.requires_grad
            self._prior_checked = [model.prior]
        if not self._prior_uses_phi:
            return None
        return _call_detached(model, _prior_log_prob, z.detach(), keep=_INFERENCE)

    def _one_pass_surrogate(self, out: VAEOutput, log_w: Tensor, t: Terms) -> Tensor:
        """A scalar whose gradient is IWAE's for theta and MIWAE's for phi (class docstring)."""
        assert t.log_qz is not None and t.log_pz is not None
        n, batch = log_w.shape
        d = log_w.detach()
        log_iw = torch.log_softmax(d, dim=0)
        log_mi = torch.log_softmax(d.reshape(self.m, self.k, batch), dim=1).reshape(n, batch)
        log_mi = log_mi - math.log(self.m)
        log_path = torch.maximum(log_iw, log_mi + math.log(_FLOOR))
        w_path, w_mi = log_path.exp(), log_mi.exp()
        scale = (log_mi - log_path).exp().unsqueeze(-1).to(out.z.dtype)
        out.z.register_hook(lambda g: g * scale)  # type: ignore[no-untyped-call]
        joint = w_path * (t.log_px_z + t.log_pz) - w_mi * t.log_qz
        prior_phi = self._prior_of_phi(out.z)
        if prior_phi is not None:
            joint = joint + (w_mi - w_path) * prior_phi
        return joint.sum(0).mean()

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """The loss; ``out`` from ``model(x, n_samples=k * m)``."""
        log_w, t = _log_weights(out, x, self.n_samples, None, "PIWAELoss")
        iwae = _iwae(log_w).mean()
        total = -iwae
        if torch.is_grad_enabled() and log_w.requires_grad:
            if self._one_pass(out):
                surrogate = self._one_pass_surrogate(out, log_w, t)
                total = -iwae.detach() - (surrogate - surrogate.detach())
            else:
                frozen = self._frozen_log_weights(out, x.to(out.logits.dtype))
                shift = (_miwae(frozen, self.m) - _iwae(frozen)).mean()
                total = total - (shift - shift.detach())
        neg_miwae = -_miwae(log_w.detach(), self.m).mean()
        return _output(total, t, {"neg_miwae": neg_miwae})

    def extra_repr(self) -> str:
        return f"k={self.k}, m={self.m}"


class DReGIWAELoss(nn.Module):
    r"""The IWAE (or MIWAE) bound with doubly-reparameterized gradients for :math:`\phi`.

    The value is the negative :math:`\mathrm{MIWAE}_{M,K}` bound (``m=1``: the IWAE).
    :math:`\theta` gets the usual gradient :math:`\frac1M\sum_{m,k} \tilde w_{m,k}
    \nabla_\theta \log p_\theta(x, z_{m,k})`; the inference network gets, for each inner
    bound (Tucker et al., 2019),

    .. math::
        \nabla_\phi = \frac1M \sum_{m,k} \tilde w_{m,k}^2
        \left.\frac{\partial}{\partial z}\left[\log p_\theta(x, z)
        - \log q_{\bar\phi}(z \mid x)\right]\right|_{z = z_{m,k}}
        \frac{\partial z_{m,k}}{\partial \phi},
        \qquad \tilde w_{m,k} = \frac{w_{m,k}}{\sum_j w_{m,j}},

    where :math:`q_{\bar\phi}` is the posterior with its parameters held fixed. It is
    built from the model's output in one backward pass: the loss scores
    :math:`\log q_{\bar\phi}(z)` at the samples with the encoder's output detached, and
    registers a gradient hook on ``out.z`` that multiplies what flows into each sample by
    :math:`\tilde w_{m,k}`; use each output for this loss only. The model must have a
    separate inference network: a :class:`~torchvae.HierarchicalVAE` (whose posterior
    shares the top-down networks with :math:`p`) is refused.

    Args:
        model: the :class:`~torchvae.VAE` being trained (for its posterior family).
        k: :math:`K`, samples per inner bound.
        m: :math:`M`, inner bounds (1: the IWAE).

    Raises:
        TypeError: ``model`` is not a VAE, or is a :class:`~torchvae.HierarchicalVAE`.
    """

    def __init__(self, model: VAE, k: int = 5, m: int = 1) -> None:
        super().__init__()
        model = _check_model(model, "DReGIWAELoss")
        if isinstance(model, HierarchicalVAE):
            raise TypeError(
                "DReGIWAELoss needs an inference network separate from the generative one; "
                "HierarchicalVAE's posterior shares the top-down networks with p. Use "
                "MIWAELoss, PIWAELoss or IWAELoss for it"
            )
        self._model = [model]
        self.k, self.m = check_positive_int(k, "k"), check_positive_int(m, "m")
        self.n_samples = self.k * self.m

    def forward(self, out: VAEOutput, x: Tensor) -> LossOutput:
        """The loss; ``out`` from ``model(x, n_samples=k * m)``."""
        log_w, t = _log_weights(out, x, self.n_samples, None, "DReGIWAELoss")
        bound = _miwae(log_w, self.m).mean()
        if not (torch.is_grad_enabled() and out.z.requires_grad):
            return _output(-bound, t)
        assert t.log_pz is not None
        batch = log_w.shape[-1]
        grouped = log_w.detach().reshape(self.m, self.k, batch)
        weights = torch.softmax(grouped, dim=1).reshape(self.n_samples, batch)
        fixed = GaussianParams(out.mean.detach(), out.log_var.detach())
        log_q = _call_detached(self._model[0].posterior_head, _posterior_log_prob, out.z, fixed)
        out.z.register_hook(lambda g: g * weights.unsqueeze(-1))  # type: ignore[no-untyped-call]
        surrogate = (weights * (t.log_px_z + t.log_pz - log_q)).sum(0).mean() / self.m
        return _output(-bound.detach() - (surrogate - surrogate.detach()), t)

    def extra_repr(self) -> str:
        return f"k={self.k}, m={self.m}"
