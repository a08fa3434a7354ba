r"""The mutual information gap, MIG (Chen et al. 2018), with disentanglement_lib's estimator."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .._validation import check_positive_int
from ..data.factors import FactorDataset
from ._codes import Representation, check_dataset, make_generator, resolve_device, sample_codes

__all__ = ["MIGScore", "discrete_mutual_information", "discretize", "mig"]


class MIGScore(NamedTuple):
    """What :func:`mig` returns."""

    score: float
    """The mean over factors of the normalized gap."""
    per_factor: Tensor
    """The normalized gap of each factor, ``(K,)``."""
    mutual_information: Tensor
    r"""The estimated :math:`I(z_j; v_k)` in nats, ``(d, K)``."""


def discretize(codes: Tensor, bins: int = 20) -> Tensor:
    r"""Each code's values in ``bins`` equal-width bins over its range: ``int64`` ``(n, d)``.

    Bin :math:`b` of code :math:`j` is :math:`[m_j + b w_j, m_j + (b + 1) w_j)` with
    :math:`m_j = \min_i z_{ij}`, :math:`w_j = (\max_i z_{ij} - m_j) / \text{bins}`, the
    maximum in the last bin (NumPy's ``histogram`` edges and ``digitize``, as
    disentanglement_lib). A constant code falls in one bin.
    """
    low = codes.min(dim=0).values
    width = (codes.max(dim=0).values - low) / bins
    safe = torch.where(width > 0, width, torch.ones_like(width))
    index = ((codes - low) / safe).floor().clamp(0, bins - 1)
    return torch.where(width > 0, index, torch.zeros_like(index)).long()


def discrete_mutual_information(a: Tensor, b: Tensor, size_a: int, size_b: int) -> Tensor:
    r"""Plug-in mutual information (nats) of every column of ``a`` with every column of ``b``.

    .. math::

        \hat I(a; b) = \sum_{u, v} \hat p(u, v) \log\frac{\hat p(u, v)}{\hat p(u)\,\hat p(v)}

    with the empirical frequencies :math:`\hat p` (scikit-learn's ``mutual_info_score``).

    Args:
        a: ``int64`` ``(n, p)`` in ``0..size_a - 1``.
        b: ``int64`` ``(n, q)`` in ``0..size_b - 1``.
        size_a: The number of values of ``a``.
        size_b: The number of values of ``b``.

    Returns:
        ``(p, q)``, float64 (float32 on MPS), on ``a``'s device.
    """
    n, p = a.shape
    q = b.shape[1]
    dtype = torch.float32 if a.device.type == "mps" else torch.float64
    out = torch.empty(p, q, dtype=dtype, device=a.device)
    offsets = torch.arange(p, device=a.device) * size_a
    for k in range(q):
        joint_index = ((a + offsets) * size_b + b[:, k : k + 1]).reshape(-1)
        joint = torch.bincount(joint_index, minlength=p * size_a * size_b).view(p, size_a, size_b)
        pj = joint.to(dtype) / n
        pa = pj.sum(dim=2, keepdim=True)
        pb = pj.sum(dim=1, keepdim=True)
        ratio = torch.where(pj > 0, pj / (pa * pb), torch.ones_like(pj))
        out[:, k] = (pj * ratio.log()).sum(dim=(1, 2))
    return out.clamp(min=0)


def mig(
    representation: Representation,
    dataset: FactorDataset,
    *,
    seed: int | torch.Generator = 0,
    n_train: int = 10000,
    bins: int = 20,
    eval_batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> MIGScore:
    r"""The mutual information gap: how much more one code knows of a factor than the next.

    On ``n_train`` random images, each code :math:`z_j` is discretized into ``bins``
    equal-width bins over its range (:func:`discretize`), the mutual information with each
    factor :math:`v_k` is estimated from the joint frequencies
    (:func:`discrete_mutual_information`), and

    .. math::

        \mathrm{MIG} = \frac1K \sum_{k=1}^K \frac{1}{H(v_k)}
        \Bigl( I(z_{j^{(1)}_k}; v_k) - I(z_{j^{(2)}_k}; v_k) \Bigr),

    where :math:`j^{(1)}_k, j^{(2)}_k` are the codes with the largest and second-largest
    information about :math:`v_k` and :math:`H(v_k)` is the factor's empirical entropy.
    This is disentanglement_lib's estimator (20 bins, plug-in entropies on the factor
    classes); Chen et al. estimate :math:`I` from the encoder's distribution instead. A
    code that is a one-to-one function of a factor with at most ``bins`` classes (so that
    no two classes share a bin) has the factor's whole information; the MIG of such codes
    is 1 and that of noise or copies of one factor near 0.

    Args:
        representation: Images -> codes ``(n, d)`` with ``d >= 2``.
        dataset: The :class:`~torchvae.FactorDataset`.
        seed: An int or a CPU ``torch.Generator``.
        n_train: Images the frequencies are counted on.
        bins: Bins per code (disentanglement_lib: 20).
        eval_batch_size: Images per call of ``representation`` (no effect on the value).
        device: Where images go and the arithmetic runs (default: the CPU).

    Returns:
        A :class:`MIGScore`.

    Raises:
        ValueError: Fewer than 2 codes, or a factor that did not vary in the sample.
    """
    dataset = check_dataset(dataset)
    n_train = check_positive_int(n_train, "n_train")
    bins = check_positive_int(bins, "bins")
    gen, dev = make_generator(seed), resolve_device(device)
    codes, factors = sample_codes(representation, dataset, n_train, gen, eval_batch_size, dev)
    if codes.shape[1] < 2:
        raise ValueError(f"MIG needs at least 2 codes, got {codes.shape[1]}")
    most = max(dataset.factor_sizes)
    m = discrete_mutual_information(discretize(codes, bins), factors, bins, most)
    entropy = discrete_mutual_information(factors, factors, most, most).diagonal()
    if bool((entropy <= 0).any()):
        k = int((entropy <= 0).nonzero()[0])
        raise ValueError(
            f"factor {dataset.factor_names[k]!r} took a single value in the {n_train} "
            f"samples; its entropy is 0 and its gap undefined"
        )
    top = m.topk(2, dim=0).values
    per_factor = (top[0] - top[1]) / entropy
    return MIGScore(float(per_factor.mean()), per_factor.cpu(), m.cpu())
