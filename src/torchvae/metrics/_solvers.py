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


def _squared_hinge(
    w: Tensor, b: Tensor, x: Tensor, s: Tensor, cost: Tensor
) -> tuple[Tensor, Tensor]:
    """Objectives ``w.shape`` and margins ``(*w.shape, n)`` of the problems ``(w, b)``."""
    margin = 1 - s * (w.unsqueeze(-1) * x + b.unsqueeze(-1))
    hinge = margin.clamp(min=0)
    return 0.5 * (w * w + b * b) + (cost * hinge * hinge).sum(dim=-1), margin


def linear_svm_1d(
    x: Tensor, s: Tensor, cost: Tensor, max_iter: int = 100, tol: float = 1e-10
) -> tuple[Tensor, Tensor]:
    r"""Solve many one-feature squared-hinge SVMs with a penalized intercept, at once.

    Each problem is liblinear's primal with the bias as a feature of value 1:

    .. math::

        \min_{w, b}\ \tfrac12 (w^2 + b^2)
        + \sum_i c_i \max\bigl(0,\ 1 - s_i (w x_i + b)\bigr)^2,

    solved by Newton's method on its (generalized) 2x2 Hessian with a backtracking line
    search: the objective is convex and piecewise quadratic, so this converges in a few
    steps to the optimum liblinear approaches.

    Args:
        x: Features ``(..., n)``.
        s: Labels in {-1, +1}, ``(..., n)``.
        cost: Per-sample costs :math:`c_i`, ``(..., n)``.
        max_iter: Newton steps at most.
        tol: Stop when every gradient's largest entry is below this.

    The three broadcast together to the problems' shape ``(..., n)``.

    Returns:
        ``(w, b)``, each of the broadcast shape without its last dimension.
    """
    shape = (x * s * cost).shape[:-1]
    w = torch.zeros(shape, dtype=x.dtype, device=x.device)
    b = torch.zeros_like(w)
    f, margin = _squared_hinge(w, b, x, s, cost)
    for _ in range(max_iter):
        active = cost * (margin > 0)
        r = 2 * active * s * margin
        g_w = w - (r * x).sum(dim=-1)
        g_b = b - r.sum(dim=-1)
        if float(torch.maximum(g_w.abs(), g_b.abs()).max()) < tol:
            break
        ax = active * x
        h_ww = 1 + 2 * (ax * x).sum(dim=-1)
        h_wb = 2 * ax.sum(dim=-1)
        h_bb = 1 + 2 * active.sum(dim=-1)
        det = h_ww * h_bb - h_wb * h_wb
        d_w = -(h_bb * g_w - h_wb * g_b) / det
        d_b = -(-h_wb * g_w + h_ww * g_b) / det
        slope = g_w * d_w + g_b * d_b
        step = torch.ones_like(w)
        pending = torch.ones(shape, dtype=torch.bool, device=x.device)
        new_w, new_b, new_f, new_margin = w, b, f, margin
        for _ in range(30):
            cand_w, cand_b = w + step * d_w, b + step * d_b
            cand_f, cand_margin = _squared_hinge(cand_w, cand_b, x, s, cost)
            ok = pending & (cand_f <= f + 1e-4 * step * slope)
            new_w, new_b = torch.where(ok, cand_w, new_w), torch.where(ok, cand_b, new_b)
            new_f = torch.where(ok, cand_f, new_f)
            new_margin = torch.where(ok.unsqueeze(-1), cand_margin, new_margin)
            pending = pending & ~ok
            if not bool(pending.any()):
                break
            step = torch.where(pending, step * 0.5, step)
        if not bool((new_f < f).any()):
            break
        w, b, f, margin = new_w, new_b, new_f, new_margin
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
