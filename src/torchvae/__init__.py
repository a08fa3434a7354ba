"""torchvae: variational autoencoders for PyTorch.

Example:
    >>> import torch
    >>> from torchvae import VAE, Encoder, Decoder, ELBOLoss
    >>> model = VAE(Encoder(784, 400, 20), Decoder(20, 400, 784))
    >>> x = torch.rand(16, 784)
    >>> loss = ELBOLoss()(model(x), x)
    >>> loss.total.shape
    torch.Size([])
"""

from ._validation import set_validation
from .decoders import ConvDecoder, Decoder
from .encoders import ConvEncoder, Encoder
from .gaussian import GaussianParams, gaussian_kl, standard_normal, standard_normal_log_prob
from .importance import bits_per_dim, importance_log_weights, log_likelihood
from .likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from .losses import ELBOLoss, IWAELoss, LossOutput
from .model import VAE, VAEOutput

__version__ = "0.1.0"

__all__ = [
    "VAE",
    "Bernoulli",
    "ContinuousBernoulli",
    "ConvDecoder",
    "ConvEncoder",
    "Decoder",
    "ELBOLoss",
    "Encoder",
    "Gaussian",
    "GaussianParams",
    "IWAELoss",
    "Likelihood",
    "LossOutput",
    "VAEOutput",
    "__version__",
    "bits_per_dim",
    "gaussian_kl",
    "importance_log_weights",
    "log_likelihood",
    "set_validation",
    "standard_normal",
    "standard_normal_log_prob",
]
