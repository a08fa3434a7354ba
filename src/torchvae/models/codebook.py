r"""The codebook of a VQ-VAE: nearest-code quantization with straight-through gradients.

A :class:`Codebook` holds :math:`K` embeddings :math:`e_1, \dots, e_K \in \mathbb{R}^D`
and maps each encoder output vector :math:`z_e` to its nearest code (van den Oord et al.,
2017),

.. math::
    k(z_e) = \arg\min_k \lVert z_e - e_k \rVert_2^2, \qquad z_q = e_{k(z_e)}.

The arg min has no gradient, so the decoder's gradient is copied to the encoder
unchanged (the straight-through estimator): the forward pass uses
:math:`z_q = z_e + \operatorname{sg}(e_k - z_e)`, whose Jacobian with respect to
:math:`z_e` is the identity. The codes learn either from the codebook loss
:math:`\lVert \operatorname{sg}(z_e) - e_k \rVert^2` (the default) or, with ``ema=True``,
from exponential moving averages of the vectors assigned to them (see :class:`Codebook`);
the commitment loss :math:`\lVert z_e - \operatorname{sg}(e_k) \rVert^2` keeps the encoder
near its codes in both cases. Codes that no vector chose for ``restart_after`` training
steps are moved onto encoder outputs of the current batch (dead-code restarts).

Everything the codebook updates while training (the EMA statistics, the steps since each
code was last used) is a buffer: it is in the ``state_dict``, in checkpoints and in model
files, so that a resumed run continues exactly.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .._validation import check_positive_int, check_real
from ..io.registry import register_by_arguments

__all__ = ["Codebook", "Quantized"]


class Quantized(NamedTuple):
    """What :meth:`Codebook.forward` returns.

    Attributes:
        z_q: the quantized map with straight-through gradients, ``z_e``'s shape: its
            values are the codes, its gradient flows to ``z_e`` unchanged.
        codes: the chosen codes :math:`e_{k}`, ``z_e``'s shape; in gradient mode their
            gradient reaches the codebook (the codebook loss uses them).
        indices: the code index of each position, ``(batch, *spatial)``, int64.
        codebook_loss: :math:`\\lVert \\operatorname{sg}(z_e) - e_k \\rVert^2` summed over
            positions and dimensions, ``(batch,)``; zeros with ``ema=True`` (the codes
            then learn from their moving averages instead).
        commitment: :math:`\\lVert z_e - \\operatorname{sg}(e_k) \\rVert^2` summed alike,
            ``(batch,)``.
        perplexity: :math:`\\exp(-\\sum_k p_k \\log p_k)` of the batch's code
            frequencies :math:`p_k`, a scalar between 1 (one code) and :math:`K` (all
            used equally).
        usage: the fraction of the :math:`K` codes the batch used, a scalar.
    """

    z_q: Tensor
    codes: Tensor
    indices: Tensor
    codebook_loss: Tensor
    commitment: Tensor
    perplexity: Tensor
    usage: Tensor


def _world() -> int:
    """The number of processes sharing the codebook (1 outside ``torch.distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class Codebook(nn.Module):
    r"""K learned code vectors, nearest-code quantization, EMA updates, dead-code restarts.

    The input is a map of vectors with the embedding dimension second,
    ``(batch, dim, *spatial)`` (e.g. ``(batch, D, h, w)`` from a convolutional encoder,
    or ``(batch, D)`` for one code per example). Distances are computed in float32
    (outside autocast), as :math:`\lVert e_k \rVert^2 - 2 z_e^\top e_k` (the
    :math:`\lVert z_e \rVert^2` term does not change the arg min).

    **EMA updates** (``ema=True``; van den Oord et al., 2017, appendix A.1). In training
    mode, with :math:`n_k` the number of vectors assigned to code :math:`k` in the batch
    and :math:`s_k` their sum, the buffers :math:`N_k` (``ema_count``) and :math:`m_k`
    (``ema_sum``) follow

    .. math::
        N_k \leftarrow \gamma N_k + (1 - \gamma)\, n_k, \qquad
        m_k \leftarrow \gamma m_k + (1 - \gamma)\, s_k,

    and the codes become :math:`e_k = m_k / \tilde N_k` with the Laplace-smoothed counts
    :math:`\tilde N_k = \frac{N_k + \epsilon}{N + K \epsilon} N`, :math:`N = \sum_k N_k`,
    so that an unused code is never divided by zero. They start at :math:`N_k = 1`,
    :math:`m_k = e_k`. The codes are then buffers, not parameters: no optimizer moves
    them, and the codebook loss is zero. Under ``torch.distributed`` the counts and sums
    are summed over the processes, so every rank holds the same codebook.

    **Dead-code restarts** (``restart_after=N``). A buffer counts, for each code, the
    training steps since a vector last chose it; at the start of a training step, every
    code unused for ``N`` steps is set to an encoder output of the current batch drawn
    at random (without replacement when the batch has at least ``K`` vectors), its age to
    0 and, with EMA, its statistics to :math:`N_k = 1, m_k = e_k`. The draw uses the
    global torch generator, which a :class:`~torchvae.Trainer` seeds and checkpoints, so
    a run with restarts is reproducible and resumes exactly; under ``torch.distributed``
    rank 0's draw is broadcast. The check costs no device synchronization: candidates are
    drawn every step and kept only for dead codes.

    Codes start uniform in :math:`[-1/K, 1/K]`.

    Args:
        num_codes: :math:`K`.
        dim: :math:`D`, the length of each code (the encoder's output channels).
        ema: learn the codes by moving averages instead of the codebook loss.
        decay: :math:`\gamma` in [0, 1) for ``ema=True``.
        epsilon: :math:`\epsilon > 0`, the Laplace smoothing of the counts.
        restart_after: restart codes unused for this many training steps; ``None``
            (the default) never restarts.

    Example:
        >>> book = Codebook(num_codes=8, dim=4)
        >>> q = book(torch.randn(2, 4, 3, 3))
        >>> q.z_q.shape, q.indices.shape
        (torch.Size([2, 4, 3, 3]), torch.Size([2, 3, 3]))
    """

    embedding: Tensor
    unused_steps: Tensor
    ema_count: Tensor
    ema_sum: Tensor

    def __init__(
        self,
        num_codes: int,
        dim: int,
        *,
        ema: bool = False,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_after: int | None = None,
    ) -> None:
        super().__init__()
        self.num_codes = check_positive_int(num_codes, "num_codes")
        self.dim = check_positive_int(dim, "dim")
        if not isinstance(ema, bool):
            raise TypeError(f"ema must be a bool, got {type(ema).__name__} {ema!r}")
        self.ema = ema
        self.decay = check_real(decay, "decay")
        if not 0.0 <= self.decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.epsilon = check_real(epsilon, "epsilon")
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"epsilon must be a positive finite float, got {epsilon}")
        self.restart_after = (
            None if restart_after is None else check_positive_int(restart_after, "restart_after")
        )
        codes = torch.empty(self.num_codes, self.dim).uniform_(
            -1.0 / self.num_codes, 1.0 / self.num_codes
        )
        if ema:
            self.register_buffer("embedding", codes)
            self.register_buffer("ema_count", torch.ones(self.num_codes))
            self.register_buffer("ema_sum", codes.clone())
        else:
            self.embedding = nn.Parameter(codes)
        self.register_buffer("unused_steps", torch.zeros(self.num_codes, dtype=torch.long))

    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this codebook (JSON values)."""
        return {
            "num_codes": self.num_codes,
            "dim": self.dim,
            "ema": self.ema,
            "decay": self.decay,
            "epsilon": self.epsilon,
            "restart_after": self.restart_after,
        }

    def _flat(self, z_e: Tensor) -> Tensor:
        if z_e.ndim < 2 or z_e.shape[1] != self.dim:
            raise ValueError(
                f"the encoder output must have shape (batch, dim, *spatial) with dim = "
                f"{self.dim} (the codebook's), got shape {tuple(z_e.shape)}"
            )
        return z_e.movedim(1, -1).reshape(-1, self.dim)

    @torch.no_grad()
    def nearest(self, z_e: Tensor) -> Tensor:
        r"""The index of the nearest code of every vector, ``(batch, *spatial)``, int64.

        Args:
            z_e: ``(batch, dim, *spatial)``.
        """
        flat = self._flat(z_e)
        return self._nearest(flat).reshape(z_e.shape[0], *z_e.shape[2:])

    def _nearest(self, flat: Tensor) -> Tensor:
        with torch.autocast(flat.device.type, enabled=False):
            codes = self.embedding.detach().float()
            scores = torch.addmm(codes.square().sum(1), flat.detach().float(), codes.T, alpha=-2)
        return scores.argmin(1)

    def lookup(self, indices: Tensor) -> Tensor:
        """The codes of ``indices`` ``(batch, *spatial)``, as a map ``(batch, dim, *spatial)``."""
        if indices.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"indices must be an integer tensor, got dtype {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.num_codes):
            raise ValueError(
                f"indices must lie in [0, {self.num_codes}), got values in "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        return F.embedding(indices, self.embedding).movedim(-1, 1)

    def forward(self, z_e: Tensor) -> Quantized:
        """Quantize ``z_e`` ``(batch, dim, *spatial)``; in training mode, update the codebook.

        Returns:
            A :class:`Quantized` with the straight-through map, the codes, their indices,
            the codebook and commitment terms per example and the batch's code usage.
        """
        flat = self._flat(z_e)
        if self.training and self.restart_after is not None:
            self._restart(flat.detach())
        index = self._nearest(flat)
        chosen = F.embedding(index, self.embedding)
        counts = torch.bincount(index, minlength=self.num_codes)
        codes = chosen.reshape(*z_e.shape[:1], *z_e.shape[2:], self.dim).movedim(-1, 1)
        commitment = (z_e - codes.detach()).square().flatten(1).sum(1)
        if self.ema:
            codebook_loss = torch.zeros_like(commitment)
        else:
            codebook_loss = (z_e.detach() - codes).square().flatten(1).sum(1)
        z_q = z_e + (codes - z_e).detach()
        p = counts.to(flat.dtype) / max(1, index.numel())
        perplexity = torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum())
        usage = (counts > 0).to(flat.dtype).mean()
        if self.training:
            self._update(flat.detach(), index, counts)
        indices = index.reshape(z_e.shape[0], *z_e.shape[2:])
        return Quantized(z_q, codes, indices, codebook_loss, commitment, perplexity, usage)

    @torch.no_grad()
    def _update(self, flat: Tensor, index: Tensor, counts: Tensor) -> None:
        """The EMA step and the codes' ages, after a training batch."""
        world = _world()
        if world > 1:
            counts = counts.clone()
            dist.all_reduce(counts)
        if self.ema:
            n_k = counts.to(self.ema_count.dtype)
            if flat.device.type == "cpu":
                sums = torch.zeros_like(self.ema_sum).index_add_(0, index, flat.to(self.ema_sum))
            else:  # a matrix product sums in a fixed order; index_add_ on a GPU does not
                one_hot = F.one_hot(index, self.num_codes).to(self.ema_sum.dtype)
                sums = one_hot.T @ flat.to(self.ema_sum.dtype)
            if world > 1:
                dist.all_reduce(sums)
            self.ema_count.mul_(self.decay).add_(n_k, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            total = self.ema_count.sum()
            smoothed = (self.ema_count + self.epsilon) / (total + self.num_codes * self.epsilon)
            self.embedding.copy_(self.ema_sum / (smoothed * total).unsqueeze(1))
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)

    @torch.no_grad()
    def _restart(self, flat: Tensor) -> None:
        """Move codes unused for ``restart_after`` steps onto vectors of this batch."""
        assert self.restart_after is not None
        n, k = flat.shape[0], self.num_codes
        if n >= k:
            pick = torch.randperm(n, device=flat.device)[:k]
        else:
            pick = torch.randint(n, (k,), device=flat.device)
        candidates = flat[pick].to(self.embedding.dtype)
        if _world() > 1:
            dist.broadcast(candidates, 0)
        dead = (self.unused_steps >= self.restart_after).unsqueeze(1)
        self.embedding.copy_(torch.where(dead, candidates, self.embedding))
        if self.ema:
            self.ema_sum.copy_(torch.where(dead, candidates, self.ema_sum))
            self.ema_count.masked_fill_(dead.squeeze(1), 1.0)
        self.unused_steps.masked_fill_(dead.squeeze(1), 0)

    def extra_repr(self) -> str:
        parts = [f"num_codes={self.num_codes}", f"dim={self.dim}"]
        if self.ema:
            parts += ["ema=True", f"decay={self.decay:g}", f"epsilon={self.epsilon:g}"]
        if self.restart_after is not None:
            parts.append(f"restart_after={self.restart_after}")
        return ", ".join(parts)


register_by_arguments(Codebook)
