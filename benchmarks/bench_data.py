#!/usr/bin/env python3
"""The data path's throughput on a folder of 32x32 colour PNGs: torchvae against torchvision.

The script writes ``--images`` random 32x32 RGB PNGs into ten class folders (once, in a
temporary folder, or in ``--folder`` to keep them), then measures images/s for one epoch
of shuffled batches (``--batch-size``, 128) in each case:

- ``torchvision-wN``: ``ImageFolder(root, transform=ToTensor())`` with
  ``DataLoader(batch_size, shuffle=True, num_workers=N)``, the usual way;
- ``torchvae-stream-wN``: ``load_image_data("folder:...", storage="stream")`` and its
  ``StreamLoader`` with ``N`` workers (decoded on the fly, ``uint8`` collated, each batch
  made float in the main process);
- ``torchvae-memory``: the same images read once into one ``uint8`` tensor and batched by
  the ``TensorLoader`` (the default where the data fits);
- ``torchvae-memory-load-wN``: the one-time read into memory (reported in images/s too;
  the first epoch in memory costs this plus one ``torchvae-memory`` epoch).

Every case yields the same float32 batches in [0, 1] (``x / 255``), which the script
checks on the first images before timing. The cases run in one process, in round-robin
order (rotated each repeat), ``--repeats`` times; the table gives the median images/s and
the spread (min-max) over the repeats, and the ratio to torchvision with the same workers.
The main process uses one intra-op thread (``--threads``), as DataLoader workers do.

Example:
    python benchmarks/bench_data.py --quick
    python benchmarks/bench_data.py --images 10000 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import _bench as B
import numpy as np
import torch


def build_folder(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` random 32x32 RGB PNGs in ten class folders (kept if already there)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    for i in range(n):
        folder = root / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
            folder / f"{i:06d}.png"
        )
    marker.touch()
    return root


def epoch_rate(batches: Iterable[Any], n: int) -> float:
    """Images/s for one pass over ``batches`` (each batch's images are touched)."""
    seen = 0
    start = time.perf_counter()
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        seen += int(x.shape[0])
    elapsed = time.perf_counter() - start
    assert seen == n, f"an epoch gave {seen} images, expected {n}"
    return n / elapsed


def check_same_images(root: Path, n_check: int = 64) -> None:
    """torchvision's ImageFolder + ToTensor and torchvae's reader give the same tensors."""
    from torchvision import datasets, transforms

    from torchvae.data.images import load_image_data

    reference = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    data = load_image_data(f"folder:{root}", storage="stream", test_fraction=0)
    assert data.dataset is not None
    for i in range(0, len(reference), max(1, len(reference) // n_check)):
        x, y = reference[i]
        image, label = data.dataset[i]
        if not (torch.equal(x, image.float() / 255) and y == label):
            raise SystemExit(f"image {i}: torchvision and torchvae differ; nothing to compare")


def cases(
    root: Path, n: int, batch_size: int, workers: list[int]
) -> dict[str, Callable[[], float]]:
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from torchvae.data.images import load_image_data

    reference = datasets.ImageFolder(str(root), transform=transforms.ToTensor())
    stream = load_image_data(f"folder:{root}", storage="stream", test_fraction=0)
    memory = load_image_data(f"folder:{root}", storage="memory", test_fraction=0)
    memory_loader = memory.loader(batch_size, shuffle=True)
    out: dict[str, Callable[[], float]] = {}
    for w in workers:
        tv = DataLoader(reference, batch_size=batch_size, shuffle=True, num_workers=w)
        out[f"torchvision-w{w}"] = lambda tv=tv: epoch_rate(tv, n)
        ours = stream.loader(batch_size, shuffle=True, num_workers=w)
        out[f"torchvae-stream-w{w}"] = lambda ours=ours: epoch_rate(ours, n)
    out["torchvae-memory"] = lambda: epoch_rate(memory_loader, n)
    for w in workers:

        def load(w: int = w) -> float:
            start = time.perf_counter()
            load_image_data(f"folder:{root}", storage="memory", test_fraction=0, num_workers=w)
            return n / (time.perf_counter() - start)

        out[f"torchvae-memory-load-w{w}"] = load
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 256 images, one repeat")
    p.add_argument("--images", type=int, default=None, help="images in the folder (10000)")
    p.add_argument("--repeats", type=int, default=None, help="round-robin repeats (5)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", default="0,2", help="DataLoader worker counts, e.g. 0,2,4")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads of the main process (1: DataLoader workers use 1 too, and on a "
        "shared, loaded machine two threads make each small batch conversion wait on the other)",
    )
    p.add_argument("--folder", type=Path, default=None, help="where to write (and keep) the PNGs")
    args = p.parse_args(argv)
    n = args.images or (256 if args.quick else 10_000)
    repeats = args.repeats or (1 if args.quick else 5)
    workers = [int(w) for w in args.workers.split(",")]
    B.set_threads(args.threads)
    B.ensure_torchvae_importable()
    with tempfile.TemporaryDirectory() as tmp:
        root = build_folder(args.folder or Path(tmp) / "images", n)
        check_same_images(root)
        runs = cases(root, n, args.batch_size, workers)
        for run in runs.values():  # warm-up: imports, page cache
            run()
        rates: dict[str, list[float]] = {name: [] for name in runs}
        names = list(runs)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                rates[name].append(runs[name]())
    print(
        f"{n} random 32x32 RGB PNGs in 10 class folders, batch {args.batch_size}, "
        f"shuffled, {repeats} round-robin repeats; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    rows = []
    for name, values in rates.items():
        med = statistics.median(values)
        workers_of = name.rsplit("-w", 1)[-1] if "-w" in name else None
        ref = rates.get(f"torchvision-w{workers_of}") if workers_of else None
        ratio = (
            "-"
            if ref is None or name.startswith("torchvision")
            else (f"{med / statistics.median(ref):.1f}x")
        )
        rows.append([name, f"{med:.0f}", f"{min(values):.0f}-{max(values):.0f}", ratio])
    ref0 = rates.get(f"torchvision-w{workers[0]}")
    if ref0 is not None:
        memory = statistics.median(rates["torchvae-memory"])
        rows[names.index("torchvae-memory")][3] = (
            f"{memory / statistics.median(ref0):.1f}x (vs w{workers[0]})"
        )
    B.print_table(["case", "images/s (median)", "min-max", "vs torchvision"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
