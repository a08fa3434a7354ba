r"""The small convex problems the metrics solve, in torch, batched, on any device.

- :func:`logistic_regression`: multinomial logistic regression with an L2 penalty,
  scikit-learn's ``LogisticRegression()`` objective, solved to convergence by L-BFGS.
- :func:`linear_svm_1d`: one-feature linear SVMs, liblinear's (scikit-learn's
  ``LinearSVC``) squared-hinge primal, one-vs-rest, solved by Newton's method for all
  codes and classes at once.
- :func:`lasso`: the Lasso for several targets at once, by FISTA.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["lasso", "linear_svm_1d", "logistic_regression"]


def logistic_regression(
    x: Tensor,
    y: Tensor,
    num_classes: int,
    C: float = 1.0,  # noqa: N803 - scikit-learn's name
    max_iter: int = 500,
) -> tuple[Tensor, Tensor]:
    r"""Fit multinomial logistic regression with an L2 penalty, to convergence.

    .. math::

        \min_{W, b}\ \tfrac12\|W\|_F^2 + C \sum_i -\log \mathrm{softmax}(x_i W + b)_{y_i}

    The intercept :math:`b` is not penalized (as in scikit-learn). The objective is
    strictly convex in :math:`W`, so the fit is the one optimum whatever the solver.

    Args:
        x: Features ``(n, d)``, floating point.
        y: Classes ``(n,)`` in ``0..num_classes - 1``.
        num_classes: The number of classes.
        C: The inverse strength of the penalty.
        max_iter: L-BFGS iterations at most.

    Returns:
        ``(W, b)`` of shapes ``(d, num_classes)`` and ``(num_classes,)``.
    """
    W = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [W, b],
        lr=1,
        max_iter=max_iter,
        tolerance_grad=1e-8,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )
    scale = 1.0 / x.shape[0]  # the objective divided by C n: the same optimum, better scaled

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ W + b, y, reduction="sum")
        loss = scale * (loss + 0.5 / C * (W * W).sum())
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        opt.step(closure)  # type: ignore[no-untyped-call]
    return W.detach(), b.detach()


def _prefix_sums(values: Tensor) -> Tensor:
    """Cumulative sums along the last dimension with a leading 0: ``(..., n + 1)``."""
    return torch.nn.functional.pad(values.cumsum(dim=-1), (1, 0))


class _Side:
    """Prefix sums of :math:`c`, :math:`c x`, :math:`c x^2` over one label's samples."""

    def __init__(self, xs: Tensor, cost: Tensor) -> None:
        self.sums = _prefix_sums(torch.stack((cost, cost * xs, cost * xs * xs)))  # (3, P, n+1)

    def below(self, k: Tensor) -> Tensor:
        """Sums ``(3, P)`` over the first ``k`` samples (in sorted order) of each problem."""
        return self.sums.gather(-1, k.expand(3, -1).unsqueeze(-1)).squeeze(-1)

    def above(self, k: Tensor) -> Tensor:
        """Sums ``(3, P)`` over the samples from the ``k``-th on."""
        return self.sums[..., -1] - self.below(k)


