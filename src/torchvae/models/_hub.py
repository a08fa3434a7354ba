"""The Hugging Face Hub methods every model has (``huggingface_hub`` imported when called)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn
from typing_extensions import Self

__all__ = ["HubMethods"]


class HubMethods:
    """``save_pretrained``, ``from_pretrained`` and ``push_to_hub``, by :mod:`torchvae.hub`."""

    def save_pretrained(
        self,
        folder: str | os.PathLike[str],
        *,
        training_config: Mapping[str, Any] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str | None:
        """Write the model as the Hub expects: ``model.safetensors``, config and model card.

        See :func:`torchvae.hub.save_pretrained`, which this calls.
        """
        from ..hub import save_pretrained

        return save_pretrained(
            self,  # type: ignore[arg-type]
            folder,
            training_config=training_config,
            evaluation=evaluation,
            **kwargs,
        )

    @classmethod
    def from_pretrained(
        cls,
        folder_or_repo_id: str | os.PathLike[str],
        map_location: str | torch.device | None = "cpu",
        **kwargs: Any,
    ) -> Self:
        """Load a model from a folder or a Hub repository (``"user/name"``).

        See :func:`torchvae.hub.from_pretrained`, which this calls.
        """
        from ..hub import from_pretrained

        model = from_pretrained(
            folder_or_repo_id,
            map_location=map_location,
            expected_type=cast("type[nn.Module]", cls),
            **kwargs,
        )
        assert isinstance(model, cls)
        return model

    def push_to_hub(
        self,
        repo_id: str,
        *,
        training_config: Mapping[str, Any] | None = None,
        evaluation: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> str:
        """Upload the model, its config and a model card to the Hub repository ``repo_id``.

        See :func:`torchvae.hub.push_to_hub`, which this calls.
        """
        from ..hub import push_to_hub

        return push_to_hub(
            cast(nn.Module, self),
            repo_id,
            training_config=training_config,
            evaluation=evaluation,
            **kwargs,
        )
