r"""The separated attribute predictability, SAP (Kumar et al. 2018), as disentanglement_lib."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_int, check_real
from ..data.factors import FactorDataset
from ._codes import Representation, check_dataset, make_generator, resolve_device, sample_codes
from ._solvers import linear_svm_1d

__all__ = ["SAPScore", "sap_score", "svm_accuracy"]


class SAPScore(NamedTuple):
    """What :func:`sap_score` returns."""

    score: float
    """The mean over factors of the gap between the two most predictive codes."""
    matrix: Tensor
    """The score matrix :math:`S`, ``(d, K)``."""


def svm_accuracy(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    C: float = 0.01,  # noqa: N803
) -> Tensor:
    r"""Test accuracy ``(d,)`` of a linear SVM on each single code, as scikit-learn's ``LinearSVC``.

    For each code :math:`j` and each class :math:`c` present in ``y_train``, one-vs-rest:
    labels :math:`s_i = \pm 1`, costs :math:`C w_c` for the class's own samples and
    :math:`C` for the rest (liblinear's one-vs-rest weighting), with the balanced weights
    :math:`w_c = n / (L\, n_c)`; two classes give one problem with costs :math:`C w_{y_i}`.
    The prediction is the class of the largest decision value :math:`w x + b`
    (for two classes, the sign). All the problems are solved at once, exactly, by Newton's
    method in torch (liblinear's intercept is a penalized feature of value 1).

    Args:
        x_train: Codes ``(n, d)``.
        y_train: Classes ``(n,)``.
        x_test: Codes ``(m, d)``.
        y_test: Classes ``(m,)``.
        C: The SVM's cost (disentanglement_lib: 0.01).
    """
    classes, y = torch.unique(y_train, sorted=True, return_inverse=True)
    L, n = classes.numel(), y.shape[0]
    d = x_train.shape[1]
    dtype = x_train.dtype
    if L < 2:
        hit: Tensor = y_test == classes[0]
        return hit.to(dtype).mean().expand(d).clone()
    counts = torch.bincount(y, minlength=L).to(dtype)
    weight = n / (L * counts)
    if L == 2:
        s = (2 * y - 1).to(dtype).unsqueeze(0)  # (1, n)
        cost = (C * weight[y]).unsqueeze(0)
    else:
        own = y.unsqueeze(0) == torch.arange(L, device=y.device).unsqueeze(1)  # (L, n)
        s = own.to(dtype) * 2 - 1
        cost = torch.where(own, C * weight.unsqueeze(1), torch.full_like(s, C))
    fits = [linear_svm_1d(x_train[:, j], s, cost) for j in range(d)]
    w = torch.stack([fit[0] for fit in fits]).unsqueeze(-1)  # (d, P, 1)
    b = torch.stack([fit[1] for fit in fits]).unsqueeze(-1)
    decision = w * x_test.T.unsqueeze(1) + b  # (d, P, m)
    index = (decision[:, 0] > 0).long() if L == 2 else decision.argmax(dim=1)
    hits: Tensor = classes[index] == y_test.unsqueeze(0)
    return hits.to(dtype).mean(dim=1)


def _r_squared(codes: Tensor, factors: Tensor) -> Tensor:
    """Squared correlation ``(d, K)`` of each code with each factor; 0 for a constant code."""
    zc = codes - codes.mean(dim=0)
    fc = factors.to(codes.dtype)
    fc = fc - fc.mean(dim=0)
    n = codes.shape[0]
    cov = zc.T @ fc / (n - 1)
    var_z = (zc * zc).sum(dim=0) / (n - 1)
    var_f = (fc * fc).sum(dim=0) / (n - 1)
    r2 = cov**2 / (var_z.unsqueeze(1) * var_f.unsqueeze(0))
    return torch.where(var_z.unsqueeze(1) > 1e-12, r2, torch.zeros_like(r2))


def sap_score(
    representation: Representation,
    dataset: FactorDataset,
    *,
    seed: int | torch.Generator = 0,
    n_train: int = 10000,
    n_test: int = 5000,
    continuous_factors: bool = False,
    C: float = 0.01,  # noqa: N803 - the SVM's C, as everywhere
    eval_batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> SAPScore:
    r"""The SAP score: the gap between the two codes that best predict each factor, alone.

    A score matrix :math:`S \in \mathbb{R}^{d \times K}` holds how well code :math:`j`
    alone predicts factor :math:`k`, and

    .. math::

        \mathrm{SAP} = \frac1K \sum_{k=1}^K \bigl( S_{j^{(1)}_k k} - S_{j^{(2)}_k k} \bigr)

    with :math:`j^{(1)}_k, j^{(2)}_k` the codes of the largest and second-largest
    :math:`S_{\cdot k}`. As in disentanglement_lib: for discrete factors (the default)
    :math:`S_{jk}` is the test accuracy, on ``n_test`` new images, of a linear SVM
    (squared hinge, cost ``C = 0.01``, balanced class weights, one-vs-rest) trained on
    ``n_train`` images to predict the factor's class from the one code (:func:`svm_accuracy`);
    with ``continuous_factors=True`` it is the squared correlation
    :math:`\mathrm{Cov}(z_j, v_k)^2 / (\mathrm{Var}\,z_j\,\mathrm{Var}\,v_k)` on the
    training images (0 for a constant code).

    A linear one-vs-rest classifier on one number can only cut it into intervals in the
    order of its lines, so a factor with many classes is never predicted well from one
    code: the discrete score's best value is below 1 (about 0.5 for binary factors, whose
    second-best code is at chance). The continuous score of codes equal to the factors is 1.

    Args:
        representation: Images -> codes ``(n, d)`` with ``d >= 2``.
        dataset: The :class:`~torchvae.FactorDataset`.
        seed: An int or a CPU ``torch.Generator``.
        n_train: Images the classifiers are trained on (and correlations computed).
        n_test: Images the classifiers are scored on (discrete factors only).
        continuous_factors: Score by squared correlation instead of classification.
        C: The SVMs' cost.
        eval_batch_size: Images per call of ``representation`` (no effect on the value).
        device: Where images go and the arithmetic runs (default: the CPU).

    Returns:
        A :class:`SAPScore`.
    """
    dataset = check_dataset(dataset)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    C = check_real(C, "C")
    if not C > 0:
        raise ValueError(f"C must be > 0, got {C}")
    gen, dev = make_generator(seed), resolve_device(device)
    codes, factors = sample_codes(representation, dataset, n_train, gen, eval_batch_size, dev)
    if codes.shape[1] < 2:
        raise ValueError(f"SAP needs at least 2 codes, got {codes.shape[1]}")
    if continuous_factors:
        if n_train < 2:
            raise ValueError("n_train must be >= 2 for correlations")
        matrix = _r_squared(codes, factors)
    else:
        test_codes, test_factors = sample_codes(
            representation, dataset, n_test, gen, eval_batch_size, dev
        )
        matrix = torch.stack(
            [
                svm_accuracy(codes, factors[:, k], test_codes, test_factors[:, k], C)
                for k in range(dataset.num_factors)
            ],
            dim=1,
        )
    top = matrix.topk(2, dim=0).values
    return SAPScore(float((top[0] - top[1]).mean()), matrix.cpu())
