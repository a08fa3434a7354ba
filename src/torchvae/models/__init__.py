"""The networks and the models: the VAE, its conditional form, encoders and decoders."""

from __future__ import annotations

from .conditional import ConditionalVAE, EmbeddingKind
from .decoders import ConvDecoder, Decoder
from .encoders import ConvEncoder, Encoder
from .hierarchical import HierarchicalVAE, LatentLayer
from .output import VAEOutput
from .resnet import ResNetDecoder, ResNetEncoder, resnet_vae
from .vae import VAE

__all__ = [
    "VAE",
    "ConditionalVAE",
    "ConvDecoder",
    "ConvEncoder",
    "Decoder",
    "EmbeddingKind",
    "Encoder",
    "HierarchicalVAE",
    "LatentLayer",
    "ResNetDecoder",
    "ResNetEncoder",
    "VAEOutput",
    "resnet_vae",
]
