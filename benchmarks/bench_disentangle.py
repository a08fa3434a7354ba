"""Disentangling objectives side by side on the generated sprites: metrics and traversals.

Every objective trains the same MLP VAE (1024-256-128-10, Bernoulli likelihood) on the
same images for the same number of steps with the same optimizer, for several seeds; each
trained model is then scored by the five metrics of ``torchvae.metrics`` on the same data
set, and (with ``--images``) its latent traversal is drawn.

The data: a sub-grid of the generated sprites that fits the budget of a small CPU
machine, every combination of shape (3), scale (6), every 4th rotation (10), every 2nd x
(16) and y (16) position: 46,080 images, average-pooled from 64x64 to 32x32 (so pixels
on a sprite's edge are grey; the Bernoulli likelihood takes targets in [0, 1]), the factor
classes renumbered 0..s-1. The models train on all of them and the metrics score on the
same set (as disentanglement_lib does with dSprites).

One training loop for all objectives, written here: the model's optimizer steps on
``total``, then each auxiliary loss of the objective (FactorVAE's discriminator) is
backpropagated and stepped by its own optimizer, as the ``Trainer`` does with
``LossOutput.aux`` and ``aux_parameters()``. The loop is written out so that the step alone
is timed, the same way for every objective.

``--quick`` is a smoke run on a tiny grid (seconds): every objective, one seed, tiny
metric samples; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import _bench as B
import torch
from torch import Tensor, nn

B.ensure_torchvae_importable()

from torchvae import (  # noqa: E402
    VAE,
    BetaTCVAELoss,
    CapacityLoss,
    Decoder,
    DIPVAELoss,
    ELBOLoss,
    Encoder,
    FactorVAELoss,
    InfoVAELoss,
    Sprites,
    TensorFactorDataset,
)
from torchvae.metrics import (  # noqa: E402
    beta_vae_score,
    dci,
    factor_vae_score,
    mig,
    model_representation,
    sap_score,
)

LATENT = 10
OBJECTIVES = ("vae", "beta-vae", "capacity", "btcvae", "factorvae", "dip-ii", "infovae")
DESCRIPTIONS = {
    "vae": "`ELBOLoss()` (the plain VAE)",
    "beta-vae": "`ELBOLoss(beta=4)`",
    "capacity": "`CapacityLoss(gamma=1000, c_max=25, steps=<all>)`",
    "btcvae": "`BetaTCVAELoss(N, beta=6)` (MSS)",
    "factorvae": "`FactorVAELoss(10, gamma=35)`, discriminator 6x256",
    "dip-ii": "`DIPVAELoss('ii', lambda_od=10)`",
    "infovae": "`InfoVAELoss(alpha=0, lambda_=1000)` (RBF)",
}


def sprite_grid(quick: bool) -> TensorFactorDataset:
    """The sub-grid of the sprites' factor space, rendered, as a factor data set."""
    steps = (1, 3, 10, 8, 8) if quick else (1, 1, 4, 2, 2)
    keep = [torch.arange(0, s, k) for s, k in zip(Sprites.factor_sizes, steps, strict=True)]
    if quick:
        keep[0], keep[1] = keep[0][:2], keep[1][:2]
    original = torch.cartesian_prod(*keep)
    pooled = torch.nn.functional.avg_pool2d(Sprites().images_for(original), 2)
    images = pooled.mul(255).round().to(torch.uint8)
    classes = torch.stack(
        [torch.searchsorted(values, original[:, k].contiguous()) for k, values in enumerate(keep)],
        dim=1,
    )
    return TensorFactorDataset(images, classes, Sprites.factor_names)


def make_loss(name: str, n: int, steps: int, quick: bool) -> nn.Module:
    if name == "vae":
        return ELBOLoss()
    if name == "beta-vae":
        return ELBOLoss(beta=4.0)
    if name == "capacity":
        return CapacityLoss(gamma=1000.0, c_max=25.0, steps=steps)
    if name == "btcvae":
        return BetaTCVAELoss(dataset_size=n, beta=6.0)
    if name == "factorvae":
        return FactorVAELoss(LATENT, gamma=35.0, hidden_features=(16,) if quick else (256,) * 6)
    if name == "dip-ii":
        return DIPVAELoss("ii", lambda_od=10.0)
    if name == "infovae":
        return InfoVAELoss(alpha=0.0, lambda_=1000.0)
    raise ValueError(f"unknown objective {name!r}; choose from {OBJECTIVES}")


