# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The variational autoencoder, step by step
#
# The textbook chapter torchvae grew from, as a notebook: the data, the two networks, the
# reparameterization trick, the ELBO, training with TensorBoard, samples, interpolation and
# the latent manifold, each a few cells that you run top to bottom. The docs' *Tutorial*
# page tells the same story with more of the maths.
#
# **Install torchvae in this notebook's kernel** first (then restart the kernel), with one
# of these in a cell:
#
# ```text
# %pip install "torchvae[notebook]"       # from PyPI
# %pip install -e "../..[notebook]"       # from a clone, with this notebook open in
#                                         # examples/notebooks/
# ```
#
# The `notebook` extra adds matplotlib (for the loss curve and the scatter plot) and
# ipykernel; the image grids need neither. To view the TensorBoard logs, also install
# `tensorboard`.
#
# The notebook is kept in two files: `examples/notebooks/tutorial.py`, the cells as plain
# Python (jupytext's percent format), is the one to edit; `tutorial.ipynb` is rebuilt from
# it, without outputs, by `jupytext --update --to notebook examples/notebooks/tutorial.py`.

# %%
import os

try:
    import torchvae
except ModuleNotFoundError as error:
    raise ModuleNotFoundError(
        "torchvae is not installed in this kernel: run `%pip install torchvae` in a cell "
        "(from a clone: `%pip install -e ../..`), then restart the kernel"
    ) from error
import torch

# TORCHVAE_NOTEBOOK_QUICK=1: a smoke run of a few batches (the test suite runs the notebook
# so), which also never downloads anything.
QUICK = os.environ.get("TORCHVAE_NOTEBOOK_QUICK", "") not in ("", "0")
MAX_BATCHES = 3 if QUICK else None  # batches per epoch; None: the whole data set
EPOCHS = 1 if QUICK else 10  # the chapter trains 30; 10 already draw recognisable digits
torch.manual_seed(0)
print(f"torchvae {torchvae.__version__}, torch {torch.__version__}, quick run: {QUICK}")

# %% [markdown]
# A small helper draws a batch of images as one grid, inline. It needs only Pillow, which
# torchvision installs.

# %%
from IPython.display import display
from PIL import Image
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid


def show(images: torch.Tensor, nrow: int = 8, scale: int = 2) -> None:
    """Display images in [0, 1] (any shape that holds 28x28 pictures) as one grid."""
    grid = make_grid(images.detach().cpu().reshape(-1, 1, 28, 28), nrow=nrow, pad_value=1.0)
    picture = to_pil_image(grid)
    size = (picture.width * scale, picture.height * scale)
    display(picture.resize(size, Image.Resampling.NEAREST))


# %% [markdown]
# ## The data
#
# The chapter loads MNIST through torchvision into `./MNIST_DATA/`, in batches of 100,
# the training set shuffled. `mnist_loaders` does the same, keeping the images in memory as
# `uint8`. It looks for the files in `./MNIST_DATA`, in the folder named by
# `TORCHVAE_DATA_DIR`, or downloads them; offline, this cell falls back to Fashion-MNIST
# from Debian's `dataset-fashion-mnist` package (`/usr/share/datasets/fashion-mnist`), as
# the quick start does. Fashion-MNIST has MNIST's format: 28x28 grey images, 10 classes.

# %%
from pathlib import Path

from torchvae import mnist_loaders
from torchvae.data import DatasetNotFoundError, TensorLoader

CLASSES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}  # fmt: skip


def find_data() -> tuple[str, TensorLoader, TensorLoader]:
    """MNIST (on disk, else downloaded) or else Debian's Fashion-MNIST, as loaders."""
    options = {"flatten": True, "max_batches": MAX_BATCHES}  # (100, 784) batches
    try:
        return "mnist", *mnist_loaders(download=not QUICK, **options)
    except DatasetNotFoundError as error:
        missing = error
    for folder in ("MNIST_DATA/MNIST/raw", "MNIST_DATA/MNIST", "MNIST_DATA"):
        if Path(folder).is_dir() and not any(Path(folder).iterdir()):
            Path(folder).rmdir()  # left empty by a failed download
    try:
        loaders = mnist_loaders(dataset="fashion-mnist", **options)
    except DatasetNotFoundError:
        raise missing from None  # its message says where to put the MNIST files
    print("MNIST is not on disk and could not be downloaded: using Fashion-MNIST instead.")
    return "fashion-mnist", *loaders


DATASET, train_loader, test_loader = find_data()
x, y = next(iter(train_loader))  # x: (100, 784) in [0, 1], y: (100,)
print(f"{DATASET}: batches {tuple(x.shape)}, labels {y[:10].tolist()} ...")
show(x[:32])

