r"""A dSprites-like data set, generated procedurally: every image a pure function of its factors.

Five factors, as in dSprites (Matthey et al. 2017), 737,280 binary 64x64 images:

| factor   | size | values                                                                  |
| -------- | ---- | ----------------------------------------------------------------------- |
| shape    | 3    | 0 square, 1 ellipse, 2 heart                                            |
| scale    | 6    | :math:`s_i = 0.5 + 0.1\,i`, :math:`i = 0..5` (0.5 to 1.0)               |
| rotation | 40   | :math:`\theta_i = 2\pi i / 40`, counter-clockwise, steps of 9 degrees   |
| x        | 32   | :math:`x_i = i / 31`, left to right                                     |
| y        | 32   | :math:`y_i = i / 31`, top to bottom                                     |

**How a factor tuple becomes pixels.** Pixel (row :math:`r`, column :math:`c`) of the
64x64 image has its centre at :math:`(u, v) = ((c + \tfrac12)/64, (r + \tfrac12)/64)` in
the unit square (:math:`v` pointing down). The sprite is centred at

.. math::

    c_x = m + (1 - 2m)\,x_i, \qquad c_y = m + (1 - 2m)\,y_i, \qquad m = 0.24,

(so centres move in steps of about 1.07 pixels), with half-size :math:`R = 0.16\,s_i`
(5.1 to 10.2 pixels). Each pixel centre is taken into
the sprite's own frame, rotated back by :math:`\theta` and measured in units of :math:`R`:

.. math::

    d_x = u - c_x, \quad d_y = c_y - v, \qquad
    p = \frac{d_x\cos\theta + d_y\sin\theta}{R}, \quad
    q = \frac{-d_x\sin\theta + d_y\cos\theta}{R},

and the pixel is 1 exactly when :math:`(p, q)` lies in the unit shape:

- square: :math:`\max(|p|, |q|) \le 1` (side :math:`2R`);
- ellipse: :math:`p^2 + (2q)^2 \le 1` (semi-axes :math:`R` and :math:`R/2`, long axis
  horizontal at :math:`\theta = 0`);
- heart: :math:`(X^2 + Y^2 - 1)^3 - X^2 Y^3 \le 0` with :math:`X = 1.14\,p`,
  :math:`Y = 1.14\,q + 0.118` (the classical heart curve, lobes up and point down at
  :math:`\theta = 0`, scaled and shifted so that its bounding box is about
  :math:`[-1, 1]^2`).

The margin :math:`m` keeps every sprite whole inside the image at every rotation. The
arithmetic is float64 on the CPU, so the images are the same on every run. As in dSprites,
the square's four-fold and the ellipse's two-fold symmetry make some rotations draw the same
image (rotation :math:`i` and :math:`i + 10` for squares, :math:`i + 20` for ellipses);
unlike dSprites, rotation 39 is not a repeat of rotation 0 (dSprites spaces its 40 angles
over :math:`[0, 2\pi]` inclusive).

Images are rendered in batches when asked for (:meth:`Sprites.images_at`), so the full set
never needs to be in memory; :meth:`~torchvae.FactorDataset.tensors` materializes all of
it or a subset as ``uint8`` (737,280 images take 3 GB as bytes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .factors import FactorDataset

__all__ = ["Sprites", "load_sprites"]

SIZE = 64
MARGIN = 0.24
HALF_SIZE = 0.16
_HEART_SCALE, _HEART_SHIFT = 1.14, 0.118
_WINDOW = 32
_CHUNK = 2048  # images rendered at once: 2048 x 32 x 32 float32 temporaries, 8 MB each


class Sprites(FactorDataset):
    r"""The procedurally generated dSprites-like data set (see the module notes for the maths).

    ``len(Sprites()) == 737280``; image ``i`` has the factors ``factors_of(i)``, with the
    factor order ``("shape", "scale", "rotation", "x", "y")``, ``y`` varying fastest.

    Example:
        >>> ds = Sprites()
        >>> ds.factor_sizes, len(ds)
        ((3, 6, 40, 32, 32), 737280)
        >>> x = ds.images_for(torch.tensor([[2, 5, 0, 16, 16]]))  # a large heart, centred
        >>> x.shape, x.dtype, sorted(x.unique().tolist())
        (torch.Size([1, 1, 64, 64]), torch.float32, [0.0, 1.0])
    """

    factor_names = ("shape", "scale", "rotation", "x", "y")
    factor_sizes = (3, 6, 40, 32, 32)
    image_shape = (1, SIZE, SIZE)
    shape_names = ("square", "ellipse", "heart")

    def factor_values(self, factors: Tensor) -> Tensor:
        r"""The factors' values ``(n, 5)`` float64: shape class, :math:`s`, :math:`\theta`, x, y."""
        f = self.check_factors(factors).to(torch.float64)
        return torch.stack(
            (f[:, 0], 0.5 + 0.1 * f[:, 1], 2 * math.pi * f[:, 2] / 40, f[:, 3] / 31, f[:, 4] / 31),
            dim=1,
        )

    def images_at(self, index: Tensor) -> Tensor:
        """Render the images at ``index`` ``(n,)``: ``uint8`` ``(n, 1, 64, 64)``, 0 or 255."""
        factors = self.factors_of(index)
        out = torch.empty(factors.shape[0], *self.image_shape, dtype=torch.uint8)
        for start in range(0, factors.shape[0], _CHUNK):
            chunk = factors[start : start + _CHUNK]
            out[start : start + _CHUNK, 0] = _render(self.factor_values(chunk)).mul_(255)
        return out


