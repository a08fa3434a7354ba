r"""K models of one architecture as one: weights stacked along a new leading dimension.

:class:`StackedVAE` holds the parameters of ``K`` :class:`~torchvae.VAE` models as tensors
of shape ``(K, *shape)`` and computes every member's negative ELBO in one pass: the
encoder and the decoder run under :func:`torch.func.vmap` of
:func:`torch.func.functional_call` (so batched matrix products, whatever the networks
are), while the parts that are elementwise (the posterior's reparameterization, a
likelihood without parameters, the closed-form KL) run on the flattened ``K * batch``
rows, with the library's own kernels. :class:`StackedAdam` is PyTorch's Adam (the fused
kernel where there is one) stepped for each member on its slices, with its own learning
rate. The noise of each member is given by the caller, drawn from that member's
generator, so that the sweep reproduces ``K`` separate runs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap
from torch.optim.adam import adam as adam_step

from .._validation import trusted_inputs
from ..gaussian import GaussianParams
from ..models.vae import VAE
from ..posteriors import DiagonalGaussian

__all__ = ["StackedAdam", "StackedVAE", "check_stackable"]

_PROB_EPS = 1e-6


def _config(model: nn.Module) -> Any:
    """The model's architecture: its file config, or its repr for classes files do not know."""
    from ..io.serialization import model_config

    try:
        return model_config(model)
    except TypeError:
        return repr(model)


def check_stackable(models: Sequence[nn.Module]) -> None:
    """Raise a ``ValueError`` naming what a sweep cannot stack in ``models``.

    A sweep stacks plain (not conditional) :class:`~torchvae.VAE` models of one
    architecture with the diagonal Gaussian posterior, a prior without parameters that
    has a closed-form KL against it (:class:`~torchvae.priors.StandardNormal`), any
    likelihood, and networks without buffers or random layers.
    """
    if len(models) == 0:
        raise ValueError("a sweep needs at least one model")
    for i, m in enumerate(models):
        if type(m) is not VAE:
            raise ValueError(
                f"models[{i}] is a {type(m).__name__}; a sweep stacks torchvae.VAE models only "
                f"(conditional VAEs, other model families and user-written models are not "
                f"supported: train them with Trainer one by one)"
            )
        if m.num_classes is not None:
            raise ValueError(
                f"models[{i}] is conditional; a sweep does not support conditional VAEs"
            )
        if type(m.posterior_head) is not DiagonalGaussian:
            raise ValueError(
                f"models[{i}] has the posterior {type(m.posterior_head).__name__}; a sweep "
                f"supports the diagonal Gaussian posterior only"
            )
        prior = m.prior
        if prior.state_dict():
            raise ValueError(
                f"models[{i}] has the prior {type(prior).__name__}, which has parameters; a "
                f"sweep supports priors without parameters and with a closed-form KL "
                f"(StandardNormal)"
            )
        for part in ("encoder", "decoder", "likelihood"):
            module = getattr(m, part)
            if set(module.state_dict()) != {n for n, _ in module.named_parameters()}:
                raise ValueError(
                    f"models[{i}].{part} has buffers (e.g. BatchNorm's running statistics), "
                    f"which a sweep cannot stack"
                )
    first = _config(models[0])
    shapes = {k: v.shape for k, v in models[0].state_dict().items()}
    for i, m in enumerate(models[1:], 1):
        if _config(m) != first or {k: v.shape for k, v in m.state_dict().items()} != shapes:
            raise ValueError(
                f"models[{i}] has another architecture than models[0]; the models of a sweep "
                f"must share one (differing only in their weights)"
            )


class _Nets(nn.Module):
    """One member's networks as one module, for ``functional_call`` under ``vmap``."""

    def __init__(self, model: VAE, score: bool) -> None:
        super().__init__()
        self.encoder, self.decoder, self.likelihood = model.encoder, model.decoder, model.likelihood
        self.score = score

    def forward(self, x: Tensor, eps: Tensor) -> tuple[Tensor, ...]:
        mean, log_var = self.encoder(x)
        z = mean + torch.exp(0.5 * log_var) * eps  # GaussianParams.std, as the VAE draws it
        logits_fn = getattr(self.decoder, "logits", None)
        if logits_fn is not None:
            logits = logits_fn(z)
        else:
            logits = torch.logit(self.decoder(z), eps=_PROB_EPS)
        logits = logits.reshape(x.shape)
        if not self.score:
            return mean, log_var, logits
        return mean, log_var, logits, self.likelihood._log_prob(logits, x.to(logits.dtype))


