#!/usr/bin/env python3
"""What ``import torchvae`` costs on top of ``import torch``: time and modules.

Each measurement is a fresh interpreter (so nothing is cached in ``sys.modules``); the two
kinds alternate across repeats. A module's cost is the wall time of ``import torch``
followed by ``import <module>`` minus that of ``import torch`` alone (medians), and the
modules it adds to ``sys.modules``. Heavy optional dependencies (tensorboardX,
torchvision, matplotlib; Lightning, MLflow, W&B, huggingface_hub) must not be imported
until used: the script exits with status 1 if any of the measured modules imports one.

Example:
    python benchmarks/bench_import.py --quick
    python benchmarks/bench_import.py --repeats 7 --importtime
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import _bench as B

HEAVY = ("tensorboardX", "torchvision", "matplotlib", "pythae", "PIL", "tensorboard")
MUST_NOT = ("tensorboardX", "torchvision", "matplotlib")
# The integrations' libraries (optional extras): imported only by torchvae.lightning,
# torchvae.hub (when a Hub method is called) and the trackers' callbacks when fit starts.
MUST_NOT += ("lightning", "pytorch_lightning", "mlflow", "wandb", "huggingface_hub")
MODULES = ("torchvae", "torchvae.training", "torchvae.data", "torchvae.callbacks")

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
base = set(sys.modules)
target = sys.argv[1]
if target:
    __import__(target)
t2 = time.perf_counter()
print(json.dumps({"torch_s": t1 - t0, "extra_s": t2 - t1,
                  "added": sorted(set(sys.modules) - base)}))
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(B.REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def measure(target: str) -> dict[str, object]:
    """One fresh interpreter: import torch, then ``target`` (nothing when empty)."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, target],
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def importtime(target: str, top: int) -> list[tuple[int, str]]:
    """The ``top`` costliest modules (self time, us) that ``target`` adds beyond torch."""
    code = f"import torch; import {target}"
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, env=_env()
    )
    rows, seen_torch = [], False
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].startswith("import time:"):
            continue
        name = parts[2].strip()
        if name == "torch":
            seen_torch = True
            continue
        if seen_torch and parts[0].split(":")[1].strip().isdigit():
            rows.append((int(parts[0].split(":")[1]), name))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="2 repeats, torchvae only")
    p.add_argument("--repeats", type=int, default=None, help="runs of each (default 5)")
    p.add_argument("--modules", default=None,
                   help=f"comma-separated modules (default {','.join(MODULES)})")  # fmt: skip
    p.add_argument("--importtime", action="store_true",
                   help="list the costliest imports each module adds (-X importtime)")  # fmt: skip
    args = p.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    if args.modules:
        modules = args.modules.split(",")
    else:
        modules = ["torchvae"] if args.quick else list(MODULES)
    targets = ["", *modules]
    runs: dict[str, list[dict[str, object]]] = {t: [] for t in targets}
    for r in range(repeats):
        for t in targets if r % 2 == 0 else targets[::-1]:
            runs[t].append(measure(t))
    torch_s = B.median([float(x["torch_s"]) for t in targets for x in runs[t]])  # type: ignore[arg-type]
    print(f"python {sys.version.split()[0]}, {repeats} fresh interpreters each (medians)")
    print(f"import torch: {torch_s:.3f} s\n")
    rows, bad = [], False
    for m in modules:
        extra = B.median([float(x["extra_s"]) for x in runs[m]])  # type: ignore[arg-type]
        added = sorted({a for x in runs[m] for a in x["added"]})  # type: ignore[attr-defined]
        roots = sorted({a.split(".")[0] for a in added} - {"torchvae"})
        heavy = [h for h in HEAVY if h in roots]
        bad |= any(h in MUST_NOT for h in heavy)
        rows.append(
            [m, f"{extra:.3f}", f"{100 * extra / torch_s:.1f}%", str(len(added)),
             ", ".join(roots) or "-", ", ".join(heavy) or "none"]
        )  # fmt: skip
    B.print_table(
        ["import", "s beyond torch", "% of torch", "modules added", "packages", "heavy"], rows
    )
    if args.importtime:
        for m in modules:
            print(f"\ncostliest imports of {m} beyond torch (self time, ms):")
            for us, name in importtime(m, 8):
                print(f"  {us / 1000:7.1f}  {name}")
    print()
    for m in MUST_NOT:
        culprits = [r[0] for r in rows if m in r[5]]
        print(f"{'NOT met' if culprits else 'met':7s} {m} not imported" +
              (f" (imported by {', '.join(culprits)})" if culprits else ""))  # fmt: skip
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
