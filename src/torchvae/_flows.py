"""Normalizing flows from zuko, the optional dependency behind the flow prior and posterior.

zuko (``pip install 'torchvae[flows]'``) is imported only when a flow is built, so the rest
of torchvae never needs it; without it, building one raises an ``ImportError`` that names
the extra to install.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal

from torch import Tensor, nn

__all__ = ["FlowKind", "build_flow", "require_zuko"]

FlowKind = Literal["maf", "realnvp"]
"""``"maf"``: masked autoregressive transforms (Papamakarios et al., 2017): one pass in the
density direction, ``latent_dim`` sequential passes in the other. ``"realnvp"``: affine
coupling transforms (Dinh et al., 2017): one pass in both directions."""


def require_zuko(what: str) -> ModuleType:
    """``zuko``, or an ``ImportError`` saying that ``what`` needs the ``flows`` extra."""
    try:
        import zuko
    except ImportError as e:  # pragma: no cover - exercised with zuko hidden
        raise ImportError(
            f"{what} needs the normalizing-flow library zuko, an optional dependency: "
            f"install it with pip install 'torchvae[flows]' (or pip install zuko)"
        ) from e
    module: ModuleType = zuko
    return module


def build_flow(
    what: str,
    kind: FlowKind,
    features: int,
    context: int,
    transforms: int,
    hidden_features: Sequence[int],
) -> Any:
    """A zuko flow over ``features`` dimensions whose transforms start as the identity.

    The last layer of every transform's network is zeroed, so each transform starts with
    shift 0 and scale 1: a flow posterior starts as its diagonal Gaussian base and a flow
    prior as :math:`\\mathcal{N}(0, I)`, and training moves away from there.

    Args:
        what: what the flow is for, named in the error when zuko is missing.
        kind: ``"maf"`` or ``"realnvp"``.
        features: dimension of the variable.
        context: dimension of the conditioning vector (0 for none).
        transforms: number of transforms.
        hidden_features: hidden sizes of each transform's network.

    Raises:
        ImportError: zuko is not installed.
        ValueError: an unknown ``kind``.
    """
    zuko = require_zuko(what)
    if kind not in ("maf", "realnvp"):
        raise ValueError(f"flow must be 'maf' or 'realnvp', got {kind!r}")
    if kind == "maf" or features == 1:  # a coupling needs two parts to split into
        flow = zuko.flows.MAF(
            features=features,
            context=context,
            transforms=transforms,
            hidden_features=tuple(hidden_features),
        )
    else:
        flow = zuko.flows.RealNVP(
            features=features,
            context=context,
            transforms=transforms,
            hidden_features=tuple(hidden_features),
        )
    for transform in flow.transform.transforms:
        # zuko's own linear layers are not torch.nn.Linear: find the last one by its weight
        layers = [
            m for m in transform.hyper.modules() if isinstance(getattr(m, "weight", None), Tensor)
        ]
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return flow
