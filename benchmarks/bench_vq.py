#!/usr/bin/env python3
"""VQ-VAE against pythae's VQVAE, and what an ex-post GMM sampler does for a VAE's samples.

**VQ-VAE cases** (Fashion-MNIST, or synthetic MNIST-shaped data when absent). Both train
the same networks: torchvae's ``VQEncoder((1, 28, 28), (32, 64), D)`` and
``VQDecoder((1, 28, 28), (64, 32), D)`` (stride-2 4x4 convolutions with ReLU, a 1x1
convolution to D = 16 channels; a 3x3 convolution and transposed convolutions back), and
for pythae the same layers as plain ``nn.Sequential`` stacks, a codebook of K = 128 codes
initialized uniform in [-1/K, 1/K], beta = 0.25, Adam lr 1e-3, batch 128, fp32, CPU. The
objective is the same function in both: pythae's (squared error summed over the pixels of
the sigmoid output, plus codebook and beta * commitment terms averaged over the latent
values) is torchvae's ``VQLoss(beta=0.25, reduction="mean")`` with
``Gaussian(scale=sqrt(1/2), link="sigmoid")``, up to a constant.

  torchvae      Trainer(VQVAE, VQLoss) fed by TensorLoader (uint8 in memory).
  pythae        pythae 0.1.2's BaseTrainer with pythae.models.VQVAE and the same modules
                inside BaseEncoder/BaseDecoder, data as a BaseDataset of float tensors.
  torchvae-ema  the same with an EMA codebook (decay 0.99).
  pythae-ema    pythae's VQVAE with use_ema=True (decay 0.99).
  torchvae-restarts  the torchvae case with dead-code restarts (codes unused for 100
                steps move onto encoder outputs), which pythae does not have.

The torchvae case then fits its PixelCNN prior on the training codes (``--prior-epochs``)
and draws 64 samples: the prior's test NLL per code map and the sampling time.

With ``--floor`` each torchvae VQ-VAE case, after everything else, trains ``--floor-steps``
(40) more steps under the profiler and reports the CPU time of its convolutions and matrix
products per epoch: the time its step would take if everything else were free. pythae's
case runs the same layers, so pythae's s/epoch over this floor bounds the speed-up any
implementation can reach here.

Reported: s/epoch (median over epochs 2..N and repeats, and its min-max), the ratio to
pythae's, the test reconstruction error (squared error summed over the 784 pixels, mean
over the test images, one function for every case), the Gaussian NLL it implies under the
models' likelihood (sigma^2 = 1/2: MSE + 392 ln pi nats), and the test codes' perplexity.

**The gmm case** (torchvae only): the 784-400-20 MLP VAE (Bernoulli) trained by the
Trainer; a 10-component full-covariance GaussianMixtureSampler fitted to the training
set's posterior means; 10k samples from the prior and 10k from the GMM, scored by the
Frechet distance to the 10k test images in the 128-d penultimate features of a small MLP
classifier trained on the training set (a FID with a Fashion-MNIST feature network; lower
is better), with the distance of 10k training images as the floor. Also: how well each
density fits the test images' posterior means (mean log-density, nats).

Each case runs in a fresh process with one torch thread (``--threads``): on a machine
whose two cores other jobs share, a second intra-op thread mostly waits at barriers (small
ops became up to 100x slower here), which says more about the neighbours than about the
code. Cases alternate order across repeats; the load average is printed before, between
and after the cases. Both VQ-VAEs start from the same weights (copied into pythae's).

Example:
    python benchmarks/bench_vq.py --quick --skip-pythae
    python benchmarks/bench_vq.py --epochs 10 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _bench as B
import torch
from torch import Tensor, nn

CASES = ["torchvae", "pythae", "torchvae-ema", "pythae-ema", "torchvae-restarts", "gmm"]
RESTART_AFTER = 100
K, D, BETA, LR = 128, 16, 0.25, 1e-3
ENC_CHANNELS, DEC_CHANNELS = (32, 64), (64, 32)
HALF_LOG_2PI_VAR = 0.5 * math.log(math.pi)  # 0.5 log(2 pi sigma^2) with sigma^2 = 1/2


def _epoch_timer_torchvae() -> Any:
    from torchvae.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_train_epoch_start(self, trainer: Any) -> None:
            self._t = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any) -> None:
            self.times.append(time.perf_counter() - self._t)

    return EpochTimer()


@torch.no_grad()
def reconstruction_scores(
    reconstruct: Any, indices: Any, x: Tensor, batch_size: int = 1000
) -> dict[str, float]:
    """Test squared error (sum over pixels, mean over images), the Gaussian NLL it implies,
    and the perplexity of the test codes."""
    sse, counts = 0.0, torch.zeros(K, dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        sse += float((reconstruct(xb).reshape(xb.shape) - xb).double().square().sum())
        counts += torch.bincount(indices(xb).reshape(-1), minlength=K).double()
    mse = sse / len(x)
    p = counts / counts.sum()
    perplexity = float(torch.exp(-(p[p > 0] * p[p > 0].log()).sum()))
    return {
        "mse": mse,
        "nll": mse + x[0].numel() * HALF_LOG_2PI_VAR,
        "perplexity": perplexity,
        "codes_used": int((counts > 0).sum()),
    }


def torchvae_model(seed: int, ema: bool, restart_after: int | None = None) -> Any:
    """The benchmark's VQ-VAE in torchvae, initialized from ``seed``."""
    B.ensure_torchvae_importable()
    from torchvae import VQVAE, Codebook, Gaussian, VQDecoder, VQEncoder

    torch.manual_seed(seed)
    return VQVAE(
        VQEncoder((1, 28, 28), ENC_CHANNELS, D),
        VQDecoder((1, 28, 28), DEC_CHANNELS, D),
        Codebook(K, D, ema=ema, decay=0.99, restart_after=restart_after),
        likelihood=Gaussian(scale=math.sqrt(0.5), link="sigmoid"),
    )


