r"""The second stage of a VQ-VAE: fit its prior over code maps on the training set's codes.

Training a VQ-VAE and its prior are two separate fits (van den Oord et al., 2017): first
the autoencoder with :class:`~torchvae.VQLoss`, then, with the codebook frozen, a
:class:`~torchvae.PixelCNNPrior` on the code maps :math:`k(x)` of the training images,
by maximum likelihood (:class:`~torchvae.CodePriorLoss`). :func:`code_dataset` builds
the maps; :func:`fit_code_prior` trains the prior with a :class:`~torchvae.Trainer` (so
checkpoints, resume, callbacks and seeds work as for any model) and attaches it to the
VQ-VAE, which can then :meth:`~torchvae.VQVAE.sample`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor

from .._validation import check_positive_int
from ..models.code_prior import PixelCNNPrior
from ..models.vqvae import VQVAE
from ..objectives.vq import CodePriorLoss
from ._batches import as_batches, unpack
from .trainer import Trainer

__all__ = ["code_dataset", "fit_code_prior"]


@torch.no_grad()
def code_dataset(model: VQVAE, data: Any, batch_size: int = 1024) -> Tensor:
    """The code maps of every example of ``data``, as a float tensor on the CPU.

    The values are the integer code indices (exact in float32 for any codebook below
    :math:`2^{24}` codes); floating point because the :class:`~torchvae.Trainer`
    requires floating-point batches. The model runs in evaluation mode (its codebook is
    not changed) and is put back in the mode it was in.

    Args:
        model: a trained :class:`~torchvae.VQVAE` whose encoder gives ``(batch, D, h, w)``.
        data: a Tensor of examples, a Dataset, a DataLoader or an iterable of batches
            ``x`` or ``(x, y)`` (labels are ignored).
        batch_size: examples per encoder call for tensors and datasets.

    Returns:
        ``(n, h, w)``, float32.

    Raises:
        TypeError: ``model`` is not a VQVAE, or ``data`` is of no accepted form.
        ValueError: ``data`` holds no examples, or the code maps are not 2-D.
    """
    if not isinstance(model, VQVAE):
        raise TypeError(f"model must be a VQVAE, got {type(model).__name__}")
    batch_size = check_positive_int(batch_size, "batch_size")
    device = model._like_params()[0]
    was_training = model.training
    model.eval()
    parts: list[Tensor] = []
    try:
        for batch in as_batches(data, batch_size, train=False):
            x, _ = unpack(batch, device)
            parts.append(model.encode_indices(x).to("cpu", torch.float32))
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("data for code_dataset holds no examples")
    codes = torch.cat(parts)
    if codes.ndim != 3:
        raise ValueError(
            f"the prior models 2-D code maps (batch, h, w), but this encoder gives maps of "
            f"shape {tuple(codes.shape[1:])}"
        )
    return codes


def fit_code_prior(
    model: VQVAE,
    train: Any,
    val: Any = None,
    *,
    prior: PixelCNNPrior | None = None,
    epochs: int = 10,
    channels: int = 32,
    layers: int = 4,
    kernel_size: int = 5,
    resume: str | os.PathLike[str] | None = None,
    **trainer_kwargs: Any,
) -> Trainer:
    """Fit a prior over ``model``'s code maps on ``train``'s codes and attach it.

    The codes are computed once (:func:`code_dataset`), then a
    :class:`~torchvae.Trainer` with :class:`~torchvae.CodePriorLoss` fits the prior (the
    VQ-VAE itself is not trained), and ``model.set_prior(prior)`` attaches it, so that
    :meth:`~torchvae.VQVAE.sample` works and :func:`~torchvae.save_model` writes it with
    the model.

    Args:
        model: the trained VQ-VAE.
        train: its training data (any form :func:`code_dataset` takes).
        val: optional validation data, scored after each epoch (``val_loss``: nats per
            code map).
        prior: the prior to fit; default a new ``PixelCNNPrior(model.num_codes,
            code_shape, channels, layers, kernel_size)``.
        epochs: total epochs (counting those of a resumed run).
        channels: width of the new prior.
        layers: gated layers of the new prior.
        kernel_size: kernel size of the new prior.
        resume: a checkpoint of an interrupted fit, as for :meth:`Trainer.fit
            <torchvae.Trainer.fit>` (pass the same ``callbacks``, e.g. a
            :class:`~torchvae.callbacks.ModelCheckpoint`).
        **trainer_kwargs: given to the :class:`~torchvae.Trainer` (``device``, ``seed``,
            ``batch_size``, ``callbacks``, ``optimizer``, ...).

    Returns:
        The Trainer that fitted the prior (``trainer.history`` holds its epochs).

    Example:
        >>> from torchvae import VQVAE, Codebook, VQDecoder, VQEncoder
        >>> model = VQVAE(VQEncoder(embedding_dim=4), VQDecoder(embedding_dim=4), Codebook(8, 4))
        >>> trainer = fit_code_prior(model, torch.rand(32, 1, 28, 28), epochs=1,
        ...                          channels=8, layers=2, device="cpu", seed=0)
        >>> model.sample(2).shape
        torch.Size([2, 1, 28, 28])
    """
    codes = code_dataset(model, train)
    val_codes = None if val is None else code_dataset(model, val)
    if prior is None:
        prior = PixelCNNPrior(
            model.num_codes, tuple(codes.shape[1:]), channels, layers, kernel_size
        )
    if not isinstance(prior, PixelCNNPrior):
        raise TypeError(f"prior must be a PixelCNNPrior or None, got {type(prior).__name__}")
    if prior.num_codes != model.num_codes or prior.code_shape != tuple(codes.shape[1:]):
        raise ValueError(
            f"the prior models {prior.num_codes} codes in maps of shape {prior.code_shape}, "
            f"but the model has {model.num_codes} codes in maps of shape "
            f"{tuple(codes.shape[1:])}"
        )
    trainer = Trainer(prior, CodePriorLoss(), **trainer_kwargs)
    trainer.fit(codes, val_codes, epochs=epochs, resume=resume)
    prior.to(model._like_params()[0])
    model.set_prior(prior)
    return trainer
