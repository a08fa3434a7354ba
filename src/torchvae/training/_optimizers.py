"""The optimizers of a run: the main one, and one per parameter group an objective names.

An objective with losses for other parameter groups (a FactorVAE's discriminator, say)
returns them as :attr:`~torchvae.LossOutput.aux` and names each group's parameters with
``aux_parameters()``; those parameters are kept out of the main optimizer and get one of
their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["aux_parameters", "build_optimizers", "default_optimizer"]

_FUSED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def default_optimizer(params: list[nn.Parameter], lr: float = 1e-3) -> torch.optim.Optimizer:
    """Adam, fused where PyTorch has the fused kernel for every parameter."""
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.dtype in _FUSED_DTYPES for p in params
    )
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def aux_parameters(loss: nn.Module) -> dict[str, list[nn.Parameter]]:
    """The parameter groups ``loss.aux_parameters()`` names (none for most objectives)."""
    named = getattr(loss, "aux_parameters", None)
    if named is None:
        return {}
    groups = named()
    if not isinstance(groups, Mapping) or not all(isinstance(k, str) for k in groups):
        raise TypeError(
            f"{type(loss).__name__}.aux_parameters() must return a dict of name -> "
            f"parameters, got {type(groups).__name__}"
        )
    return {name: list(params) for name, params in groups.items()}


def build_optimizers(
    model: nn.Module,
    loss: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None,
) -> tuple[torch.optim.Optimizer, dict[str, torch.optim.Optimizer]]:
    """The main optimizer (default: Adam over the model's and the loss's parameters but
    the auxiliary groups) and one per auxiliary group (default: Adam, lr 1e-3).

    Raises:
        TypeError: an optimizer is not a ``torch.optim.Optimizer``.
        ValueError: ``optimizers`` names a group the loss does not have, or the main
            optimizer holds an auxiliary group's parameters.
    """
    groups = aux_parameters(loss)
    given = dict(optimizers or {})
    for name, opt in given.items():
        if name not in groups:
            raise ValueError(
                f"optimizers names {name!r}, but the loss has no such parameter group "
                f"(it has: {', '.join(sorted(groups)) or 'none'})"
            )
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizers[{name!r}] must be a torch.optim.Optimizer")
    aside = {id(p) for params in groups.values() for p in params}
    if optimizer is None:
        params = [p for p in (*model.parameters(), *loss.parameters()) if id(p) not in aside]
        optimizer = default_optimizer(params)
    elif any(id(p) in aside for g in optimizer.param_groups for p in g["params"]):
        raise ValueError(
            "optimizer holds parameters of the loss's auxiliary groups "
            f"({', '.join(sorted(groups))}), which are trained by their own optimizers: "
            "leave them out, and give those in optimizers= if you want other settings"
        )
    aux = {name: given.get(name) or default_optimizer(params) for name, params in groups.items()}
    return optimizer, aux


def state_of(optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """The auxiliary optimizers' states, for a checkpoint."""
    return {name: opt.state_dict() for name, opt in optimizers.items()}
