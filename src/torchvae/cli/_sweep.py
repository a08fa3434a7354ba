"""``torchvae sweep``: a grid over the train flags, trained as one stacked run.

Each member of the grid gets its own run folder under ``--out-dir`` (``config.json``,
``checkpoints/``, ``tensorboard/``, ``model.pt``, ``samples.png``) that ``torchvae eval``
and ``torchvae sample`` read like a ``torchvae train`` run's; ``sweep.json`` lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..data.mnist import mnist_loaders
from ..io._lock import hold_folder
from ..io.serialization import model_config
from ..io.serialization import save_model as _save_model
from ..training.sweep import Sweep, SweepMember
from ._parser import DEFAULTS, CLIError
from ._runs import build_model, resolve_device, save_grid_for, write_json
from ._train import settings_of

__all__ = ["GRID_KEYS", "parse_grid", "sweep_command"]

# What may differ between the members of one sweep: the rest is the shared architecture,
# data and batch, which lockstep training needs.
GRID_KEYS = {"seed": int, "beta": float, "lr": float, "free_bits": float, "warmup_epochs": int}


def parse_grid(items: list[str] | None) -> dict[str, list[Any]]:
    """``["beta=0.5,1", "seed=0,1"]`` -> ``{"beta": [0.5, 1.0], "seed": [0, 1]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        name = key.strip().lstrip("-").replace("-", "_")
        if not sep or not values.strip():
            raise CLIError(f"--grid {item!r}: write KEY=V1,V2,... (e.g. --grid beta=0.5,1,2)")
        if name not in GRID_KEYS:
            shared = "a known flag" if name not in DEFAULTS else "shared by all members"
            raise CLIError(
                f"--grid {key}: {shared}; a sweep's members share the architecture, data "
                f"and batch size, and may differ in {', '.join(sorted(GRID_KEYS))} only"
            )
        if name in grid:
            raise CLIError(f"--grid {key} is given twice; list all its values in one --grid")
        kind = GRID_KEYS[name]
        try:
            parsed = [kind(v.strip()) for v in values.split(",")]
        except ValueError:
            raise CLIError(f"--grid {item!r}: values must be {kind.__name__}s") from None
        if any(v < 0 for v in parsed) or (name == "lr" and any(v == 0 for v in parsed)):
            raise CLIError(f"--grid {item!r}: values must be >= 0 (lr > 0)")
        if len(set(parsed)) != len(parsed):
            raise CLIError(f"--grid {item!r} repeats a value")
        grid[name] = parsed
    if not grid:
        raise CLIError("give at least one --grid KEY=V1,V2,... (e.g. --grid beta=0.5,1,2)")
    return grid


def _name(point: dict[str, Any]) -> str:
    return "_".join(f"{k.replace('_', '-')}-{v:g}" for k, v in point.items())


def _members(base: dict[str, Any], grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]
    return [{"name": _name(p), "settings": {**base, **p}} for p in points]


def sweep_command(args: argparse.Namespace) -> None:
    out_dir: Path = args.out_dir
    with contextlib.ExitStack() as stack:
        if out_dir.is_dir():
            stack.enter_context(hold_folder(out_dir, "--out-dir"))
        index = out_dir / "sweep.json"
        if args.resume:
            if not index.is_file():
                raise CLIError(f"--resume: {index} does not exist (no sweep to continue)")
            saved = json.loads(index.read_text())
            if args.grid and parse_grid(args.grid) != saved["grid"]:
                raise CLIError("--grid differs from the resumed sweep's; omit it on --resume")
            grid, base = saved["grid"], settings_of(args, saved["settings"])
        else:
            if index.is_file():
                raise CLIError(
                    f"{out_dir} already holds a sweep; continue it with --resume --out-dir "
                    f"{out_dir}, or choose another --out-dir"
                )
            grid, base = parse_grid(args.grid), settings_of(args, None)
            for key in grid:  # a grid key given as a flag too would be ambiguous
                if getattr(args, key) is not None:
                    flag = "--" + key.replace("_", "-")
                    raise CLIError(f"{flag} and --grid {key.replace('_', '-')}=... both given")

        def claim() -> None:  # once the sweep is known to be possible
            if not out_dir.is_dir():
                out_dir.mkdir(parents=True)
                stack.enter_context(hold_folder(out_dir, "--out-dir"))

        _sweep(args, out_dir, grid, base, claim)


def _loaders(args: argparse.Namespace, members: list[dict[str, Any]], device: torch.device) -> Any:
    base = members[0]["settings"]
    seeds = sorted({m["settings"]["seed"] for m in members})
    if base["binarize"] != "none" and len(seeds) > 1:
        raise CLIError(
            f"--binarize {base['binarize']} with a grid over seed: the members' test sets would "
            f"differ (they are binarized from the seed); sweep one seed at a time"
        )
    train, test = mnist_loaders(
        root=args.data_dir,
        dataset=base["dataset"],
        batch_size=base["batch_size"],
        flatten=base["model"] == "mlp",
        binarize=base["binarize"],
        seed=seeds[0],
        download=args.download,
        device=device,
        max_batches=args.max_batches,
    )
    by_seed = {seeds[0]: train}
    for seed in seeds[1:]:  # the same images, another order: a shallow copy
        by_seed[seed] = copy.copy(train)
        by_seed[seed].seed = seed
    return [by_seed[m["settings"]["seed"]] for m in members], test


def _sweep(
    args: argparse.Namespace,
    out_dir: Path,
    grid: dict[str, list[Any]],
    base: dict[str, Any],
    claim: Callable[[], None],
) -> None:
    members = _members(base, grid)
    device = resolve_device(args.device)
    trains, test = _loaders(args, members, device)
    image_shape = [1, *trains[0].images.shape[1:]]
    models, specs, runs = [], [], []
    for m in members:
        s = m["settings"]
        torch.manual_seed(s["seed"])  # the initial weights follow the member's seed
        model = build_model(s, image_shape)
        run = {"settings": s, "image_shape": image_shape, "model": model_config(model)}
        folder = out_dir / m["name"]
        models.append(model)
        runs.append((folder, run))
        specs.append(
            SweepMember(
                seed=s["seed"],
                beta=s["beta"],
                lr=s["lr"],
                free_bits=s["free_bits"],
                warmup_steps=s["warmup_epochs"] * len(trains[0]),
                folder=folder,
                info=run,
            )
        )
    try:
        sweep = Sweep(models, specs, batch_size=base["batch_size"], device=device)
    except ValueError as e:
        raise CLIError(f"cannot sweep this model: {e}") from e
    claim()
    for folder, run in runs:
        folder.mkdir(exist_ok=True)
        write_json(folder / "config.json", run)
    write_json(
        out_dir / "sweep.json",
        {"grid": grid, "settings": base, "members": [m["name"] for m in members]},
    )
    what = "resuming" if args.resume else "training"
    print(f"{what} {len(members)} models in one sweep ({device}) into {out_dir}")
    sweep.fit(trains, test, epochs=args.epochs, resume=args.resume)
    results = []
    for i, m in enumerate(members):
        s, folder = m["settings"], out_dir / m["name"]
        model = sweep.model(i)
        save_grid_for(model, s, image_shape, folder / "samples.png")
        metadata = {
            "dataset": s["dataset"],
            "image_shape": image_shape,
            "binarize": s["binarize"],
            "seed": s["seed"],
            "epochs": sweep.epochs_done[i],
            "settings": s,
        }
        _save_model(model, folder / "model.pt", metadata=metadata)
        last = sweep.metrics[i]
        results.append({"name": m["name"], **{k: v for k, v in last.items() if k != "time"}})
        print(
            f"{m['name']}: test -ELBO {last.get('val_loss', float('nan')):.2f} nats after "
            f"{sweep.epochs_done[i]} epochs -> {folder / 'model.pt'}"
        )
    write_json(out_dir / "results.json", results)
