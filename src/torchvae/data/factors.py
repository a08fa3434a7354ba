r"""Data sets with known factors of variation: the interface the disentanglement metrics use.

A *factor data set* holds one image for every combination of :math:`K` discrete factors
(shape, scale, position, ...), factor :math:`k` taking the classes
:math:`0, \dots, s_k - 1`. Its images are numbered in row-major (mixed-radix) order of the
factor tuple, the last factor varying fastest:

.. math::

    \mathrm{index}(f) = \sum_{k=1}^{K} f_k \prod_{l > k} s_l,
    \qquad 0 \le \mathrm{index}(f) < \prod_k s_k,

so :meth:`FactorDataset.index_of` and :meth:`FactorDataset.factors_of` convert both ways.
The metrics draw factor tuples with :meth:`FactorDataset.sample_factors` (every factor
uniform and independent, as in disentanglement_lib), fix some of them, and ask for their
images with :meth:`FactorDataset.images_for`.

:class:`TensorFactorDataset` wraps images already in memory; :class:`~torchvae.Sprites`
renders its images on demand, and :class:`~torchvae.DSprites` and
:class:`~torchvae.Shapes3D` read the real data sets' files.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from .._validation import check_positive_int, check_tensor

__all__ = ["FactorDataset", "TensorFactorDataset"]


def _check_seed(seed: int | torch.Generator) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        if seed.device.type != "cpu":
            raise ValueError(
                f"the generator must be a CPU torch.Generator, got one on {seed.device}"
            )
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


class FactorDataset(ABC):
    r"""Images indexed by discrete factors of variation, every combination present once.

    Subclasses set :attr:`factor_names`, :attr:`factor_sizes` and :attr:`image_shape` and
    implement :meth:`images_at`; everything else (indexing, sampling, ``Dataset``-style
    access, materializing subsets) is here.

    Attributes:
        factor_names: The name of each factor, e.g. ``("shape", "scale", ...)``.
        factor_sizes: The number of classes :math:`s_k` of each factor.
        image_shape: The shape of one image, e.g. ``(1, 64, 64)``.
    """

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    image_shape: tuple[int, ...]

    @property
    def num_factors(self) -> int:
        """The number of factors :math:`K`."""
        return len(self.factor_sizes)

    def __len__(self) -> int:
        """The number of images, :math:`\\prod_k s_k`."""
        return math.prod(self.factor_sizes)

    def _strides(self) -> Tensor:
        strides = [1] * self.num_factors
        for k in range(self.num_factors - 2, -1, -1):
            strides[k] = strides[k + 1] * self.factor_sizes[k + 1]
        return torch.tensor(strides, dtype=torch.int64)

    def check_factors(self, factors: object, name: str = "factors") -> Tensor:
        """Return ``factors`` as an ``int64`` CPU tensor ``(n, K)`` after checking its classes.

        Raises:
            TypeError: ``factors`` is not an integer tensor.
            ValueError: It is not ``(n, K)`` or a class is outside ``[0, s_k)``.
        """
        factors = check_tensor(factors, name)
        if factors.is_floating_point() or factors.is_complex() or factors.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor of classes, got {factors.dtype}")
        if factors.dim() != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(
                f"{name} must have shape (n, {self.num_factors}) (one column per factor "
                f"{self.factor_names}), got {tuple(factors.shape)}"
            )
        factors = factors.to("cpu", torch.int64)
        sizes = torch.tensor(self.factor_sizes)
        bad = (factors < 0) | (factors >= sizes)
        if bool(bad.any()):
            row, k = (int(v) for v in bad.nonzero()[0])
            raise ValueError(
                f"{name}[{row}, {k}] = {int(factors[row, k])} is outside the classes "
                f"0..{self.factor_sizes[k] - 1} of factor {self.factor_names[k]!r}"
            )
        return factors

    def index_of(self, factors: Tensor) -> Tensor:
        """The image indices ``(n,)`` of factor tuples ``(n, K)`` (row-major order)."""
        return (self.check_factors(factors) * self._strides()).sum(dim=1)

    def factors_of(self, index: Tensor) -> Tensor:
        """The factor tuples ``(n, K)`` of image indices ``(n,)``, inverting :meth:`index_of`."""
        index = self._check_index(index)
        sizes = torch.tensor(self.factor_sizes)
        return torch.div(index.unsqueeze(1), self._strides(), rounding_mode="floor") % sizes

    def _check_index(self, index: object) -> Tensor:
        index = check_tensor(index, "index")
        if index.is_floating_point() or index.dtype == torch.bool or index.dim() != 1:
            raise ValueError(
                f"index must be a 1-D integer tensor, got dtype {index.dtype} and shape "
                f"{tuple(index.shape)}"
            )
        index = index.to("cpu", torch.int64)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self)):
            raise ValueError(f"index values must lie in [0, {len(self)}), got {index.tolist()[:8]}")
        return index

    def sample_factors(self, n: int, generator: torch.Generator | int | None = None) -> Tensor:
        """Draw ``n`` factor tuples, each factor uniform on its classes and independent.

        Args:
            n: How many (``n >= 0``).
            generator: A CPU ``torch.Generator`` or an int seed; ``None`` uses torch's
                global generator.

        Returns:
            ``int64`` tensor ``(n, K)``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be an int >= 0, got {n!r}")
        gen = None if generator is None else _check_seed(generator)
        u = torch.rand(n, self.num_factors, generator=gen, dtype=torch.float64)
        sizes = torch.tensor(self.factor_sizes, dtype=torch.float64)
        return (u * sizes).floor().long().minimum(torch.tensor(self.factor_sizes) - 1)

    @abstractmethod
    def images_at(self, index: Tensor) -> Tensor:
        """The images at ``index`` ``(n,)`` as ``uint8`` ``(n, *image_shape)``, 0..255."""

    def images_for(self, factors: Tensor) -> Tensor:
        """The images of factor tuples ``(n, K)``: ``float32`` ``(n, *image_shape)`` in [0, 1]."""
        return self.images_at(self.index_of(factors)).to(torch.float32).div_(255)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        """``(image, factors)``: ``float32`` ``image_shape`` in [0, 1] and ``int64`` ``(K,)``."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        if index < 0:
            index += len(self)
        idx = self._check_index(torch.tensor([index]))
        image = self.images_at(idx)[0].to(torch.float32).div_(255)
        return image, self.factors_of(idx)[0]

    def tensors(
        self,
        n: int | None = None,
        seed: int = 0,
        indices: Sequence[int] | Tensor | None = None,
        batch_size: int = 4096,
    ) -> tuple[Tensor, Tensor]:
        """Materialize images and their factors as in-memory tensors (for a ``TensorLoader``).

        Args:
            n: ``None`` for every image, in index order; else ``n`` distinct images drawn
                at random (a ``randperm`` from ``seed``), in that random order.
            seed: The seed of the draw.
            indices: Explicit image indices instead (``n`` must then be ``None``).
            batch_size: Images made or read per step (bounds the temporary memory).

        Returns:
            ``(images, factors)``: ``uint8`` ``(N, *image_shape)`` with values 0..255 and
            ``int64`` ``(N, K)``.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        if indices is not None:
            if n is not None:
                raise ValueError("give n or indices, not both")
            index = self._check_index(torch.as_tensor(indices, dtype=torch.int64))
        elif n is None:
            index = torch.arange(len(self))
        else:
            n = check_positive_int(n, "n")
            if n > len(self):
                raise ValueError(f"n = {n} exceeds the {len(self)} images of the data set")
            gen = torch.Generator().manual_seed(seed)
            index = torch.randperm(len(self), generator=gen)[:n]
        images = torch.empty(index.shape[0], *self.image_shape, dtype=torch.uint8)
        for start in range(0, index.shape[0], batch_size):
            images[start : start + batch_size] = self.images_at(index[start : start + batch_size])
        return images, self.factors_of(index)

    def __repr__(self) -> str:
        factors = ", ".join(
            f"{n}={s}" for n, s in zip(self.factor_names, self.factor_sizes, strict=True)
        )
        return f"{type(self).__name__}({factors}; {len(self)} images of shape {self.image_shape})"