# %% [markdown]
# ## The two networks
#
# A variational autoencoder's **encoder** $q_\phi(z \mid x)$ returns, for each image, the
# mean $\mu_\phi(x)$ and log-variance $\log\sigma^2_\phi(x)$ of a Gaussian over the latent
# vector $z$; its **decoder** $p_\theta(x \mid z)$ turns $z$ back into one probability per
# pixel. torchvae's `Encoder` and `Decoder` are the chapter's: two hidden `Linear` layers
# with `LeakyReLU(0.2)`, the encoder with two heads, of sizes 784-400-200.

# %%
from torchvae import Decoder, Encoder

encoder = Encoder(input_dim=784, hidden_dim=400, latent_dim=200)
decoder = Decoder(latent_dim=200, hidden_dim=400, output_dim=784)

mean, log_var = encoder(x)  # each (100, 200): the parameters of q_phi(z|x)
x_hat = decoder(mean)  # (100, 784), in [0, 1]: the decoder's sigmoid output
print(tuple(mean.shape), tuple(log_var.shape), tuple(x_hat.shape))
show(x_hat[:16])  # untrained: grey noise

# %% [markdown]
# ## The reparameterization trick
#
# The decoder needs a sample $z \sim \mathcal{N}(\mu, \operatorname{diag}\sigma^2)$, and
# sampling is not differentiable in $\mu$ and $\sigma$. Written as a function of them and
# of noise that does not depend on them,
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I), \qquad
# \sigma = \exp\left(\tfrac12 \log\sigma^2\right),$$
#
# it is, and gradients of the loss flow through $z$ into the encoder:

# %%
eps = torch.randn_like(mean)
z = mean + torch.exp(0.5 * log_var) * eps
z.sum().backward()
print("gradient reached the encoder:", all(p.grad is not None for p in encoder.parameters()))
encoder.zero_grad()

# %% [markdown]
# `VAE` joins the two networks this way: encode, reparameterize, decode.

# %%
from torchvae import VAE

model = VAE(encoder, decoder)
out = model(x)
print("q(z|x):", tuple(out.mean.shape), tuple(out.log_var.shape))
print("z:", tuple(out.z.shape), " reconstruction:", tuple(out.x_hat.shape))

# %% [markdown]
# ## The objective: the ELBO
#
# Training maximises a lower bound on $\log p_\theta(x)$, the **evidence lower bound**:
#
# $$\log p_\theta(x) \ge
# \mathbb{E}_{q_\phi(z \mid x)}\left[\log p_\theta(x \mid z)\right]
# - \mathrm{KL}\left(q_\phi(z \mid x) \,\|\, p(z)\right), \qquad p(z) = \mathcal{N}(0, I).$$
#
# With one Bernoulli per pixel, the first term is minus the binary cross-entropy summed over
# the pixels; the KL term between the two Gaussians has a closed form,
# $\frac12 \sum_j \left(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\right)$.
# `ELBOLoss` returns the negative ELBO in nats per image; times the batch size, it is the
# companion code's `BCE(x_hat, x, reduction="sum") + KLD`:

# %%
import torch.nn.functional as F

from torchvae import ELBOLoss

loss = ELBOLoss()(out, x)
print(
    f"-ELBO {loss.total.item():.2f} = reconstruction {loss.reconstruction.item():.2f}"
    f" + KL {loss.kl.item():.2f} nats per image"
)

bce = F.binary_cross_entropy(out.x_hat, x, reduction="sum")
kld = -0.5 * torch.sum(1 + out.log_var - out.mean**2 - out.log_var.exp())
print(f"the chapter's BCE + KLD, per image: {(bce + kld).item() / len(x):.2f}")
assert torch.allclose(loss.total * len(x), bce + kld, rtol=1e-3)

# %% [markdown]
# ## Training, with TensorBoard
#
# The chapter trains with Adam at a learning rate of $10^{-3}$ and logs the loss of each
# epoch to TensorBoard. `Trainer` is that loop (Adam and `ELBOLoss()` by default), with the
# rest hanging off it as callbacks: `TensorBoardLogger` writes the losses per step and per
# epoch, grids of reconstructions and samples, and latent diagnostics to `runs/notebook`;
# `ProgressBar` prints a line per epoch (train and test loss in nats per image).
#
# With the chapter's 200 latent dimensions most stay inactive (their KL is near zero: the
# decoder does not use them), which is expected: TensorBoard's `latent/active_units` shows
# how many the model uses each epoch. The logger warns only when the model is actually
# collapsed, with no active dimension or no information in $z$. The docs' guide *Detect
# posterior collapse* says more.

# %%
from torchvae import ProgressBar, TensorBoardLogger, Trainer

LOG_DIR = Path("runs/notebook")
model = VAE(Encoder(784, 400, 200), Decoder(200, 400, 784))
trainer = Trainer(model, seed=0, callbacks=[TensorBoardLogger(LOG_DIR), ProgressBar()])
trainer.fit(train_loader, val=test_loader, epochs=EPOCHS)
device = trainer.device
print("TensorBoard event files:", [str(p) for p in sorted(LOG_DIR.rglob("events.out.*"))])