def _render(values: Tensor) -> Tensor:
    """Binary images ``(n, 64, 64)`` uint8 in {0, 1} from factor values ``(n, 5)``.

    Only a 32x32 window around each sprite is computed (a sprite reaches at most
    :math:`\\sqrt2 R \\le 14.5` pixels from its centre), in float32 from per-row and
    per-column float64 terms: additions, multiplications and comparisons only, which IEEE
    arithmetic makes the same on every machine.
    """
    n = values.shape[0]
    out = torch.zeros(n, SIZE, SIZE, dtype=torch.uint8)
    steps = torch.arange(_WINDOW)
    centre = MARGIN + (1 - 2 * MARGIN) * values[:, 3:5]  # (n, 2): x, y in [0, 1]
    first = (centre * SIZE).floor().long().sub(_WINDOW // 2 - 1).clamp(0, SIZE - _WINDOW)
    cols = first[:, :1] + steps  # (n, W)
    rows = first[:, 1:] + steps
    radius = (HALF_SIZE * values[:, 1]).unsqueeze(1)
    cos = torch.cos(values[:, 2]).unsqueeze(1) / radius
    sin = torch.sin(values[:, 2]).unsqueeze(1) / radius
    dx = (cols + 0.5) / SIZE - centre[:, :1]  # (n, W) float64, along a row
    dy = centre[:, 1:] - (rows + 0.5) / SIZE  # (n, W), down a column
    p = (dx * cos).float().unsqueeze(1) + (dy * sin).float().unsqueeze(2)  # (n, W, W)
    q = (-dx * sin).float().unsqueeze(1) + (dy * cos).float().unsqueeze(2)
    window = torch.empty(n, _WINDOW, _WINDOW, dtype=torch.bool)
    shape = values[:, 0]
    for code, inside in enumerate((_square, _ellipse, _heart)):
        sel = (shape == code).nonzero().squeeze(1)
        if sel.numel():
            window[sel] = inside(p[sel], q[sel])
    out[torch.arange(n).view(n, 1, 1), rows.unsqueeze(2), cols.unsqueeze(1)] = window.to(
        torch.uint8
    )
    return out


def _square(p: Tensor, q: Tensor) -> Tensor:
    return torch.maximum(p.abs(), q.abs()) <= 1


def _ellipse(p: Tensor, q: Tensor) -> Tensor:
    return p * p + 4 * (q * q) <= 1


def _heart(p: Tensor, q: Tensor) -> Tensor:
    x = p * _HEART_SCALE
    y = q * _HEART_SCALE + _HEART_SHIFT
    x2, y2 = x * x, y * y
    r = x2 + y2 - 1
    return r * r * r - x2 * (y2 * y) <= 0


def load_sprites(n: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor]:
    """The generated sprites as tensors for a :class:`~torchvae.TensorLoader` (e.g. the CLI's).

    Args:
        n: ``None`` for all 737,280 images (3 GB of ``uint8``, one to two minutes to
            render on one core), else ``n`` distinct images drawn at random from ``seed``.
        seed: The seed of that draw.

    Returns:
        ``(images, factors)``: ``uint8`` ``(N, 1, 64, 64)`` with values 0 and 255 (so that
        ``x / 255`` is binary) and ``int64`` ``(N, 5)``.

    Example:
        >>> images, factors = load_sprites(n=8)
        >>> images.shape, factors.shape
        (torch.Size([8, 1, 64, 64]), torch.Size([8, 5]))
    """
    return Sprites().tensors(n=n, seed=seed)
