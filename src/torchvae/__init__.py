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

from . import metrics, posteriors, priors, samplers, schedules
from ._validation import set_validation
from .callbacks import (
    BetaSchedule,
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    ProgressBar,
    TensorBoardLogger,
)
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .cifar import CIFARFormatError, load_cifar10
from .code_prior import CodePriorOutput, PixelCNNPrior
from .codebook import Codebook, Quantized
from .conditional import ConditionalVAE
from .data import (
    MNIST,
    ChecksumError,
    DatasetNotFoundError,
    FashionMNIST,
    IDXFormatError,
    TensorLoader,
    load_dataset,
    mnist_loaders,
    read_idx,
)
from .decoders import ConvDecoder, Decoder
from .dequantization import dequantization_correction, dequantize
from .diagnostics import (
    ActiveUnits,
    LatentReport,
    PosteriorCollapseWarning,
    active_units,
    kl_per_dimension,
    latent_report,
    mutual_information,
    warn_if_collapsed,
)
from .encoders import ConvEncoder, Encoder
from .expost import aggregate_posterior, fit_gmm_sampler
from .factor_files import DSprites, Shapes3D, load_factor_dataset
from .factors import FactorDataset, TensorFactorDataset
from .gaussian import GaussianParams, gaussian_kl, standard_normal, standard_normal_log_prob
from .imagedata import ImageSplit, load_image_data, split_indices
from .imagefolder import ImageFolderDataset
from .importance import bits_per_dim, importance_log_weights, log_likelihood
from .likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from .losses import ELBOLoss, IWAELoss, LossOutput
from .model import VAE, VAEOutput
from .samplers import GaussianMixtureSampler
from .serialization import (
    SerializationError,
    load_model,
    load_weights,
    model_config,
    model_from_config,
    register_serializable,
    save_model,
    save_weights,
)
from .sprites import Sprites, load_sprites
from .streaming import DatasetImages, StreamLoader
from .tensorfile import read_tensor_file
from .trainer import NonFiniteLossError, ResumeWarning, StepOutput, Trainer
from .vq_fit import code_dataset, fit_code_prior
from .vqloss import CodePriorLoss, VQLoss
from .vqnets import VQDecoder, VQEncoder
from .vqvae import VQVAE, VQVAEOutput

__version__ = "0.1.0"

__all__ = [
    "MNIST",
    "VAE",
    "VQVAE",
    "ActiveUnits",
    "Bernoulli",
    "BetaSchedule",
    "CIFARFormatError",
    "Callback",
    "CheckpointError",
    "ChecksumError",
    "CodePriorLoss",
    "CodePriorOutput",
    "Codebook",
    "ConditionalVAE",
    "ContinuousBernoulli",
    "ConvDecoder",
    "ConvEncoder",
    "DSprites",
    "DatasetImages",
    "DatasetNotFoundError",
    "Decoder",
    "ELBOLoss",
    "EarlyStopping",
    "Encoder",
    "FactorDataset",
    "FashionMNIST",
    "Gaussian",
    "GaussianMixtureSampler",
    "GaussianParams",
    "IDXFormatError",
    "IWAELoss",
    "ImageFolderDataset",
    "ImageSplit",
    "LatentReport",
    "Likelihood",
    "LossOutput",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "PixelCNNPrior",
    "PosteriorCollapseWarning",
    "ProgressBar",
    "Quantized",
    "ResumeWarning",
    "SerializationError",
    "Shapes3D",
    "Sprites",
    "StepOutput",
    "StreamLoader",
    "TensorBoardLogger",
    "TensorFactorDataset",
    "TensorLoader",
    "Trainer",
    "VAEOutput",
    "VQDecoder",
    "VQEncoder",
    "VQLoss",
    "VQVAEOutput",
    "__version__",
    "active_units",
    "aggregate_posterior",
    "bits_per_dim",
    "code_dataset",
    "dequantization_correction",
    "dequantize",
    "fit_code_prior",
    "fit_gmm_sampler",
    "gaussian_kl",
    "importance_log_weights",
    "kl_per_dimension",
    "latent_report",
    "load_checkpoint",
    "load_cifar10",
    "load_dataset",
    "load_factor_dataset",
    "load_image_data",
    "load_model",
    "load_sprites",
    "load_weights",
    "log_likelihood",
    "metrics",
    "mnist_loaders",
    "model_config",
    "model_from_config",
    "mutual_information",
    "posteriors",
    "priors",
    "read_idx",
    "read_tensor_file",
    "register_serializable",
    "samplers",
    "save_checkpoint",
    "save_model",
    "save_weights",
    "schedules",
    "set_validation",
    "split_indices",
    "standard_normal",
    "standard_normal_log_prob",
    "warn_if_collapsed",
]