# %% [markdown]
# To watch a run, start TensorBoard on the log folder, in a terminal
# (`tensorboard --logdir runs`) or here, with the `tensorboard` package installed:
#
# ```text
# %load_ext tensorboard
# %tensorboard --logdir runs
# ```
#
# The same numbers, from the trainer's history, as a curve (with matplotlib):

# %%
try:
    import matplotlib.pyplot as plt
except ModuleNotFoundError:
    plt = None
    print("matplotlib is not installed (pip install matplotlib): no plots, only the grids")

if plt is not None:
    epochs = [row["epoch"] for row in trainer.history]
    plt.figure(figsize=(5, 3))
    plt.plot(epochs, [row["loss"] for row in trainer.history], "o-", label="train")
    plt.plot(epochs, [row["val_loss"] for row in trainer.history], "o-", label="test")
    plt.xlabel("epoch")
    plt.ylabel("-ELBO (nats per image)")
    plt.legend()
    plt.show()

# %% [markdown]
# `trainer.evaluate` averages the negative ELBO over the test set: an upper bound on
# $-\log p_\theta(x)$. The importance-weighted estimate of `log_likelihood`, with $k$
# samples of $z$ per image, is a tighter one.

# %%
from torchvae import log_likelihood

print({k: round(v, 3) for k, v in trainer.evaluate(test_loader).items()})
x_test, y_test = next(iter(test_loader))
x_test = x_test.to(device)
model.eval()
with torch.no_grad():
    nll = -log_likelihood(model, x_test, k=10 if QUICK else 500).mean()
print(f"importance-weighted -log p(x) on {len(x_test)} test images: {nll.item():.2f} nats")

# %% [markdown]
# ## Samples
#
# Decoding draws from the prior $p(z) = \mathcal{N}(0, I)$ makes new images:

# %%
torch.manual_seed(0)
show(model.sample(64))

# %% [markdown]
# Test images (odd rows) and their reconstructions (even rows), which decode the posterior
# means:

# %%
recon = model.reconstruct(x_test[:16])
show(torch.cat([x_test[:8], recon[:8], x_test[8:16], recon[8:16]]))

# %% [markdown]
# ## Interpolation
#
# Each row decodes the line $z_t = (1 - t)\,\mu(x_1) + t\,\mu(x_2)$, $t$ from 0 to 1,
# between the posterior means of two test images:

# %%
STEPS = 10
path = model.interpolate(x_test[:4], x_test[4:8], steps=STEPS)  # (steps, 4, 784)
show(path.transpose(0, 1), nrow=STEPS)  # row r: x_test[r] -> x_test[4 + r]

# %% [markdown]
# ## The latent manifold
#
# With a two-dimensional latent space the whole space can be drawn at once. A second model,
# 784-512-256-2, decodes a grid of $z$ placed at the prior's quantiles, so that each image
# stands for an equal share of the prior's mass.

# %%
GRID = 5 if QUICK else 20
model_2d = VAE(Encoder(784, [512, 256], 2), Decoder(2, [256, 512], 784))
Trainer(model_2d, seed=0, callbacks=[ProgressBar()]).fit(train_loader, epochs=EPOCHS)
model_2d.eval()

ticks = torch.special.ndtri(torch.linspace(0.5 / GRID, 1 - 0.5 / GRID, GRID))
z2, z1 = torch.meshgrid(ticks.flip(0), ticks, indexing="ij")  # z_2 grows upwards
z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1).to(device)
with torch.no_grad():
    show(model_2d.decode(z), nrow=GRID, scale=1)

# %% [markdown]
# The posterior means $\mu_\phi(x)$ of test images, coloured by label, show how the prior's
# mass is shared between the classes:

# %%
means, labels = [], []
with torch.no_grad():
    for x_batch, y_batch in test_loader:
        means.append(model_2d.encode(x_batch.to(device)).mean.cpu())
        labels.append(y_batch)
means, labels = torch.cat(means), torch.cat(labels)
print(f"{len(means)} posterior means")

if plt is not None:
    plt.figure(figsize=(5, 5))
    for label, name in enumerate(CLASSES[DATASET]):
        mine = labels == label
        plt.scatter(means[mine, 0], means[mine, 1], s=3, color=plt.cm.tab10(label), label=name)
    plt.legend(fontsize="small", markerscale=3, loc="upper left", bbox_to_anchor=(1, 1))
    plt.xlabel(r"$\mu_1$")
    plt.ylabel(r"$\mu_2$")
    plt.show()

# %% [markdown]
# ## Where to go next
#
# - `examples/train_mnist.py` is the chapter as one script; `examples/generate.py`,
#   `examples/latent_space.py` and `examples/conditional.py` draw more.
# - The docs' how-to guides: your own encoder and decoder, convolutional models, a
#   conditional VAE, β and KL warm-up, the log-likelihood, TensorBoard.
