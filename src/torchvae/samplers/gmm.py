r"""Ex-post samplers: a density fitted to the aggregate posterior, to draw better samples.

A VAE decodes :math:`z \sim p(z)` to sample, but the codes its decoder was trained on
follow the aggregate posterior :math:`q(z) = \frac1N \sum_n q_\phi(z \mid x_n)`, which
rarely fills the prior: draws from the prior's low-:math:`q` regions decode to blurred
or implausible images. Ghosh et al. (2020) fit a density to the codes of the training set
after training, here a Gaussian mixture,

.. math::
    \hat q(z) = \sum_{c=1}^{C} \pi_c\, \mathcal{N}(z;\, \mu_c, \Sigma_c),

and sample :math:`z \sim \hat q` instead (``model.sample(n, sampler=gmm)``); the model and
its test-set likelihood are unchanged. :class:`GaussianMixtureSampler` is fitted by EM
(:meth:`GaussianMixtureSampler.fit`, or :func:`~torchvae.fit_gmm_sampler` from a model and
its data); its parameters are buffers, so a sampler set as ``model.sampler`` is saved
with the model by :func:`~torchvae.save_model` and restored by
:func:`~torchvae.load_model`.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Protocol

import torch
from torch import Tensor, nn

from .._validation import check_finite, check_floating, check_generator, check_positive_int
from ..io.registry import register_by_arguments
from ..priors._base import check_temperature

__all__ = ["Covariance", "GaussianMixtureSampler", "LatentSampler"]

Covariance = Literal["full", "diag"]
"""``"full"``: one full covariance matrix per component; ``"diag"``: diagonal ones."""

_LOG_2PI = math.log(2.0 * math.pi)
_ROWS = 8192  # rows per block: (C, rows, d) temporaries stay small


class LatentSampler(Protocol):
    """What ``VAE.sample(n, sampler=...)`` accepts: anything with this ``sample`` method.

    ``sample(n, generator, temperature)`` returns ``n`` latent codes ``(n, latent_dim)``
    on the model's device, drawing with ``generator`` when one is given.
    """

    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor: ...


class GaussianMixtureSampler(nn.Module):
    r"""A Gaussian mixture over the latent space, fitted by EM, drawn from by ``sample``.

    **EM** (Dempster et al., 1977), in float64 on the codes' device. The E-step computes
    the responsibilities :math:`r_{nc} \propto \pi_c \mathcal{N}(z_n; \mu_c, \Sigma_c)`;
    the M-step sets :math:`N_c = \sum_n r_{nc}`, :math:`\pi_c = N_c / N`,
    :math:`\mu_c = \frac{1}{N_c} \sum_n r_{nc} z_n` and
    :math:`\Sigma_c = \frac{1}{N_c} \sum_n r_{nc} (z_n - \mu_c)(z_n - \mu_c)^\top
    + \lambda I` (only its diagonal for ``covariance="diag"``), with :math:`\lambda` =
    ``reg`` keeping every :math:`\Sigma_c` positive definite. It starts from k-means++
    centres (Arthur and Vassilvitskii, 2007) with hard assignments to them, and stops
    when the mean log-likelihood improves by less than ``tol`` nats. The seeding is the
    only random step: with a ``generator`` the fit is deterministic.

    The parameters are buffers: ``weights`` :math:`\pi` ``(C,)``, ``means`` ``(C, d)``
    and ``scale_tril`` (the Cholesky factors :math:`L_c` of :math:`\Sigma_c`, ``(C, d,
    d)``) or ``scales`` (the standard deviations, ``(C, d)``); ``fitted`` says whether
    :meth:`fit` has run. After a fit, the attributes ``log_likelihood`` (the codes' mean
    log-likelihood, nats) and ``iterations`` (EM iterations run) say how it went.

    Args:
        num_components: :math:`C`.
        dim: :math:`d`, the latent dimension.
        covariance: ``"full"`` or ``"diag"``.
        reg: :math:`\lambda \geq 0`, added to every covariance's diagonal.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> z = torch.randn(400, 2, generator=g)
        >>> z[:200] -= 4  # two clusters, around (-4, -4) and (0, 0)
        >>> gmm = GaussianMixtureSampler(2, dim=2).fit(z, generator=g)
        >>> gmm.means[gmm.means[:, 0].argsort()].round().abs().tolist()
        [[4.0, 4.0], [0.0, 0.0]]
        >>> gmm.sample(5, generator=g).shape
        torch.Size([5, 2])
    """

    weights: Tensor
    means: Tensor
    scale_tril: Tensor
    scales: Tensor
    fitted: Tensor

    def __init__(
        self,
        num_components: int,
        dim: int,
        covariance: Covariance = "full",
        reg: float = 1e-6,
    ) -> None:
        super().__init__()
        self.num_components = check_positive_int(num_components, "num_components")
        self.dim = check_positive_int(dim, "dim")
        if covariance not in ("full", "diag"):
            raise ValueError(f"covariance must be 'full' or 'diag', got {covariance!r}")
        self.covariance: Covariance = covariance
        if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
            raise ValueError(f"reg must be a float >= 0, got {reg!r}")
        self.reg = float(reg)
        c, d = self.num_components, self.dim
        self.register_buffer("weights", torch.full((c,), 1.0 / c))
        self.register_buffer("means", torch.zeros(c, d))
        if covariance == "full":
            self.register_buffer("scale_tril", torch.eye(d).expand(c, d, d).clone())
        else:
            self.register_buffer("scales", torch.ones(c, d))
        self.register_buffer("fitted", torch.tensor(False))
        self.log_likelihood: float | None = None
        self.iterations: int | None = None

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this sampler (JSON values)."""
        return {
            "num_components": self.num_components,
            "dim": self.dim,
            "covariance": self.covariance,
            "reg": self.reg,
        }

    def _check_z(self, z: object, name: str = "z") -> Tensor:
        z = check_floating(z, name)
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(
                f"{name} must have shape (n, dim) with dim = {self.dim}, got {tuple(z.shape)}"
            )
        return check_finite(z, name)

    # --- densities ------------------------------------------------------------------------

    def _component_log_probs(self, z: Tensor, means: Tensor, factors: Tensor) -> Tensor:
        """:math:`\\log \\mathcal{N}(z_n; \\mu_c, \\Sigma_c)`, ``(n, C)``, in blocks of rows."""
        if self.covariance == "full":
            log_det = 2 * factors.diagonal(dim1=-2, dim2=-1).log().sum(-1)
            eye = torch.eye(self.dim, dtype=factors.dtype, device=factors.device)
            # L^{-T}: one small triangular solve, then matrix products over the rows
            inverse_t = torch.linalg.solve_triangular(factors, eye, upper=False).transpose(1, 2)
        else:
            log_det = 2 * factors.log().sum(-1)
        out = []
        for block in torch.split(z, _ROWS):
            diff = block.unsqueeze(0) - means.unsqueeze(1)  # (C, rows, d)
            if self.covariance == "full":
                maha = (diff @ inverse_t).square().sum(-1)
            else:
                maha = (diff / factors.unsqueeze(1)).square().sum(-1)
            out.append(-0.5 * (maha + log_det.unsqueeze(1) + self.dim * _LOG_2PI).T)
        return torch.cat(out)

    def _factors(self) -> Tensor:
        return self.scale_tril if self.covariance == "full" else self.scales

    def log_prob(self, z: Tensor) -> Tensor:
        r""":math:`\log \hat q(z)` of each row of ``z`` ``(n, dim)``, ``(n,)``, in nats."""
        z = self._check_z(z)
        logs = self._component_log_probs(z, self.means.to(z), self._factors().to(z))
        return torch.logsumexp(logs + self.weights.to(z).log(), dim=1)

    @property
    def covariances(self) -> Tensor:
        r"""The :math:`\Sigma_c`, ``(C, d, d)`` (diagonal matrices for ``"diag"``)."""
        if self.covariance == "full":
            return self.scale_tril @ self.scale_tril.transpose(-1, -2)
        return torch.diag_embed(self.scales.square())

    # --- fitting --------------------------------------------------------------------------

    def _seed(self, z: Tensor, generator: torch.Generator | None) -> Tensor:
        """k-means++ centres: the first uniform, each next with probability ∝ D^2."""
        n = z.shape[0]
        first = int(torch.randint(n, (1,), generator=generator, device=z.device))
        centres = [z[first]]
        nearest = (z - z[first]).square().sum(1)
        for _ in range(1, self.num_components):
            total = nearest.sum()
            if not bool(total > 0):  # fewer distinct points than components
                pick = int(torch.randint(n, (1,), generator=generator, device=z.device))
            else:
                pick = int(torch.multinomial(nearest / total, 1, generator=generator))
            centres.append(z[pick])
            nearest = torch.minimum(nearest, (z - z[pick]).square().sum(1))
        return torch.stack(centres)

    def _m_step(self, z: Tensor, resp: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        counts = resp.sum(0) + 10 * torch.finfo(z.dtype).tiny
        weights = counts / counts.sum()
        means = (resp.T @ z) / counts.unsqueeze(1)
        if self.covariance == "diag":
            second = (resp.T @ z.square()) / counts.unsqueeze(1)
            var = (second - means.square()).clamp_min(0) + self.reg
            return weights, means, var.clamp_min(torch.finfo(z.dtype).tiny).sqrt()
        second = torch.zeros(
            self.num_components, self.dim, self.dim, dtype=z.dtype, device=z.device
        )
        for block, r in zip(torch.split(z, _ROWS), torch.split(resp, _ROWS), strict=True):
            second += (r.T.unsqueeze(2) * block).transpose(1, 2) @ block
        cov = second / counts.view(-1, 1, 1) - means.unsqueeze(2) * means.unsqueeze(1)
        eye = torch.eye(self.dim, dtype=z.dtype, device=z.device)
        return weights, means, self._cholesky((cov + cov.transpose(1, 2)) / 2 + self.reg * eye)

    def _cholesky(self, cov: Tensor) -> Tensor:
        """Cholesky factors of ``(C, d, d)``, with growing jitter where one is not PD."""
        scale = cov.diagonal(dim1=-2, dim2=-1).mean(-1).abs().clamp_min(1e-30)
        jitter = max(self.reg, 1e-10) * scale
        eye = torch.eye(self.dim, dtype=cov.dtype, device=cov.device)
        for _ in range(10):
            factor, info = torch.linalg.cholesky_ex(cov)
            bad = info != 0
            if not bool(bad.any()):
                found: Tensor = factor
                return found
            cov = cov + (bad * jitter).view(-1, 1, 1) * eye
            jitter = jitter * 10
        raise ValueError(
            "a component's covariance is not positive definite even with added jitter; "
            "raise reg or use fewer components"
        )

    @torch.no_grad()
    def fit(
        self,
        z: Tensor,
        max_iter: int = 100,
        tol: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> GaussianMixtureSampler:
        r"""Fit the mixture to the rows of ``z`` by EM; returns ``self``.

        Args:
            z: codes ``(n, dim)``, e.g. the posterior means of the training set;
                ``n >= num_components``.
            max_iter: at most this many EM iterations.
            tol: stop when the mean log-likelihood (nats) improves by less.
            generator: random generator on ``z``'s device, for the k-means++ seeding.

        Raises:
            ValueError: ``z`` has the wrong shape, NaN/inf, or fewer rows than components.
        """
        z = self._check_z(z)
        max_iter = check_positive_int(max_iter, "max_iter")
        check_generator(generator, z.device)
        if z.shape[0] < self.num_components:
            raise ValueError(
                f"z has {z.shape[0]} rows, fewer than the {self.num_components} components"
            )
        shift = z.to(torch.float64).mean(0)
        z64 = z.to(torch.float64) - shift  # centred: the second moments lose no precision
        centres = self._seed(z64, generator)
        assign = torch.cdist(z64, centres).argmin(1)
        resp = torch.nn.functional.one_hot(assign, self.num_components).to(z64)
        weights, means, factors = self._m_step(z64, resp)
        previous, mean_ll, iterations = -math.inf, -math.inf, 0
        for iterations in range(1, max_iter + 1):  # noqa: B007 - reported after the loop
            joint = self._component_log_probs(z64, means, factors) + weights.log()
            norm = torch.logsumexp(joint, dim=1, keepdim=True)
            mean_ll = float(norm.mean())
            if mean_ll - previous < tol:
                break
            previous = mean_ll
            weights, means, factors = self._m_step(z64, (joint - norm).exp())
        like = self.means
        self.weights.copy_(weights.to(like))
        self.means.copy_((means + shift).to(like))
        self._factors().copy_(factors.to(like))
        self.fitted.fill_(True)
        self.log_likelihood, self.iterations = mean_ll, iterations
        return self

    # --- sampling -------------------------------------------------------------------------

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0
    ) -> Tensor:
        r"""Draw ``n`` codes, ``(n, dim)``: a component :math:`c \sim \pi`, then
        :math:`z = \mu_c + t L_c \varepsilon`, :math:`\varepsilon \sim \mathcal{N}(0, I)`.

        Args:
            n: how many.
            generator: optional random generator on the sampler's device.
            temperature: :math:`t \geq 0`, the spread around each component's mean.

        Raises:
            ValueError: the sampler has not been fitted.
        """
        n = check_positive_int(n, "n")
        t = check_temperature(temperature)
        if not bool(self.fitted):
            raise ValueError(
                "the GaussianMixtureSampler has not been fitted: call .fit(z) or "
                "torchvae.fit_gmm_sampler(model, data) first"
            )
        device = self.means.device
        check_generator(generator, device)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, device=device, dtype=self.means.dtype)
        if self.covariance == "full":
            spread = (self.scale_tril[component] @ eps.unsqueeze(-1)).squeeze(-1)
        else:
            spread = self.scales[component] * eps
        return self.means[component] + t * spread

    def extra_repr(self) -> str:
        return (
            f"num_components={self.num_components}, dim={self.dim}, covariance={self.covariance!r}"
        )


register_by_arguments(GaussianMixtureSampler)
