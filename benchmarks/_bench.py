"""Shared helpers for the benchmark scripts: data, the reference model, timing, memory.

Not part of the torchvae package; imported by the scripts beside it (``sys.path[0]``).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import resource
import shutil
import statistics
import struct
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parent.parent
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# torchvision's FashionMNIST looks for its extracted files in root/FashionMNIST/raw.
RAW_SUBDIR = Path("FashionMNIST") / "raw"


def ensure_torchvae_importable() -> None:
    """Put the checkout's ``src/`` on ``sys.path`` when torchvae is not installed."""
    try:
        import torchvae  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO / "src"))


# ----------------------------------------------------------------------------- data


def read_idx(path: Path) -> Tensor:
    """Read an IDX file of unsigned bytes (gzip-compressed or not) into a uint8 tensor."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim :]), dtype=torch.uint8).reshape(shape)


def write_idx(path: Path, array: Tensor) -> None:
    """Write a uint8 tensor as an uncompressed IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.contiguous().numpy().tobytes())


def find_source(data_dir: Path | None) -> Path | None:
    """The folder holding the four Fashion-MNIST files (``.gz`` or not), or ``None``."""
    candidates = [data_dir] if data_dir is not None else [DEBIAN_DIR]
    for folder in candidates:
        if folder is None:
            continue
        for sub in (folder, folder / RAW_SUBDIR):
            if all((sub / n).exists() or (sub / f"{n}.gz").exists() for n in FILES.values()):
                return sub
    return None


def synthetic(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """MNIST-shaped uint8 images with some structure (class prototypes plus noise)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=g, dtype=torch.uint8)
    protos = (torch.rand(10, 28, 28, generator=g) < 0.3).float()
    protos = F.avg_pool2d(protos.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    images = protos[labels.long()] * torch.rand(n, 1, 1, generator=g).add(0.5)
    images = images + 0.1 * torch.rand(n, 28, 28, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


def prepare_data(
    data_dir: Path | None,
    work: Path,
    n_train: int | None,
    n_test: int | None,
    seed: int = 0,
    synthetic_only: bool = False,
) -> str:
    """Write the four raw IDX files into ``work/FashionMNIST/raw``; return the data's name.

    The files come from ``data_dir`` (default: Debian's ``dataset-fashion-mnist``), cut to
    the first ``n_train`` / ``n_test`` examples when given, or are synthetic when absent.
    Every case then reads the same files, each in its own way.
    """
    raw = work / RAW_SUBDIR
    raw.mkdir(parents=True, exist_ok=True)
    source = None if synthetic_only else find_source(data_dir)
    if source is None:
        if data_dir is not None and not synthetic_only:
            raise SystemExit(f"--data-dir {data_dir}: the four Fashion-MNIST files are not there")
        name = "synthetic (MNIST-shaped uint8)"
        for split, n, s in (
            ("train", n_train or 60_000, seed),
            ("test", n_test or 10_000, seed + 1),
        ):
            images, labels = synthetic(n, s)
            write_idx(raw / FILES[f"{split}_images"], images)
            write_idx(raw / FILES[f"{split}_labels"], labels)
        return name
    for key, fname in FILES.items():
        limit = n_train if key.startswith("train") else n_test
        src = source / fname if (source / fname).exists() else source / f"{fname}.gz"
        if limit is None and src.suffix != ".gz":
            shutil.copyfile(src, raw / fname)
        else:
            array = read_idx(src)
            write_idx(raw / fname, array[:limit] if limit else array)
    return f"Fashion-MNIST ({source})"


def load_float(work: Path, train: bool, flat: bool = True) -> Tensor:
    """The images as float32 in [0, 1], preloaded: ``(n, 784)`` or ``(n, 1, 28, 28)``."""
    key = "train_images" if train else "test_images"
    images = read_idx(work / RAW_SUBDIR / FILES[key]).float().div_(255)
    return images.reshape(len(images), -1) if flat else images.unsqueeze(1)


def load_labels(work: Path, train: bool) -> Tensor:
    """The labels as an int64 tensor."""
    return read_idx(work / RAW_SUBDIR / FILES["train_labels" if train else "test_labels"]).long()


# ----------------------------------------------------------------------------- model


class ExamplesVAE(nn.Module):
    """pytorch/examples' ``vae/main.py`` model: 784-400-20 MLP, ReLU, sigmoid output."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu: Tensor, logvar: Tensor) -> Tensor:
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z: Tensor) -> Tensor:
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def examples_loss(recon_x: Tensor, x: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """pytorch/examples' loss: summed BCE plus the closed-form KL, summed over the batch."""
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def torchvae_mlp(**parts: Any) -> nn.Module:
    """The same 784-400-20 ReLU MLP built from torchvae's parts (``parts``: ``prior=`` etc.)."""
    ensure_torchvae_importable()
    from torchvae.models.decoders import Decoder
    from torchvae.models.encoders import Encoder
    from torchvae.models.vae import VAE

    return VAE(
        Encoder(784, [400], 20, activation=nn.ReLU),
        Decoder(20, [400], 784, activation=nn.ReLU),
        **parts,
    )


@torch.no_grad()
def neg_elbo(
    forward: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]],
    x: Tensor,
    batch_size: int = 1000,
    seed: int = 1234,
) -> float:
    """Test -ELBO in nats: BCE summed over pixels plus KL, mean over examples.

    ``forward(xb)`` returns ``(probabilities, mean, log_var)`` for flat ``xb``; one sample of
    ``z`` per example (seeded), as pytorch/examples' ``test()`` does.
    """
    torch.manual_seed(seed)
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        recon, mu, logvar = forward(xb)
        total += float(
            examples_loss(recon.reshape(len(xb), -1).float(), xb, mu.float(), logvar.float())
        )
    return total / len(x)


# ----------------------------------------------------------------------------- measuring


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def children_peak_rss_mb() -> float:
    """The largest peak resident memory among this process's waited-for children, MB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def current_rss_mb() -> float:
    """This process's resident memory now, in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def reset_peak_rss() -> bool:
    """Reset this process's peak resident memory (Linux's VmHWM); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def hwm_rss_mb() -> float:
    """This process's peak resident memory since start or the last :func:`reset_peak_rss`."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mb()


def set_threads(n: int) -> None:
    """Use ``n`` intra-op threads (and say so to OpenMP/MKL for anything started later)."""
    torch.set_num_threads(n)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


def child_env(threads: int) -> dict[str, str]:
    """Environment for a child process: fixed thread counts, unbuffered output."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONUNBUFFERED="1")
    return env


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")
# oneDNN's CPU convolutions: forward, transposed (run inside ``_convolution``) and backward.
CONVOLUTIONS = ("aten::mkldnn_convolution", "aten::_convolution", "aten::convolution_backward")


def profiled_seconds_per_step(
    trainer: Any, loader: Any, epochs_done: int, ops: Sequence[str] = MATMULS
) -> float:
    """CPU seconds per step spent in ``ops`` (self time) in one more epoch of ``loader``."""
    from torch.profiler import profile

    with profile() as prof:
        trainer.fit(loader, epochs=epochs_done + 1)
    spent = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in ops)
    return float(spent) / 1e6 / len(loader)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def write_result(path: str, result: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(result))


def fmt(value: float, spec: str = ".2f") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else format(value, spec)
    )


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a Markdown table with aligned columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    print(line)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