class StackedVAE:
    """The weights of ``K`` VAEs stacked, and their losses computed together.

    Args:
        models: ``K`` models that :func:`check_stackable` accepts; their weights are
            copied (the models themselves are left as they are).

    Attributes:
        params: name -> ``(K, *shape)`` leaf tensor, by the model's parameter names.
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        check_stackable(models)
        vaes = [m for m in models if isinstance(m, VAE)]
        self.k = len(vaes)
        self.template = copy.deepcopy(vaes[0])
        likelihood = self.template.likelihood
        self.score_inside = any(True for _ in likelihood.parameters())
        self.nets = _Nets(self.template, self.score_inside)
        names = {n for n, _ in self.nets.named_parameters()}
        params, _ = stack_module_state(list(vaes))
        if set(params) - names:
            raise ValueError(
                "the models have parameters outside their encoder, decoder and likelihood "
                f"({', '.join(sorted(set(params) - names))}); a sweep cannot stack them"
            )
        self.params: dict[str, Tensor] = {n: p.detach().clone() for n, p in params.items()}
        self.latent_dim = int(self.template.latent_dim)
        self._run = vmap(self._member, randomness="error")

    def _member(self, params: dict[str, Tensor], x: Tensor, eps: Tensor) -> tuple[Tensor, ...]:
        with trusted_inputs():  # value checks cannot run under vmap; the sweep does its own
            out: tuple[Tensor, ...] = functional_call(self.nets, params, (x, eps), strict=True)
        return out

    def relayout(self, x: Tensor) -> None:
        """Give each stacked weight the memory layout its gradient has.

        A batched matrix product returns some weight gradients transposed; a weight laid
        out like its gradient lets autograd keep the gradient as it is instead of copying
        it into the weight's layout on every step. Runs one forward and backward pass on
        ``x`` (``(K, batch, ...)``) with zero noise; nothing random is drawn.
        """
        leaves = {n: p.detach().requires_grad_(True) for n, p in self.params.items()}
        eps = torch.zeros(self.k, x.shape[1], self.latent_dim, dtype=x.dtype, device=x.device)
        ones = torch.ones(self.k, device=x.device)
        try:
            total = self.losses(leaves, x, eps, ones, torch.zeros_like(ones))[0]
            grads = torch.autograd.grad(total.sum(), list(leaves.values()), allow_unused=True)
        except RuntimeError as e:
            names = f"{type(self.template.encoder).__name__}/{type(self.template.decoder).__name__}"
            raise ValueError(
                f"a sweep cannot stack these networks ({names}, likelihood "
                f"{type(self.template.likelihood).__name__}): they do not run under "
                f"torch.func.vmap ({str(e).strip().splitlines()[0]})"
            ) from e
        for (name, p), g in zip(self.params.items(), grads, strict=True):
            if g is not None and g.stride() != p.stride():
                q = torch.empty_strided(p.shape, g.stride(), dtype=p.dtype, device=p.device)
                self.params[name] = q.copy_(p)

    def to(self, device: torch.device) -> StackedVAE:
        self.params = {n: p.to(device) for n, p in self.params.items()}
        self.template.to(device)
        return self

    def losses(
        self,
        params: dict[str, Tensor],
        x: Tensor,
        eps: Tensor,
        beta: Tensor,
        free_bits: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        r"""Each member's ``(total, reconstruction, kl, kl_per_dim)``, as in
        :class:`~torchvae.ELBOLoss`.

        Args:
            params: the stacked parameters (``self.params``, or leaves that require grad).
            x: ``(K, batch, ...)``, member ``k``'s batch in row ``k``.
            eps: ``(K, batch, latent_dim)`` standard normal noise.
            beta: ``(K,)`` KL weights.
            free_bits: ``(K,)`` free nats per latent dimension (0: none).

        Returns:
            ``(K,)`` totals, reconstructions and KLs, and ``(K, latent_dim)`` per-dimension KLs.
        """
        k, b = x.shape[0], x.shape[1]
        out = self._run(params, x, eps)
        mean, log_var, logits = out[0], out[1], out[2]
        if self.score_inside:
            log_px = out[3]
        else:  # elementwise: all members' rows at once, with the likelihood's own kernel
            flat = logits.reshape(k * b, *x.shape[2:])
            log_px = self.template.likelihood._log_prob(flat, x.reshape(flat.shape).to(flat.dtype))
            log_px = log_px.reshape(k, b)
        rows = GaussianParams(mean.reshape(k * b, -1), log_var.reshape(k * b, -1))
        closed = self.template.prior.kl_closed_form(self.template.posterior_head, rows, None)
        if closed is None or closed.ndim != 2:
            raise ValueError(
                f"the prior {type(self.template.prior).__name__} has no closed-form KL per "
                f"dimension against the diagonal Gaussian; a sweep needs one"
            )
        reconstruction = -log_px.mean(1)
        kl_per_dim = closed.reshape(k, b, -1).mean(1)
        kl = kl_per_dim.sum(-1)
        clipped = kl_per_dim.clamp_min(free_bits.unsqueeze(1)).sum(-1)
        penalty = torch.where(free_bits > 0, clipped, kl)
        total = reconstruction + beta.to(penalty.dtype) * penalty
        return total, reconstruction, kl, kl_per_dim

    def member_state(self, i: int) -> dict[str, Tensor]:
        """Member ``i``'s weights, as its model's ``state_dict`` holds them."""
        return {n: p[i].detach().clone().contiguous() for n, p in self.params.items()}

    def load_member(self, i: int, state: dict[str, Tensor]) -> None:
        """Set member ``i``'s weights from a model's ``state_dict``."""
        with torch.no_grad():
            for n, p in self.params.items():
                p[i].copy_(state[n])


def _dense(t: Tensor) -> Tensor:
    """``t`` with its dimensions ordered by stride: contiguous for a dense layout (such as
    a weight laid out like its transposed gradient), so that the fused kernel reads it as
    is; elementwise updates of it are updates of ``t``."""
    order = sorted(range(t.ndim), key=lambda d: -t.stride()[d])
    return t if order == list(range(t.ndim)) else t.permute(order)


class StackedAdam:
    """Adam for stacked parameters: each member its own moments, step count and ``lr``.

    Each member is stepped with :func:`torch.optim.adam.adam` on its slices, with the
    fused kernel where PyTorch has one (as the :class:`~torchvae.Trainer`'s default
    optimizer), so that a member's updates are those of ``torch.optim.Adam``.
    """

    def __init__(
        self, params: dict[str, Tensor], lrs: Sequence[float], betas: tuple[float, float]
    ) -> None:
        self.names = list(params)
        self.lrs, self.betas, self.eps = [float(v) for v in lrs], betas, 1e-8
        first = next(iter(params.values()))
        self.fused = first.device.type in ("cpu", "cuda") and first.dtype in (
            torch.float16,
            torch.bfloat16,
            torch.float32,
            torch.float64,
        )
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        k = first.shape[0]
        self.steps = [
            [torch.zeros((), dtype=torch.float32, device=first.device) for _ in self.names]
            for _ in range(k)
        ]

    def step(
        self, params: dict[str, Tensor], grads: dict[str, Tensor], members: Sequence[int]
    ) -> None:
        """One Adam step of the members listed (others are left as they are)."""
        with torch.no_grad():
            lrs = {self.lrs[i] for i in members}
            if len(members) == len(self.lrs) and len(lrs) == 1:  # one call for all
                self._adam([_dense(params[n]) for n in self.names], grads, None, lrs.pop(), 0)
                for i in members[1:]:
                    for mine, first in zip(self.steps[i], self.steps[0], strict=True):
                        mine.copy_(first)
                return
            for i in members:
                self._adam([_dense(params[n])[i] for n in self.names], grads, i, self.lrs[i], i)

    def _adam(
        self, params: list[Tensor], grads: dict[str, Tensor], i: int | None, lr: float, s: int
    ) -> None:
        def pick(t: Tensor) -> Tensor:
            return _dense(t) if i is None else _dense(t)[i]

        adam_step(
            params,
            [pick(grads[n]) for n in self.names],
            [pick(self.exp_avg[n]) for n in self.names],
            [pick(self.exp_avg_sq[n]) for n in self.names],
            [],
            self.steps[s],
            fused=self.fused or None,
            foreach=None if self.fused else False,
            amsgrad=False,
            beta1=self.betas[0],
            beta2=self.betas[1],
            lr=lr,
            weight_decay=0.0,
            eps=self.eps,
            maximize=False,
        )

    def member_state(self, i: int, params: list[nn.Parameter]) -> dict[str, Any]:
        """Member ``i``'s state as ``torch.optim.Adam(params, lr).state_dict()`` holds it."""
        opt = torch.optim.Adam(params, lr=self.lrs[i], betas=self.betas, fused=self.fused or None)
        for n, p in zip(self.names, params, strict=True):
            opt.state[p] = {
                "step": self.steps[i][self.names.index(n)].clone(),
                "exp_avg": self.exp_avg[n][i].detach().clone().contiguous(),
                "exp_avg_sq": self.exp_avg_sq[n][i].detach().clone().contiguous(),
            }
        state: dict[str, Any] = opt.state_dict()
        return state

    def load_member(self, i: int, state: dict[str, Any]) -> None:
        """Restore member ``i`` from what :meth:`member_state` (or a Trainer) saved."""
        saved = state["state"]
        with torch.no_grad():
            for j, n in enumerate(self.names):
                entry = saved.get(j)
                if entry is None:  # never stepped
                    self.exp_avg[n][i].zero_()
                    self.exp_avg_sq[n][i].zero_()
                    self.steps[i][j] = torch.zeros((), dtype=torch.float32)
                    continue
                self.exp_avg[n][i].copy_(entry["exp_avg"])
                self.exp_avg_sq[n][i].copy_(entry["exp_avg_sq"])
                self.steps[i][j] = torch.as_tensor(entry["step"], dtype=torch.float32).clone()