def train(
    name: str, data: Tensor, seed: int, steps: int, batch: int, lr: float, quick: bool
) -> tuple[VAE, dict[str, float]]:
    """Fit a fresh model with objective ``name``; the model and its training figures."""
    torch.manual_seed(seed)
    d, hidden = data[0].numel(), (16, 8) if quick else (256, 128)
    model = VAE(Encoder(d, hidden, LATENT), Decoder(LATENT, hidden[::-1], d))
    loss = make_loss(name, data.shape[0], steps, quick)
    groups: dict[str, list[nn.Parameter]] = getattr(loss, "aux_parameters", dict)()
    aux_ids = {id(p) for ps in groups.values() for p in ps}
    main = [*model.parameters(), *(p for p in loss.parameters() if id(p) not in aux_ids)]
    optimizer = torch.optim.Adam(main, lr=lr)
    aux_optimizers = {
        k: torch.optim.Adam(ps, lr=1e-4, betas=(0.5, 0.9)) for k, ps in groups.items()
    }
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(data.shape[0], generator=g)
    at, times, tail = 0, [], []
    for step in range(steps):
        if at + batch > order.numel():
            order, at = torch.randperm(data.shape[0], generator=g), 0
        x = data[order[at : at + batch]].float().div_(255)
        at += batch
        start = time.perf_counter()
        out = loss(model(x), x)
        optimizer.zero_grad(set_to_none=True)
        out.total.backward()
        optimizer.step()
        for key, aux in (out.aux or {}).items():
            aux_optimizers[key].zero_grad(set_to_none=True)
            aux.backward()
            aux_optimizers[key].step()
        times.append(time.perf_counter() - start)
        if step >= steps - max(1, steps // 10):  # the last tenth of training
            tail.append([out.reconstruction.item(), out.kl.item()])
    recon, kl = (statistics.fmean(v) for v in zip(*tail, strict=True))
    return model, {"reconstruction": recon, "kl": kl, "ms_per_step": 1e3 * statistics.median(times)}


def metric_sizes(quick: bool) -> dict[str, dict[str, int]]:
    if quick:
        return {
            "beta_vae": {"n_train": 60, "n_eval": 30, "batch_size": 8},
            "factor_vae": {"n_train": 60, "n_eval": 30, "n_variance": 200, "batch_size": 8},
            "mig": {"n_train": 300},
            "sap": {"n_train": 300, "n_test": 100},
            "dci": {"n_train": 300, "n_test": 100},
        }
    return {
        "beta_vae": {"n_train": 2000, "n_eval": 1000},
        "factor_vae": {"n_train": 2000, "n_eval": 1000, "n_variance": 5000},
        "mig": {"n_train": 10000},
        "sap": {"n_train": 10000, "n_test": 5000},
        "dci": {"n_train": 10000, "n_test": 5000},
    }


def score(model: VAE, ds: TensorFactorDataset, quick: bool) -> dict[str, float]:
    rep, sizes = model_representation(model), metric_sizes(quick)
    d = dci(rep, ds, seed=0, **sizes["dci"])
    return {
        "beta_vae": beta_vae_score(rep, ds, seed=0, **sizes["beta_vae"]).eval_accuracy,
        "factor_vae": factor_vae_score(rep, ds, seed=0, **sizes["factor_vae"]).eval_accuracy,
        "mig": mig(rep, ds, seed=0, **sizes["mig"]).score,
        "sap": sap_score(rep, ds, seed=0, **sizes["sap"]).score,
        "dci_d": d.disentanglement,
        "dci_c": d.completeness,
        "dci_i": d.informativeness_test,
    }


@torch.no_grad()
def active_dims(model: VAE, data: Tensor) -> tuple[int, list[int]]:
    """Dimensions whose mean KL over 2000 images exceeds 0.1 nats, and all by KL, largest first."""
    x = data[:2000].float().div(255)
    out = model(x)
    per_dim = out.kl_per_dim.mean(0)  # type: ignore[union-attr]
    return int((per_dim > 0.1).sum()), per_dim.argsort(descending=True).tolist()


@torch.no_grad()
def traversal(model: VAE, ds: TensorFactorDataset, order: list[int], path: Path) -> None:
    """Rows: latent dimensions (largest KL first); columns: that code from -2.5 to 2.5, the
    others at the posterior mean of one image (a mid-sized heart near the centre)."""
    from torchvision.utils import save_image

    sizes = ds.factor_sizes
    middle = torch.tensor([[2, sizes[1] // 2, 0, sizes[3] // 2, sizes[4] // 2]])
    base = model.encode(ds.images_for(middle)).mean
    values = torch.linspace(-2.5, 2.5, 9)
    z = base.repeat(len(order) * values.numel(), 1)
    for row, k in enumerate(order):
        z[row * values.numel() : (row + 1) * values.numel(), k] = values
    pictures = model.decode(z).reshape(-1, *ds.image_shape)
    save_image(pictures, path, nrow=values.numel(), padding=2, pad_value=0.5)


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f}"


def table(results: dict[str, list[dict[str, float]]]) -> str:
    keys = ("beta_vae", "factor_vae", "mig", "sap", "dci_d", "dci_c", "dci_i")
    head = (
        "| objective | β-VAE score | FactorVAE score | MIG | SAP | DCI D | DCI C | DCI I "
        "| active dims | recon (nats) | KL (nats) | ms/step |"
    )
    lines = [head, "|" + " --- |" * 12]
    for name, runs in results.items():
        cells = [spread([r[k] for r in runs]) for k in keys]
        cells += [spread([r["active"] for r in runs])]
        cells += [f"{statistics.fmean(r[k] for r in runs):.1f}" for k in ("reconstruction", "kl")]
        cells += [f"{statistics.median(r['ms_per_step'] for r in runs):.0f}"]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny grid, 1 seed")
    parser.add_argument("--objectives", default=",".join(OBJECTIVES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from here (to extend a run)"
    )
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=Path, help="write disentangle_<objective>.png here")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args(argv)
    names = [n for n in args.objectives.split(",") if n]
    for n in names:
        if n not in OBJECTIVES:
            parser.error(f"unknown objective {n!r}; choose from {','.join(OBJECTIVES)}")
    torch.set_num_threads(args.threads)
    seeds, steps = (1, 4) if args.quick else (args.seeds, args.steps)
    ds = sprite_grid(args.quick)
    data = ds.images_at(torch.arange(len(ds)))
    print(f"{len(ds)} sprites {ds.factor_sizes}; {steps} steps of {args.batch_size}, {seeds} seeds")
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    first = 0 if args.quick else args.first_seed
    # round robin: drift in the machine's speed falls on all alike
    for seed in range(first, first + seeds):
        for name in names:
            start = time.perf_counter()
            model, figures = train(name, data, seed, steps, args.batch_size, args.lr, args.quick)
            active, order = active_dims(model, data)
            figures |= score(model, ds, args.quick) | {"active": active}
            results[name].append(figures)
            if args.images is not None and seed == first:
                args.images.mkdir(parents=True, exist_ok=True)
                traversal(model, ds, order, args.images / f"disentangle_{name}.png")
            took = time.perf_counter() - start
            print(f"  {name} seed {seed}: {json.dumps(figures)} ({took:.0f} s)", flush=True)
    print()
    print(table(results))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"images": str(args.images), "json": str(args.json)},
                    "results": results,
                },
                indent=1,
            )
        )
    if any(math.isnan(r["beta_vae"]) for runs in results.values() for r in runs):
        sys.exit("a metric came out NaN")


if __name__ == "__main__":
    main()