def case_torchvae(
    work: Path,
    epochs: int,
    seed: int,
    ema: bool,
    restart_after: int | None = None,
    prior_epochs: int = 0,
    images: Path | None = None,
    floor_steps: int = 0,
) -> dict[str, Any]:
    from torchvae import FashionMNIST, TensorLoader, Trainer, VQLoss, fit_code_prior

    t0 = time.perf_counter()
    train = FashionMNIST(work, train=True)
    loader = TensorLoader(train.data, batch_size=128, shuffle=True, seed=seed)
    load_s = time.perf_counter() - t0
    model = torchvae_model(seed, ema, restart_after)
    timer = _epoch_timer_torchvae()
    trainer = Trainer(
        model, VQLoss(BETA, reduction="mean"), callbacks=[timer], device="cpu", seed=seed
    )
    trainer.fit(loader, epochs=epochs)
    epoch_s = list(timer.times)  # a copy: the floor below trains this trainer further
    train_rss = B.peak_rss_mb()
    model.eval()
    x_test = B.load_float(work, train=False, flat=False)
    scores = reconstruction_scores(model.reconstruct, model.encode_indices, x_test)
    result = {"epoch_s": epoch_s, "load_s": load_s, "train_peak_rss_mb": train_rss, **scores}
    if prior_epochs:  # the second stage: a PixelCNN over the code maps, then samples
        x_train = train.data.float().div(255).unsqueeze(1)
        timer = _epoch_timer_torchvae()
        prior_trainer = fit_code_prior(
            model, x_train, x_test, epochs=prior_epochs, device="cpu", seed=seed,
            callbacks=[timer],
        )  # fmt: skip
        t = time.perf_counter()
        drawn = model.sample(64, generator=torch.Generator().manual_seed(seed))
        result.update(
            prior_epoch_s=timer.times,
            prior_test_nll=prior_trainer.metrics["val_loss"],
            prior_bits_per_code=prior_trainer.metrics["val_bits_per_dim"],
            sample_64_s=time.perf_counter() - t,
        )
        if images is not None:
            from torchvision.utils import save_image

            images.mkdir(parents=True, exist_ok=True)
            save_image(drawn, str(images / "vqvae_samples.png"), nrow=8, pad_value=1.0)
            pairs = torch.stack([x_test[:32], model.reconstruct(x_test[:32])], 1)
            save_image(pairs.reshape(-1, 1, 28, 28), str(images / "vqvae_reconstructions.png"),
                       nrow=8, pad_value=1.0)  # fmt: skip
    if floor_steps:  # last: these steps change the model
        model.train()
        few = TensorLoader(train.data[: floor_steps * 128], batch_size=128)
        ops = (*B.CONVOLUTIONS, *B.MATMULS)
        per_step = B.profiled_seconds_per_step(trainer, few, epochs, ops)
        result["arithmetic_s"] = per_step * len(loader)
    return result