def _active_sums(xs: Tensor, pos: _Side, neg: _Side, w: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    r"""Sums ``(3, P)`` over the samples inside the margin, :math:`s_i (w x_i + b) < 1`.

    For :math:`w > 0` these are the positives with :math:`x < (1 - b)/w` and the negatives
    with :math:`x > (-1 - b)/w` (reversed for :math:`w < 0`): a prefix and a suffix of the
    sorted samples, found by binary search.
    """
    n = xs.shape[-1]
    safe = torch.where(w == 0, torch.ones_like(w), w)
    t_pos = ((1 - b) / safe).unsqueeze(-1).contiguous()
    t_neg = ((-1 - b) / safe).unsqueeze(-1).contiguous()

    def count(t: Tensor, right: bool) -> Tensor:
        return torch.searchsorted(xs, t, right=right).squeeze(-1)

    zero, full = torch.zeros_like(w, dtype=torch.long), torch.full_like(w, n, dtype=torch.long)
    # w = 0: every positive is inside when b < 1, every negative when b > -1.
    k_pos = torch.where(
        w > 0,
        count(t_pos, False),
        torch.where(w < 0, count(t_pos, True), torch.where(b < 1, full, zero)),
    )
    k_neg = torch.where(
        w > 0,
        count(t_neg, True),
        torch.where(w < 0, count(t_neg, False), torch.where(b > -1, full, zero)),
    )
    p = torch.where(w >= 0, pos.below(k_pos), pos.above(k_pos))
    q = torch.where(w > 0, neg.above(k_neg), neg.below(k_neg))
    return p, q


def _objective(w: Tensor, b: Tensor, p: Tensor, q: Tensor) -> Tensor:
    plus = (1 - b) ** 2 * p[0] - 2 * (1 - b) * w * p[1] + w * w * p[2]
    minus = (1 + b) ** 2 * q[0] + 2 * (1 + b) * w * q[1] + w * w * q[2]
    return 0.5 * (w * w + b * b) + plus + minus


def linear_svm_1d(
    x: Tensor, s: Tensor, cost: Tensor, max_iter: int = 100, tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    r"""Solve one-feature squared-hinge SVMs with a penalized intercept, all at once.

    Problem :math:`p` is liblinear's primal (scikit-learn's ``LinearSVC``) with the bias as
    a feature of value 1:

    .. math::

        \min_{w, b}\ \tfrac12 (w^2 + b^2)
        + \sum_i c_{pi} \max\bigl(0,\ 1 - s_{pi} (w x_i + b)\bigr)^2.

    It is convex and piecewise quadratic. Newton's method on its (generalized) 2x2
    Hessian with a backtracking line search reaches the optimum in a few steps; each
    step costs a binary search, not a pass over the samples: on one feature the samples
    inside the margin are a prefix and a suffix of the sorted ``x``, whose sums of
    :math:`c`, :math:`c x`, :math:`c x^2` come from prefix sums computed once.

    Args:
        x: The feature ``(n,)``, shared by the problems.
        s: Labels in {-1, +1}, ``(P, n)``.
        cost: Per-sample costs :math:`c_{pi} > 0`, ``(P, n)``.
        max_iter: Newton steps at most.
        tol: Stop when every gradient's largest entry is below this.

    Returns:
        ``(w, b)``, each ``(P,)``.
    """
    order = torch.argsort(x)
    xs = x[order]
    s, cost = s[:, order], cost[:, order]
    pos = _Side(xs, torch.where(s > 0, cost, torch.zeros_like(cost)))
    neg = _Side(xs, torch.where(s < 0, cost, torch.zeros_like(cost)))
    w = torch.zeros(s.shape[0], dtype=x.dtype, device=x.device)
    b = torch.zeros_like(w)
    p, q = _active_sums(xs, pos, neg, w, b)
    f = _objective(w, b, p, q)
    for _ in range(max_iter):
        s0, s1, s2 = p + q
        g_w = w + 2 * (w * s2 + b * s1 - (p[1] - q[1]))
        g_b = b + 2 * (w * s1 + b * s0 - (p[0] - q[0]))
        if float(torch.maximum(g_w.abs(), g_b.abs()).max()) < tol:
            break
        h_ww, h_wb, h_bb = 1 + 2 * s2, 2 * s1, 1 + 2 * s0
        det = h_ww * h_bb - h_wb * h_wb
        d_w = -(h_bb * g_w - h_wb * g_b) / det
        d_b = -(-h_wb * g_w + h_ww * g_b) / det
        slope = g_w * d_w + g_b * d_b
        step = torch.ones_like(w)
        pending = torch.ones_like(w, dtype=torch.bool)
        new_w, new_b, new_f = w, b, f
        for _ in range(40):
            cand_w, cand_b = w + step * d_w, b + step * d_b
            cand_f = _objective(cand_w, cand_b, *_active_sums(xs, pos, neg, cand_w, cand_b))
            ok = pending & (cand_f <= f + 1e-4 * step * slope)
            new_w, new_b = torch.where(ok, cand_w, new_w), torch.where(ok, cand_b, new_b)
            new_f = torch.where(ok, cand_f, new_f)
            pending = pending & ~ok
            if not bool(pending.any()):
                break
            step = torch.where(pending, step * 0.5, step)
        if not bool((new_f < f).any()):
            break
        w, b, f = new_w, new_b, new_f
        p, q = _active_sums(xs, pos, neg, w, b)
    return w, b


def lasso(x: Tensor, y: Tensor, alpha: float, max_iter: int = 5000, tol: float = 1e-10) -> Tensor:
    r"""The Lasso for each column of ``y``: :math:`\min_W \tfrac1{2n}\|Y - XW\|^2 + \alpha\|W\|_1`.

    Solved by FISTA (accelerated proximal gradient with soft thresholding), which updates
    every coefficient at once: identical columns of ``x`` get identical weights (starting
    from zero, the iterates stay symmetric), where coordinate descent would give all the
    weight to the first.

    Args:
        x: Centred features ``(n, d)``.
        y: Centred targets ``(n, K)``.
        alpha: The L1 penalty :math:`\alpha`.
        max_iter: Iterations at most.
        tol: Stop when no coefficient moves more than this in an iteration.

    Returns:
        ``W`` of shape ``(d, K)``.
    """
    n = x.shape[0]
    gram = x.T @ x / n
    xty = x.T @ y / n
    lipschitz = float(torch.linalg.eigvalsh(gram).max().clamp(min=1e-12))
    W = torch.zeros(x.shape[1], y.shape[1], dtype=x.dtype, device=x.device)
    V, t = W, 1.0
    for _ in range(max_iter):
        grad = gram @ V - xty
        step = V - grad / lipschitz
        W_next = step.sign() * (step.abs() - alpha / lipschitz).clamp(min=0)
        t_next = (1 + (1 + 4 * t * t) ** 0.5) / 2
        V = W_next + (t - 1) / t_next * (W_next - W)
        moved = float((W_next - W).abs().max())
        W, t = W_next, t_next
        if moved < tol:
            break
    return W
