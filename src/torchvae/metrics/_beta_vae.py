r"""The β-VAE score (Higgins et al. 2017), with disentanglement_lib's estimator."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_int
from ..data.factors import FactorDataset
from ._codes import Representation, check_dataset, codes_for, make_generator, resolve_device
from ._solvers import logistic_regression

__all__ = ["BetaVAEScore", "beta_vae_score"]

_FACTORS_PER_STEP = 8192  # factor tuples drawn at once; images are made in eval batches


class BetaVAEScore(NamedTuple):
    """What :func:`beta_vae_score` returns: the linear classifier's accuracies."""

    train_accuracy: float
    eval_accuracy: float


def pair_features(
    representation: Representation,
    dataset: FactorDataset,
    n: int,
    batch_size: int,
    gen: torch.Generator,
    eval_batch_size: int,
    device: torch.device,
) -> tuple[Tensor, Tensor]:
    """``n`` points: the fixed factor's index and the mean absolute code difference of pairs."""
    K = dataset.num_factors
    fixed = torch.randint(0, K, (n,), generator=gen)
    features = []
    points = max(1, _FACTORS_PER_STEP // (2 * batch_size))
    for start in range(0, n, points):
        k = fixed[start : start + points]
        m = k.shape[0]
        first = dataset.sample_factors(m * batch_size, gen).view(m, batch_size, K)
        second = dataset.sample_factors(m * batch_size, gen).view(m, batch_size, K)
        rows = torch.arange(m)
        second[rows, :, k] = first[rows, :, k]
        both = torch.cat((first.reshape(-1, K), second.reshape(-1, K)))
        codes = codes_for(representation, dataset, both, eval_batch_size, device)
        a, b = codes.view(2, m, batch_size, -1).unbind(0)
        features.append((a - b).abs().mean(dim=1))
    return torch.cat(features), fixed.to(device)


def beta_vae_score(
    representation: Representation,
    dataset: FactorDataset,
    *,
    seed: int | torch.Generator = 0,
    n_train: int = 10000,
    n_eval: int = 5000,
    batch_size: int = 64,
    eval_batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> BetaVAEScore:
    r"""The β-VAE disentanglement score: can a linear classifier tell which factor was fixed?

    Each point picks a factor :math:`k` uniformly, draws ``batch_size`` pairs of factor
    tuples that agree on factor :math:`k` (and are independent otherwise), and takes the
    mean absolute difference of the pairs' codes,

    .. math::

        z_{\mathrm{diff}} = \frac1L \sum_{l=1}^{L} \bigl| r(x_{1,l}) - r(x_{2,l}) \bigr|
        \in \mathbb{R}^d, \qquad L = \text{batch\_size}.

    A multinomial logistic regression (scikit-learn's ``LogisticRegression()``, as
    disentanglement_lib uses: L2 penalty with :math:`C = 1`, unpenalized intercept, here
    solved to convergence by L-BFGS in torch) is fitted to predict :math:`k` from
    :math:`z_{\mathrm{diff}}` on ``n_train`` points; the score is its accuracy on
    ``n_eval`` new points. A code that holds factor :math:`k` alone has
    :math:`z_{\mathrm{diff}} = 0` in that dimension, so disentangled codes score 1 and
    codes unrelated to the factors score about :math:`1/K`.

    Args:
        representation: Images ``(n, *image_shape)`` -> codes ``(n, d)``; for a model,
            :func:`model_representation`.
        dataset: The :class:`~torchvae.FactorDataset` to draw images from.
        seed: An int or a CPU ``torch.Generator``: every random draw comes from it.
        n_train: Training points of the classifier.
        n_eval: Evaluation points.
        batch_size: Pairs per point, :math:`L` (disentanglement_lib: 64).
        eval_batch_size: Images per call of ``representation`` (no effect on the value).
        device: Where images go and the arithmetic runs (default: the CPU).

    Returns:
        A :class:`BetaVAEScore` of training and evaluation accuracies.

    Raises:
        TypeError: A bad ``representation`` or ``dataset``.
        ValueError: Sizes that are not positive ints, or codes of the wrong shape.
    """
    dataset = check_dataset(dataset)
    for value, name in ((n_train, "n_train"), (n_eval, "n_eval"), (batch_size, "batch_size")):
        check_positive_int(value, name)
    gen, dev = make_generator(seed), resolve_device(device)
    args = (representation, dataset)
    x_train, y_train = pair_features(*args, n_train, batch_size, gen, eval_batch_size, dev)
    x_eval, y_eval = pair_features(*args, n_eval, batch_size, gen, eval_batch_size, dev)
    W, b = logistic_regression(x_train, y_train, dataset.num_factors)

    def accuracy(x: Tensor, y: Tensor) -> float:
        return float(((x @ W + b).argmax(dim=1) == y).double().mean())

    return BetaVAEScore(accuracy(x_train, y_train), accuracy(x_eval, y_eval))
