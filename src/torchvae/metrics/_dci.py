r"""Disentanglement, completeness and informativeness, DCI (Eastwood & Williams 2018)."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_int, check_real
from ..data.factors import FactorDataset
from ._codes import Representation, check_dataset, make_generator, resolve_device, sample_codes
from ._solvers import lasso

__all__ = ["DCIScore", "dci", "dci_from_importance", "lasso_importance"]

Estimator = Literal["lasso", "gbt"]


class DCIScore(NamedTuple):
    """What :func:`dci` returns."""

    disentanglement: float
    """:math:`D`: how much each code is about one factor only, weighted by code importance."""
    completeness: float
    """:math:`C`: how much each factor is held by one code only, weighted by factor importance."""
    informativeness_train: float
    """How well the codes predict the factors on the training images (higher is better)."""
    informativeness_test: float
    """The same on new images."""
    importance: Tensor
    """The importance matrix :math:`R`, ``(d, K)``."""


def _entropy(p: Tensor, base: int, dim: int) -> Tensor:
    p = p / p.sum(dim=dim, keepdim=True)
    return -(p * p.log()).sum(dim=dim) / torch.log(torch.tensor(float(base), dtype=p.dtype))


def dci_from_importance(importance: Tensor) -> tuple[float, float]:
    r"""Disentanglement and completeness of an importance matrix :math:`R \ge 0` ``(d, K)``.

    With :math:`P_{jk} = R_{jk} / \sum_{k'} R_{jk'}` and
    :math:`\tilde P_{jk} = R_{jk} / \sum_{j'} R_{j'k}` (after adding :math:`10^{-11}` to
    every entry, as disentanglement_lib):

    .. math::

        D = \sum_j \rho_j \bigl(1 - H_K(P_{j\cdot})\bigr), \quad
        \rho_j = \frac{\sum_k R_{jk}}{\sum_{jk} R_{jk}}, \qquad
        C = \sum_k \tilde\rho_k \bigl(1 - H_d(\tilde P_{\cdot k})\bigr), \quad
        \tilde\rho_k = \frac{\sum_j R_{jk}}{\sum_{jk} R_{jk}},

    entropies in base :math:`K` and :math:`d`. (The paper averages :math:`C_k` uniformly;
    disentanglement_lib weights it like :math:`D`, as here.) An all-zero :math:`R` has
    uniform weights and scores 0. For a single code or factor the base-1 entropy is taken
    as 0.
    """
    d, K = importance.shape
    R = importance.abs()
    eps = R + 1e-11
    per_code = 1 - (_entropy(eps, K, 1) if K > 1 else torch.zeros(d, dtype=R.dtype))
    per_factor = 1 - (_entropy(eps, d, 0) if d > 1 else torch.zeros(K, dtype=R.dtype))
    total = R.sum()
    weights = R if float(total) > 0 else torch.ones_like(R)
    code_weight = weights.sum(dim=1) / weights.sum()
    factor_weight = weights.sum(dim=0) / weights.sum()
    D = float((per_code * code_weight).sum().clamp(0, 1))
    C = float((per_factor * factor_weight).sum().clamp(0, 1))
    return D, C


def _standardize(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (x - mean) / torch.where(std > 0, std, torch.ones_like(std))


def lasso_importance(
    codes: Tensor, factors: Tensor, test_codes: Tensor, test_factors: Tensor, alpha: float
) -> tuple[Tensor, float, float]:
    r"""Lasso importances :math:`R_{jk} = |W_{jk}|` and the mean train and test :math:`R^2`.

    Codes and factor classes are standardized with the training mean and standard
    deviation; factor :math:`k` is regressed on all codes by the Lasso,
    :math:`\min_w \tfrac1{2n}\|v_k - Z w\|^2 + \alpha \|w\|_1`. Informativeness is the
    coefficient of determination :math:`R^2 = 1 - \mathrm{NRMSE}^2` of the fit, clipped to
    :math:`[0, 1]`, averaged over factors.
    """
    f_train, f_test = factors.to(codes.dtype), test_factors.to(codes.dtype)
    z_mean, z_std = codes.mean(dim=0), codes.std(dim=0)
    f_mean, f_std = f_train.mean(dim=0), f_train.std(dim=0)
    Z = _standardize(codes, z_mean, z_std)
    V = _standardize(f_train, f_mean, f_std)
    W = lasso(Z, V, alpha)

    def r2(z: Tensor, v: Tensor) -> float:
        residual = ((v - z @ W) ** 2).mean(dim=0)
        return float((1 - residual / (v * v).mean(dim=0).clamp(min=1e-12)).clamp(0, 1).mean())

    Zt, Vt = _standardize(test_codes, z_mean, z_std), _standardize(f_test, f_mean, f_std)
    Vt = Vt - Vt.mean(dim=0)
    return W.abs(), r2(Z, V), r2(Zt, Vt)


def _gbt_importance(
    codes: Tensor, factors: Tensor, test_codes: Tensor, test_factors: Tensor, seed: int
) -> tuple[Tensor, float, float]:
    try:
        from sklearn.ensemble import GradientBoostingClassifier
    except ImportError as e:
        raise ImportError(
            "dci(estimator='gbt') needs scikit-learn, an optional dependency: "
            "pip install 'torchvae[metrics]' (or use the pure-torch estimator='lasso')"
        ) from e
    x, xt = codes.cpu().double().numpy(), test_codes.cpu().double().numpy()
    columns, train_acc, test_acc = [], [], []
    for k in range(factors.shape[1]):
        y, yt = factors[:, k].cpu().numpy(), test_factors[:, k].cpu().numpy()
        model: Any = GradientBoostingClassifier(random_state=seed)
        model.fit(x, y)
        columns.append(torch.as_tensor(model.feature_importances_, dtype=torch.float64))
        train_acc.append(float((model.predict(x) == y).mean()))
        test_acc.append(float((model.predict(xt) == yt).mean()))
    importance = torch.stack(columns, dim=1).abs()
    return importance, sum(train_acc) / len(train_acc), sum(test_acc) / len(test_acc)


def dci(
    representation: Representation,
    dataset: FactorDataset,
    *,
    seed: int | torch.Generator = 0,
    n_train: int = 10000,
    n_test: int = 5000,
    estimator: Estimator = "lasso",
    alpha: float | None = None,
    eval_batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> DCIScore:
    r"""Disentanglement, completeness and informativeness of codes, from a regressor's importances.

    A predictor of each factor from all codes is fitted on ``n_train`` random images; the
    magnitude of its reliance on code :math:`j` for factor :math:`k` fills the importance
    matrix :math:`R_{jk}`, and :func:`dci_from_importance` turns it into :math:`D` and
    :math:`C`. Two estimators of :math:`R`:

    - ``"lasso"`` (the default, pure torch, any device): the paper's linear one,
      :math:`R_{jk} = |W_{jk}|` of a Lasso on standardized codes and factor classes with
      penalty ``alpha`` (:func:`lasso_importance`). The paper picks :math:`\alpha` by
      validation; the default :math:`4 / \sqrt{n}`, four standard errors of a correlation
      over the ``n_train`` samples, leaves codes unrelated to a factor with no weight
      (otherwise the few that pass by chance would make pure noise look disentangled).
      Informativeness is the fit's :math:`R^2 = 1 - \mathrm{NRMSE}^2` (the paper reports
      the error itself) on the training and on ``n_test`` new images. It sees linear
      relations only.
    - ``"gbt"``: disentanglement_lib's (and ``disent``'s) estimator, scikit-learn's
      ``GradientBoostingClassifier()`` per factor with its impurity-based
      ``feature_importances_``; informativeness is its classification accuracy. Needs
      ``pip install 'torchvae[metrics]'``; runs on the CPU, and is slow (minutes at the
      default sizes).

    Disentanglement measures whether each code is about a single factor: codes that all
    copy one factor have :math:`D = 1` by this definition, but low :math:`C` (the factor is
    spread over every code) and low informativeness (the other factors are lost).

    Args:
        representation: Images -> codes ``(n, d)``.
        dataset: The :class:`~torchvae.FactorDataset`.
        seed: An int or a CPU ``torch.Generator`` (also seeds the trees' tie-breaking).
        n_train: Images the regressors are fitted on.
        n_test: Images the test informativeness is measured on.
        estimator: ``"lasso"`` or ``"gbt"``.
        alpha: The Lasso's penalty, for standardized codes and factors (default
            :math:`4/\sqrt{\text{n\_train}}`).
        eval_batch_size: Images per call of ``representation`` (no effect on the value).
        device: Where images go and the arithmetic runs (default: the CPU).

    Returns:
        A :class:`DCIScore`.

    Raises:
        ImportError: ``estimator="gbt"`` without scikit-learn (the message names the extra).
        ValueError: An unknown ``estimator`` or a negative ``alpha``.
    """
    dataset = check_dataset(dataset)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    if n_train < 2:
        raise ValueError("n_train must be >= 2")
    alpha = 4 / n_train**0.5 if alpha is None else check_real(alpha, "alpha")
    if estimator not in ("lasso", "gbt"):
        raise ValueError(f"estimator must be 'lasso' or 'gbt', got {estimator!r}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    gen, dev = make_generator(seed), resolve_device(device)
    tree_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    codes, factors = sample_codes(representation, dataset, n_train, gen, eval_batch_size, dev)
    test_codes, test_factors = sample_codes(
        representation, dataset, n_test, gen, eval_batch_size, dev
    )
    if estimator == "lasso":
        importance, inf_train, inf_test = lasso_importance(
            codes, factors, test_codes, test_factors, alpha
        )
    else:
        importance, inf_train, inf_test = _gbt_importance(
            codes, factors, test_codes, test_factors, tree_seed
        )
    importance = importance.cpu().double()
    disentanglement, completeness = dci_from_importance(importance)
    return DCIScore(disentanglement, completeness, inf_train, inf_test, importance)