def _plain_networks() -> tuple[nn.Sequential, nn.Sequential]:
    """The same layers as VQEncoder/VQDecoder, written as a pythae user would."""
    (c1, c2), (d1, d2) = ENC_CHANNELS, DEC_CHANNELS
    encoder = nn.Sequential(
        nn.Conv2d(1, c1, 4, 2, 1), nn.ReLU(), nn.Conv2d(c1, c2, 4, 2, 1), nn.ReLU(),
        nn.Conv2d(c2, D, 1),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Conv2d(D, d1, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(d1, d2, 4, 2, 1),
        nn.ReLU(), nn.ConvTranspose2d(d2, 1, 4, 2, 1),
    )  # fmt: skip
    return encoder, decoder


def case_pythae(work: Path, epochs: int, seed: int, ema: bool) -> dict[str, Any]:
    import logging

    from pythae.data.datasets import BaseDataset
    from pythae.models import VQVAE, VQVAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    logging.getLogger("pythae").setLevel(logging.WARNING)
    ours = torchvae_model(seed, ema)  # pythae starts from the very same weights
    encoder_net, decoder_net = _plain_networks()
    encoder_net.load_state_dict(ours.encoder.net.state_dict())
    decoder_net.load_state_dict(ours.decoder.net.state_dict())

    class Enc(BaseEncoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.net = encoder_net

        def forward(self, x: Tensor) -> Any:
            return ModelOutput(embedding=self.net(x))

    class Dec(BaseDecoder):  # type: ignore[misc]
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.net = decoder_net

        def forward(self, z: Tensor) -> Any:
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    class EpochTimer(TrainingCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_epoch_begin(self, training_config: Any, **kwargs: Any) -> None:
            self._t = time.perf_counter()

        def on_epoch_end(self, training_config: Any, **kwargs: Any) -> None:
            self.times.append(time.perf_counter() - self._t)

    t0 = time.perf_counter()
    x = B.load_float(work, train=True, flat=False)
    train = BaseDataset(x, B.load_labels(work, train=True))
    load_s = time.perf_counter() - t0
    config = VQVAEConfig(
        input_dim=(1, 28, 28),
        latent_dim=D,
        commitment_loss_factor=BETA,
        quantization_loss_factor=1.0,
        num_embeddings=K,
        use_ema=ema,
        decay=0.99,
    )
    model = VQVAE(config, encoder=Enc(), decoder=Dec())
    with torch.no_grad():
        codes = ours.codebook.embedding.detach()
        if ema:
            model.quantizer.embeddings.copy_(codes)
            model.quantizer.ema_embed.copy_(codes)
        else:
            model.quantizer.embeddings.weight.copy_(codes)
    timer = EpochTimer()
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as out:
        trainer = BaseTrainer(
            model,
            train_dataset=train,
            eval_dataset=None,
            training_config=BaseTrainerConfig(
                output_dir=out,
                num_epochs=epochs,
                learning_rate=LR,
                per_device_train_batch_size=128,
                per_device_eval_batch_size=128,
                optimizer_cls="Adam",
                no_cuda=True,
                seed=seed,
            ),
            callbacks=[timer],
        )
        trainer.train()
    train_rss = B.peak_rss_mb()
    model = trainer.model.eval()

    def quantized(xb: Tensor) -> Any:
        z = model.encoder(xb).embedding.permute(0, 2, 3, 1)
        return model.quantizer(z)

    def reconstruct(xb: Tensor) -> Tensor:
        out: Tensor = model.decoder(quantized(xb).quantized_vector).reconstruction
        return out

    def indices(xb: Tensor) -> Tensor:
        found: Tensor = quantized(xb).quantized_indices
        return found

    x_test = B.load_float(work, train=False, flat=False)
    scores = reconstruction_scores(reconstruct, indices, x_test)
    return {"epoch_s": timer.times, "load_s": load_s, "train_peak_rss_mb": train_rss, **scores}


# ----------------------------------------------------------------------------- gmm


def _classifier(x: Tensor, y: Tensor, epochs: int, seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            loss = nn.functional.cross_entropy(net(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
    return net.eval()


def _frechet(a: Tensor, b: Tensor) -> float:
    r""":math:`\lVert\mu_a - \mu_b\rVert^2 + \mathrm{tr}(\Sigma_a + \Sigma_b - 2(\Sigma_a^{1/2}
    \Sigma_b \Sigma_a^{1/2})^{1/2})`."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp_min(0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * middle)


def case_gmm(work: Path, epochs: int, seed: int, images: Path | None) -> dict[str, Any]:
    B.ensure_torchvae_importable()
    from torchvae import ELBOLoss, Trainer, fit_gmm_sampler
    from torchvae.gaussian import standard_normal_log_prob

    x = B.load_float(work, train=True)
    y = B.load_labels(work, train=True)
    x_test = B.load_float(work, train=False)
    torch.manual_seed(seed)
    model = B.torchvae_mlp()
    trainer = Trainer(model, ELBOLoss(), device="cpu", seed=seed)
    trainer.fit(x, epochs=epochs)
    model.eval()
    t = time.perf_counter()
    gmm = fit_gmm_sampler(model, x, 10, generator=torch.Generator().manual_seed(seed))
    fit_s = time.perf_counter() - t
    n = len(x_test)
    prior = model.sample(n, generator=torch.Generator().manual_seed(seed + 1))
    mixture = model.sample(n, generator=torch.Generator().manual_seed(seed + 1), sampler=gmm)
    net = _classifier(x, y, 3, seed)
    with torch.no_grad():
        features = net[:4]
        test_f = features(x_test)
        train_f = features(x[torch.randperm(len(x), generator=torch.Generator())[:n]])
        fd = {
            "fd_train_images": _frechet(test_f, train_f),
            "fd_prior_samples": _frechet(test_f, features(prior)),
            "fd_gmm_samples": _frechet(test_f, features(mixture)),
        }
        codes = model.encode(x_test).mean
        fit = {
            "test_codes_log_density_prior": float(standard_normal_log_prob(codes).mean()),
            "test_codes_log_density_gmm": float(gmm.log_prob(codes).mean()),
        }
    if images is not None:
        from torchvision.utils import save_image

        images.mkdir(parents=True, exist_ok=True)
        for name, drawn in (("prior", prior), ("gmm", mixture)):
            grid = drawn[:64].reshape(-1, 1, 28, 28)
            save_image(grid, str(images / f"vae_samples_{name}.png"), nrow=8, pad_value=1.0)
    test_elbo = trainer.evaluate(x_test)["loss"]
    return {"epoch_s": [], "gmm_fit_s": fit_s, "test_neg_elbo": test_elbo, **fd, **fit}


# ----------------------------------------------------------------------------- processes


def child_main(args: argparse.Namespace) -> None:
    B.set_threads(args.threads)
    work = Path(args.work)
    name = args.child
    if name == "gmm":
        images = Path(args.images) if args.images else None
        result = case_gmm(work, args.epochs, args.seed, images)
    elif name.startswith("pythae"):
        result = case_pythae(work, args.epochs, args.seed, ema=name.endswith("-ema"))
    else:
        ema, restarts = name.endswith("-ema"), name.endswith("-restarts")
        images = Path(args.images) if args.images else None
        prior_epochs = args.prior_epochs if name == "torchvae" else 0
        restart_after = RESTART_AFTER if restarts else None
        floor = args.floor_steps if args.floor else 0
        result = case_torchvae(
            work, args.epochs, args.seed, ema, restart_after, prior_epochs, images, floor
        )
    result["threads"] = torch.get_num_threads()
    B.write_result(args.result_file, result)


def run_child(python: str, case: str, args: argparse.Namespace, work: Path, log: Path) -> Any:
    result_file = work / f"result-{case}.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        python, str(Path(__file__).resolve()), "--child", case, "--work", str(work),
        "--epochs", str(args.epochs), "--threads", str(args.threads), "--seed", str(args.seed),
        "--result-file", str(result_file),
    ]  # fmt: skip
    if args.images:
        cmd += ["--images", str(args.images)]
    cmd += ["--prior-epochs", str(args.prior_epochs), "--floor-steps", str(args.floor_steps)]
    cmd += ["--floor"] if args.floor else []
    with log.open("a") as f:
        f.write(f"\n===== {case}\n")
        f.flush()
        proc = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=B.child_env(args.threads)
        )
    if proc.returncode != 0 or not result_file.exists():
        tail = log.read_text().rsplit(f"===== {case}\n", 1)[-1].strip().splitlines()[-3:]
        return f"exit {proc.returncode}: " + " / ".join(tail)
    return json.loads(result_file.read_text())


def _later_epochs(run: dict[str, Any]) -> list[float]:
    times: list[float] = run["epoch_s"]
    return times[1:] if len(times) > 1 else times


def report(runs: dict[str, list[dict[str, Any]]], quick: bool) -> None:
    rows, s_epoch = [], {}
    for case in (c for c in CASES if c != "gmm" and runs.get(c)):
        times = [t for r in runs[case] for t in _later_epochs(r)]
        s_epoch[case] = B.median(times)
        mse = [r["mse"] for r in runs[case]]
        rows.append([case, f"{s_epoch[case]:.2f}", f"{min(times):.2f}-{max(times):.2f}"])
        rows[-1] += ["", f"{B.median(mse):.2f} ({min(mse):.2f}-{max(mse):.2f})"]
        rows[-1] += [f"{B.median([r['nll'] for r in runs[case]]):.1f}"]
        rows[-1] += [f"{B.median([r['perplexity'] for r in runs[case]]):.1f}"]
    floor = any("arithmetic_s" in r for c in runs for r in runs[c])
    for row in rows:
        ref = "pythae-ema" if row[0].endswith("-ema") else "pythae"
        row[3] = B.fmt(s_epoch[ref] / s_epoch[row[0]]) if ref in s_epoch else "-"
        if floor:
            spent = [r["arithmetic_s"] for r in runs[row[0]] if "arithmetic_s" in r]
            arithmetic = B.median(spent) if spent else None
            row += [B.fmt(arithmetic) if arithmetic else "-"]
            bound = s_epoch[ref] / arithmetic if arithmetic and ref in s_epoch else None
            row += [B.fmt(bound) if bound else "-"]
    if rows:
        headers = ["case", "s/epoch", "(min-max)", "x vs pythae", "test MSE (range)"]
        headers += ["test NLL", "code perplexity"]
        headers += ["conv+matmul s/epoch", "pythae s / that"] if floor else []
        B.print_table(headers, rows)
        for ours, theirs in (("torchvae", "pythae"), ("torchvae-ema", "pythae-ema")):
            if ours in s_epoch and theirs in s_epoch:
                speed = s_epoch[theirs] / s_epoch[ours]
                ok_mse = B.median([r["mse"] for r in runs[ours]]) <= B.median(
                    [r["mse"] for r in runs[theirs]]
                )
                tag = "smoke" if quick else ("met" if speed >= 1.5 and ok_mse else "NOT met")
                print(
                    f"{tag:7s} {ours}: {speed:.2f}x pythae's speed (target 1.5x), test MSE "
                    f"{'<=' if ok_mse else '>'} pythae's"
                )
    tv = runs.get("torchvae")
    if tv and "prior_test_nll" in tv[0]:
        r = tv[0]
        print(
            f"\nPixelCNN prior on the torchvae case's codes ({len(r['prior_epoch_s'])} epochs, "
            f"{B.median(r['prior_epoch_s']):.1f} s/epoch): test NLL {r['prior_test_nll']:.2f} "
            f"nats per code map ({r['prior_bits_per_code']:.3f} bits per code, against "
            f"{math.log2(K):.0f} for the uniform prior); 64 samples in {r['sample_64_s']:.2f} s"
        )
    if runs.get("gmm"):
        g = runs["gmm"][0]
        print()
        B.print_table(
            ["samples (10k)", "Frechet distance to test images"],
            [
                ["training images (floor)", f"{g['fd_train_images']:.2f}"],
                ["VAE, z ~ N(0, I)", f"{g['fd_prior_samples']:.2f}"],
                ["VAE, z ~ GMM(10, full)", f"{g['fd_gmm_samples']:.2f}"],
            ],
        )
        print(
            f"test posterior means: mean log-density {g['test_codes_log_density_prior']:.2f} "
            f"under N(0, I), {g['test_codes_log_density_gmm']:.2f} under the GMM (nats); "
            f"GMM fit {g['gmm_fit_s']:.1f} s; test -ELBO {g['test_neg_elbo']:.2f} (unchanged "
            f"by the sampler)"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true",
                   help="smoke run (CI): 2048 training and 1000 test images, 2 epochs")  # fmt: skip
    p.add_argument("--epochs", type=int, default=None, help="epochs per run (default 10)")
    p.add_argument("--repeats", type=int, default=1, help="runs per case (default 1)")
    p.add_argument("--cases", default=None, help=f"comma-separated, of {', '.join(CASES)}")
    p.add_argument("--skip-pythae", action="store_true", help="run the torchvae cases only")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"the four Fashion-MNIST IDX files (default {B.DEBIAN_DIR})")  # fmt: skip
    p.add_argument("--synthetic", action="store_true", help="use synthetic data even if found")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per case (default 1: see the note above)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=Path, default=None,
                   help="write the gmm case's sample grids (PNG) into this folder")  # fmt: skip
    p.add_argument("--prior-epochs", type=int, default=None,
                   help="also fit the torchvae case's PixelCNN prior for this many epochs and "
                   "time sampling (default 3; quick 1; 0 skips)")  # fmt: skip
    p.add_argument("--pythae-python", default=None)
    p.add_argument("--json", type=Path, default=None, help="also write every number here")
    p.add_argument("--floor", action="store_true",
                   help="also profile the convolutions and matrix products")  # fmt: skip
    p.add_argument("--floor-steps", type=int, default=40, help="steps profiled (40)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child_main(args)
        return 0
    from bench_train import pythae_python

    args.epochs = args.epochs or (2 if args.quick else 10)
    if args.prior_epochs is None:
        args.prior_epochs = 1 if args.quick else 3
    cases = args.cases.split(",") if args.cases else list(CASES)
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    pythons = {c: sys.executable for c in cases}
    py_pythae = None if args.skip_pythae else pythae_python(args.pythae_python)
    for case in [c for c in cases if c.startswith("pythae")]:
        if py_pythae is None:
            if not args.skip_pythae:
                print(f"skipped {case}: pythae is not installed (see benchmarks/README.md)")
            cases.remove(case)
        else:
            pythons[case] = py_pythae
    failed = False
    with tempfile.TemporaryDirectory(prefix="torchvae-bench-vq-") as tmp:
        work = Path(tmp)
        n_train, n_test = (2048, 1000) if args.quick else (None, None)
        data = B.prepare_data(args.data_dir, work, n_train, n_test, args.seed, args.synthetic)
        load = os.getloadavg()
        print(
            f"data: {data}; torch {torch.__version__}, {args.threads} threads, {args.epochs} "
            f"epochs x {args.repeats} repeats; {platform.machine()}, {os.cpu_count()} CPUs; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
            flush=True,
        )
        log = work / "children.log"
        runs: dict[str, list[dict[str, Any]]] = {c: [] for c in cases}
        for r in range(args.repeats):
            for case in cases if r % 2 == 0 else cases[::-1]:
                if case == "gmm" and r > 0:
                    continue
                t = time.perf_counter()
                out = run_child(pythons[case], case, args, work, log)
                if isinstance(out, str):
                    print(f"  [{r + 1}/{args.repeats}] {case}: FAILED {out}", flush=True)
                    failed = True
                    continue
                runs[case].append(out)
                epochs = " ".join(f"{s:.1f}" for s in out["epoch_s"])
                print(
                    f"  [{r + 1}/{args.repeats}] {case}: epochs {epochs} s "
                    f"({time.perf_counter() - t:.0f} s in all; load "
                    f"{os.getloadavg()[0]:.2f})",
                    flush=True,
                )
        load = os.getloadavg()
        print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
        report(runs, args.quick)
        if args.json:
            args.json.write_text(json.dumps({"data": data, "runs": runs}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