def factor_classes(
    labels: Tensor, names: Sequence[str], source: str
) -> tuple[Tensor, tuple[int, ...]]:
    """Classes ``(N, K)`` of per-image factor values: each column's sorted distinct values."""
    columns, sizes = [], []
    for k in range(labels.shape[1]):
        values, inverse = torch.unique(labels[:, k], sorted=True, return_inverse=True)
        columns.append(inverse)
        sizes.append(int(values.numel()))
        if values.numel() < 1:
            raise ValueError(f"{source}: factor {names[k]!r} has no values")
    return torch.stack(columns, dim=1).long(), tuple(sizes)


def row_order(classes: Tensor, sizes: tuple[int, ...], source: str) -> Tensor:
    """The row of each factor combination, checking that each occurs exactly once."""
    strides = torch.ones(len(sizes), dtype=torch.int64)
    for k in range(len(sizes) - 2, -1, -1):
        strides[k] = strides[k + 1] * sizes[k + 1]
    index = (classes * strides).sum(dim=1)
    total = math.prod(sizes)
    counts = torch.bincount(index, minlength=total)
    if classes.shape[0] != total or bool((counts != 1).any()):
        missing = int((counts == 0).sum())
        raise ValueError(
            f"{source}: a factor data set needs every combination of its factors exactly once "
            f"(sizes {sizes}: {total} combinations), but {classes.shape[0]} rows leave "
            f"{missing} combinations missing and {int((counts > 1).sum())} repeated"
        )
    order = torch.empty(total, dtype=torch.int64)
    order[index] = torch.arange(total)
    return order


