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

from . import metrics, schedules
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
from .factor_files import DSprites, Shapes3D, load_factor_dataset
from .factors import FactorDataset, TensorFactorDataset
from .gaussian import GaussianParams, gaussian_kl, standard_normal, standard_normal_log_prob
from .importance import bits_per_dim, importance_log_weights, log_likelihood
from .likelihoods import Bernoulli, ContinuousBernoulli, Gaussian, Likelihood
from .losses import ELBOLoss, IWAELoss, LossOutput
from .model import VAE, VAEOutput
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
from .trainer import NonFiniteLossError, StepOutput, Trainer

__version__ = "0.1.0"

__all__ = [
    "MNIST",
    "VAE",
    "ActiveUnits",
    "Bernoulli",
    "BetaSchedule",
    "Callback",
    "CheckpointError",
    "ChecksumError",
    "ConditionalVAE",
    "ContinuousBernoulli",
    "ConvDecoder",
    "ConvEncoder",
    "DSprites",
    "DatasetNotFoundError",
    "Decoder",
    "ELBOLoss",
    "EarlyStopping",
    "Encoder",
    "FactorDataset",
    "FashionMNIST",
    "Gaussian",
    "GaussianParams",
    "IDXFormatError",
    "IWAELoss",
    "LatentReport",
    "Likelihood",
    "LossOutput",
    "ModelCheckpoint",
    "NonFiniteLossError",
    "PosteriorCollapseWarning",
    "ProgressBar",
    "SerializationError",
    "Shapes3D",
    "Sprites",
    "StepOutput",
    "TensorBoardLogger",
    "TensorFactorDataset",
    "TensorLoader",
    "Trainer",
    "VAEOutput",
    "__version__",
    "active_units",
    "bits_per_dim",
    "gaussian_kl",
    "importance_log_weights",
    "kl_per_dimension",
    "latent_report",
    "load_checkpoint",
    "load_dataset",
    "load_factor_dataset",
    "load_model",
    "load_sprites",
    "load_weights",
    "log_likelihood",
    "metrics",
    "mnist_loaders",
    "model_config",
    "model_from_config",
    "mutual_information",
    "read_idx",
    "register_serializable",
    "save_checkpoint",
    "save_model",
    "save_weights",
    "schedules",
    "set_validation",
    "standard_normal",
    "standard_normal_log_prob",
    "warn_if_collapsed",
]
