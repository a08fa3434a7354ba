r"""The FactorVAE score (Kim & Mnih 2018), with disentanglement_lib's estimator."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_int, check_real
from ..data.factors import FactorDataset
from ._codes import (
    Representation,
    check_dataset,
    codes_for,
    make_generator,
    resolve_device,
    sample_codes,
)

__all__ = ["FactorVAEScore", "factor_vae_score"]

_FACTORS_PER_STEP = 8192  # factor tuples drawn at once; images are made in eval batches


class FactorVAEScore(NamedTuple):
    """What :func:`factor_vae_score` returns."""

    train_accuracy: float
    """The majority-vote classifier's accuracy on the votes it was built from."""
    eval_accuracy: float
    """Its accuracy on new votes: the score."""
    num_active_dims: int
    """Codes whose standard deviation reached ``prune_threshold``."""


def _votes(
    representation: Representation,
    dataset: FactorDataset,
    n: int,
    batch_size: int,
    scale: Tensor,
    active: Tensor,
    gen: torch.Generator,
    eval_batch_size: int,
    device: torch.device,
) -> Tensor:
    """The vote matrix ``(K, d)``: how often fixing factor k made code j the least variable."""
    K, d = dataset.num_factors, scale.shape[0]
    votes = torch.zeros(K, d, dtype=torch.int64, device=device)
    fixed = torch.randint(0, K, (n,), generator=gen)
    points = max(1, _FACTORS_PER_STEP // batch_size)
    active_index = active.nonzero().squeeze(1)
    for start in range(0, n, points):
        k = fixed[start : start + points]
        m = k.shape[0]
        factors = dataset.sample_factors(m * batch_size, gen).view(m, batch_size, K)
        rows = torch.arange(m)
        factors[rows, :, k] = factors[rows, 0, k].unsqueeze(1)
        codes = codes_for(representation, dataset, factors.view(-1, K), eval_batch_size, device)
        local = codes.view(m, batch_size, d).var(dim=1) / scale
        argmin = active_index[local[:, active_index].argmin(dim=1)]
        votes.index_put_((k.to(device), argmin), torch.ones_like(argmin), accumulate=True)
    return votes


def factor_vae_score(
    representation: Representation,
    dataset: FactorDataset,
    *,
    seed: int | torch.Generator = 0,
    n_train: int = 10000,
    n_eval: int = 5000,
    n_variance: int = 10000,
    batch_size: int = 64,
    prune_threshold: float = 0.05,
    eval_batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> FactorVAEScore:
    r"""The FactorVAE disentanglement score: the majority-vote classifier of the least-varying code.

    The codes' variances :math:`\sigma_j^2` are estimated (unbiased) on ``n_variance``
    random images; codes with :math:`\sigma_j <` ``prune_threshold`` count as collapsed
    and are left out (so is any constant code). Each vote fixes a factor :math:`k`
    (uniform) at one random class, draws ``batch_size`` images with the other factors
    random, and finds the code whose variance, relative to its global one, is least:

    .. math::

        j^\star = \arg\min_{j\ \mathrm{active}}\ \frac{\widehat{\mathrm{Var}}_{b}[r_j(x_b)]}
        {\sigma_j^2}.

    The classifier maps each code :math:`j` to the factor that won most of its votes
    among ``n_train`` (the majority vote, the optimal classifier for this discrete
    problem); the score is its accuracy on ``n_eval`` new votes. Disentangled codes score
    1; codes unrelated to the factors score about :math:`1/K` or a little more.

    disentanglement_lib's estimator, with its published evaluation setting
    ``prune_threshold=0.05`` (its function's own default, which ``disent`` keeps, is 0:
    no pruning). The division by :math:`\sigma_j^2` makes the score invariant to
    rescaling each code.

    Args:
        representation: Images -> codes ``(n, d)``; for a model, :func:`model_representation`.
        dataset: The :class:`~torchvae.FactorDataset`.
        seed: An int or a CPU ``torch.Generator``: every random draw comes from it.
        n_train: Votes the classifier is built from.
        n_eval: Votes it is scored on.
        n_variance: Images for the global variances.
        batch_size: Images per vote (disentanglement_lib: 64).
        prune_threshold: The standard deviation below which a code is left out.
        eval_batch_size: Images per call of ``representation`` (no effect on the value).
        device: Where images go and the arithmetic runs (default: the CPU).

    Returns:
        A :class:`FactorVAEScore`; all zeros when no code is active.
    """
    dataset = check_dataset(dataset)
    for value, name in (
        (n_train, "n_train"),
        (n_eval, "n_eval"),
        (n_variance, "n_variance"),
        (batch_size, "batch_size"),
    ):
        check_positive_int(value, name)
    if batch_size < 2 or n_variance < 2:
        raise ValueError("batch_size and n_variance must be >= 2 to estimate variances")
    threshold = check_real(prune_threshold, "prune_threshold")
    gen, dev = make_generator(seed), resolve_device(device)
    codes, _ = sample_codes(representation, dataset, n_variance, gen, eval_batch_size, dev)
    variance = codes.var(dim=0)
    active = (variance.sqrt() >= threshold) & (variance > 0)
    if not bool(active.any()):
        return FactorVAEScore(0.0, 0.0, 0)
    args = (representation, dataset)
    train = _votes(*args, n_train, batch_size, variance, active, gen, eval_batch_size, dev)
    evals = _votes(*args, n_eval, batch_size, variance, active, gen, eval_batch_size, dev)
    classifier = train.argmax(dim=0)
    columns = torch.arange(train.shape[1], device=dev)
    return FactorVAEScore(
        float(train[classifier, columns].sum() / train.sum()),
        float(evals[classifier, columns].sum() / evals.sum()),
        int(active.sum()),
    )