class TensorFactorDataset(FactorDataset):
    """A factor data set from in-memory images and their factor classes, in any row order.

    Args:
        images: ``uint8`` ``(N, ...)`` (0..255), one image per factor combination.
        factors: Integer classes ``(N, K)``, column ``k`` in ``0..s_k - 1``; the sizes
            :math:`s_k` are the columns' ``max + 1``. Every combination must occur once.
        factor_names: One name per factor (default ``factor0``, ``factor1``, ...).

    Raises:
        TypeError: ``images`` is not ``uint8`` or ``factors`` is not integer.
        ValueError: The shapes disagree or a combination is missing or repeated.

    Example:
        >>> factors = torch.cartesian_prod(torch.arange(2), torch.arange(3))
        >>> ds = TensorFactorDataset(factors.to(torch.uint8) * 100, factors, ("a", "b"))
        >>> ds.factor_sizes, len(ds)
        ((2, 3), 6)
        >>> ds.images_for(torch.tensor([[1, 2]]))
        tensor([[0.3922, 0.7843]])
    """

    def __init__(
        self, images: Tensor, factors: Tensor, factor_names: Sequence[str] | None = None
    ) -> None:
        images = check_tensor(images, "images")
        factors = check_tensor(factors, "factors")
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8 (0..255), got {images.dtype}")
        if factors.is_floating_point() or factors.dim() != 2 or factors.shape[0] != images.shape[0]:
            raise ValueError(
                f"factors must be an integer tensor of shape (N, K) with N = {images.shape[0]} "
                f"(images' first dimension), got dtype {factors.dtype}, shape "
                f"{tuple(factors.shape)}"
            )
        factors = factors.to("cpu", torch.int64)
        if factors.numel() == 0 or int(factors.min()) < 0:
            raise ValueError("factors must be non-empty classes >= 0")
        names = tuple(factor_names or (f"factor{k}" for k in range(factors.shape[1])))
        if len(names) != factors.shape[1]:
            raise ValueError(f"factor_names has {len(names)} names for {factors.shape[1]} factors")
        self.factor_names = names
        self.factor_sizes = tuple(int(v) + 1 for v in factors.max(dim=0).values)
        self.image_shape = tuple(images.shape[1:])
        self._order = row_order(factors, self.factor_sizes, "TensorFactorDataset")
        self._images = images

    def images_at(self, index: Tensor) -> Tensor:
        """The images at ``index``, ``uint8`` ``(n, *image_shape)``."""
        rows = self._order[self._check_index(index)]
        return self._images.index_select(0, rows.to(self._images.device)).cpu()
