"""The networks and the models: the VAE, its conditional form, encoders and decoders."""

from __future__ import annotations

from .code_prior import CodePriorOutput, PixelCNNPrior
from .codebook import Codebook, Quantized
from .conditional import ConditionalVAE, EmbeddingKind
from .decoders import ConvDecoder, Decoder
from .encoders import ConvEncoder, Encoder
from .hierarchical import HierarchicalVAE, LatentLayer
from .output import VAEOutput
from .resnet import ResNetDecoder, ResNetEncoder, resnet_vae
from .vae import VAE
from .vqnets import VQDecoder, VQEncoder
from .vqvae import VQVAE, VQVAEOutput

__all__ = [
    "VAE",
    "VQVAE",
    "CodePriorOutput",
    "Codebook",
    "ConditionalVAE",
    "ConvDecoder",
    "ConvEncoder",
    "Decoder",
    "EmbeddingKind",
    "Encoder",
    "HierarchicalVAE",
    "LatentLayer",
    "PixelCNNPrior",
    "Quantized",
    "ResNetDecoder",
    "ResNetEncoder",
    "VAEOutput",
    "VQDecoder",
    "VQEncoder",
    "VQVAEOutput",
    "resnet_vae",
]
