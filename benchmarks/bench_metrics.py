"""Disentanglement metrics: torchvae.metrics against disent's, on the same codes, side by side.

Both libraries score the same representations of the same factor space, dSprites' (shape
3, scale 6, rotation 40, x 32, y 32): each "image" is its own factor tuple, so that a
representation can be an exact function of the factors and the time is the metric's own
(with each library's way of drawing and batching its samples). Three representations:

- ``factors``: the 5 factor classes themselves (the best codes there are);
- ``noise``: 10 standard normal codes, unrelated to the factors;
- ``mixed``: 10 codes, 5 of them each a factor plus half of the next one (normalized to
  [0, 1]) plus a little noise, 5 of them noise.

Every (metric, representation) is computed for ``--repeats`` seeds by each library, each
library in its own process with the same thread count; the table gives the mean and
standard deviation over the seeds (the estimators' own noise: their samples are random)
and the median seconds per call. disent has no β-VAE score, so torchvae's is shown alone;
DCI is compared with torchvae's ``estimator="gbt"`` (the same scikit-learn trees as
disent) and torchvae's default Lasso is shown beside it.

disent pins old versions of its dependencies: keep it in a separate venv (see
benchmarks/README.md) and pass ``--disent-python``, or put it at ``.venv-disent``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import _bench as B
import torch
from torch import Tensor

SIZES = (3, 6, 40, 32, 32)
NAMES = ("shape", "scale", "rotation", "x", "y")
REPRESENTATIONS = ("factors", "noise", "mixed")
METRICS = ("beta_vae", "factor_vae", "mig", "sap", "dci_gbt", "dci_lasso")


def settings(quick: bool) -> dict[str, dict[str, int]]:
    """Sample sizes: disentanglement_lib's defaults (DCI with trees: disent's fast 1000/500)."""
    if quick:
        return {
            "beta_vae": {"n_train": 100, "n_eval": 50},
            "factor_vae": {"n_train": 100, "n_eval": 50, "n_variance": 500},
            "mig": {"n_train": 500},
            "sap": {"n_train": 500, "n_test": 200},
            "dci_gbt": {"n_train": 200, "n_test": 100},
            "dci_lasso": {"n_train": 500, "n_test": 200},
        }
    return {
        "beta_vae": {"n_train": 10000, "n_eval": 5000},
        "factor_vae": {"n_train": 10000, "n_eval": 5000, "n_variance": 10000},
        "mig": {"n_train": 10000},
        "sap": {"n_train": 10000, "n_test": 5000},
        "dci_gbt": {"n_train": 1000, "n_test": 500},
        "dci_lasso": {"n_train": 10000, "n_test": 5000},
    }


def representation(name: str, seed: int) -> Any:
    """Factor tuples ``(n, 5)`` (as floats) -> codes; noise from its own seeded generator."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    scale = torch.tensor([s - 1 for s in SIZES], dtype=torch.float64)

    def rep(f: Tensor) -> Tensor:
        f = f.reshape(f.shape[0], -1).double()
        if name == "factors":
            return f
        noise = torch.randn(f.shape[0], 10, generator=gen, dtype=torch.float64)
        if name == "noise":
            return noise
        u = f / scale
        mixed = u + 0.5 * torch.roll(u, -1, dims=1) + 0.05 * noise[:, :5]
        return torch.cat([mixed, noise[:, 5:]], dim=1)

    return rep


# ----------------------------------------------------------------------------- children


def _torchvae_data() -> Any:
    from torchvae import TensorFactorDataset

    grid = torch.cartesian_prod(*(torch.arange(s) for s in SIZES))
    return TensorFactorDataset(grid.to(torch.uint8), grid, NAMES)


def _torchvae_case(
    metric: str, rep_name: str, seed: int, sizes: dict[str, int], data: Any
) -> dict[str, float]:
    from torchvae.metrics import beta_vae_score, dci, factor_vae_score, mig, sap_score

    inner = representation(rep_name, seed)

    def rep(x: Tensor) -> Tensor:
        return inner((x * 255).round())

    if metric == "beta_vae":
        return {"accuracy": beta_vae_score(rep, data, seed=seed, **sizes).eval_accuracy}
    if metric == "factor_vae":  # disent does not prune; neither does this comparison
        score = factor_vae_score(rep, data, seed=seed, prune_threshold=0.0, **sizes)
        return {"accuracy": score.eval_accuracy}
    if metric == "mig":
        return {"score": mig(rep, data, seed=seed, **sizes).score}
    if metric == "sap":
        return {"score": sap_score(rep, data, seed=seed, **sizes).score}
    d = dci(rep, data, seed=seed, estimator=metric[4:], **sizes)  # type: ignore[arg-type]
    return {"D": d.disentanglement, "C": d.completeness, "I": d.informativeness_test}


def _disent_case(
    metric: str, rep_name: str, seed: int, sizes: dict[str, int], data: Any
) -> dict[str, float]:
    import numpy as np
    from disent.metrics import metric_dci, metric_factor_vae, metric_mig, metric_sap

    np.random.seed(seed)
    inner = representation(rep_name, seed)

    def rep(x: Any) -> Any:
        return inner(torch.as_tensor(x)).numpy()

    if metric == "factor_vae":
        out = metric_factor_vae(
            data,
            rep,
            num_train=sizes["n_train"],
            num_eval=sizes["n_eval"],
            num_variance_estimate=sizes["n_variance"],
        )
        return {"accuracy": float(out["factor_vae.eval_accuracy"])}
    if metric == "mig":
        out = metric_mig(data, rep, num_train=sizes["n_train"])
        return {"score": float(out["mig.discrete_score"])}
    if metric == "sap":
        out = metric_sap(data, rep, num_train=sizes["n_train"], num_test=sizes["n_test"])
        return {"score": float(out["sap.score"])}
    out = metric_dci(data, rep, num_train=sizes["n_train"], num_test=sizes["n_test"])
    return {
        "D": float(out["dci.disentanglement"]),
        "C": float(out["dci.completeness"]),
        "I": float(out["dci.informativeness_test"]),
    }


def _disent_data() -> Any:
    import numpy as np
    from disent.dataset import DisentDataset
    from disent.dataset.data import ArrayGroundTruthData

    grid = np.stack(np.meshgrid(*(np.arange(s) for s in SIZES), indexing="ij"), axis=-1)
    array = grid.reshape(-1, 1, 1, len(SIZES)).astype(np.float32)
    return DisentDataset(ArrayGroundTruthData(array, NAMES, SIZES))


def _child(args: argparse.Namespace) -> None:
    B.set_threads(args.threads)
    warnings.filterwarnings("ignore")
    B.ensure_torchvae_importable()
    cases = json.loads(args.cases)
    data = _disent_data() if args.child == "disent" else _torchvae_data()
    case = _disent_case if args.child == "disent" else _torchvae_case
    results = []
    for metric, rep_name, seed, sizes in cases:
        t = time.perf_counter()
        values = case(metric, rep_name, seed, sizes, data)
        results.append({"metric": metric, "rep": rep_name, "seed": seed, "values": values,
                        "seconds": time.perf_counter() - t})  # fmt: skip
        print(json.dumps(results[-1]), flush=True)
    B.write_result(args.result_file, {"results": results})


def _run(python: str, kind: str, cases: list[Any], threads: int, out: Path) -> list[Any] | str:
    out.unlink(missing_ok=True)
    cmd = [python, str(Path(__file__).resolve()), "--child", kind, "--threads", str(threads),
           "--cases", json.dumps(cases), "--result-file", str(out)]  # fmt: skip
    env = B.child_env(threads)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(B.REPO / "src"), str(Path(__file__).resolve().parent), env.get("PYTHONPATH", "")]
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0 or not out.exists():
        tail = proc.stderr.strip().splitlines()[-3:]
        return f"exit {proc.returncode}: {' | '.join(tail)}"
    results: list[Any] = json.loads(out.read_text())["results"]
    return results


def disent_python(explicit: str | None) -> str | None:
    """An interpreter that can import disent: ``explicit``, this one, or .venv-disent's."""
    candidates = [explicit] if explicit else []
    if importlib.util.find_spec("disent") is not None:
        candidates.append(sys.executable)
    candidates.append(str(B.REPO / ".venv-disent" / "bin" / "python"))
    for python in candidates:
        if python and Path(python).exists():
            ok = subprocess.run([python, "-c", "import disent.metrics"], capture_output=True)
            if ok.returncode == 0:
                return python
    return None


def _stats(rows: list[dict[str, Any]], key: str) -> tuple[float, float, float, int]:
    values = [r["values"][key] for r in rows]
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return statistics.mean(values), sd, statistics.median(r["seconds"] for r in rows), len(values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="smoke run: tiny samples, one seed")
    p.add_argument("--repeats", type=int, default=None, help="seeds per case (3; quick 1)")
    p.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset")
    p.add_argument("--reps", default=",".join(REPRESENTATIONS), help="representations")
    p.add_argument("--threads", type=int, default=1,
                   help="intra-op threads in both processes (1)")  # fmt: skip
    p.add_argument("--disent-python", default=None, help="an interpreter with disent")
    p.add_argument("--skip-disent", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="write every measurement here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--cases", help=argparse.SUPPRESS)
    p.add_argument("--result-file", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    repeats = args.repeats or (1 if args.quick else 3)
    sizes = settings(args.quick)
    metrics = [m for m in args.metrics.split(",") if m]
    reps = [r for r in args.reps.split(",") if r]
    if unknown := sorted(set(metrics) - set(METRICS)) + sorted(set(reps) - set(REPRESENTATIONS)):
        p.error(f"unknown metrics or representations: {unknown}")
    if args.quick and "dci_gbt" in metrics and args.metrics == ",".join(METRICS):
        metrics.remove("dci_gbt")  # a minute even on tiny samples, and needs scikit-learn
    cases = [[m, r, s, sizes[m]] for m in metrics for r in reps for s in range(repeats)]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {repeats} seed(s) per case")
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-metrics-{os.getpid()}.json"
    ours = _run(sys.executable, "torchvae", cases, args.threads, out)
    if isinstance(ours, str):
        print(f"torchvae failed: {ours}")
        return 1
    theirs: list[Any] = []
    py = None if args.skip_disent else disent_python(args.disent_python)
    if py is None and not args.skip_disent:
        print("skipped disent: not importable (see benchmarks/README.md, --disent-python)")
    if py is not None:
        wanted = [c for c in cases if c[0] not in ("beta_vae", "dci_lasso")]
        got = _run(py, "disent", wanted, args.threads, out)
        if isinstance(got, str):
            print(f"disent failed: {got}")
            return 1
        theirs = got
    out.unlink(missing_ok=True)
    rows = []
    for m in metrics:
        for r in reps:
            mine = [x for x in ours if x["metric"] == m and x["rep"] == r]
            other = [x for x in theirs if x["metric"] == m and x["rep"] == r]
            for key in mine[0]["values"]:
                rows.append(_row(m, r, key, mine, other))
    print()
    B.print_table(
        ["metric", "codes", "torchvae (mean ± sd)", "s", "disent (mean ± sd)", "s",
         "difference (s.e.)", "disent s / torchvae s"],
        rows,
    )  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"torchvae": ours, "disent": theirs}, indent=1))
    return 0


def _row(m: str, r: str, key: str, mine: list[Any], other: list[Any]) -> list[str]:
    mean, sd, sec, n = _stats(mine, key)
    row = [f"{m} {key}", r, f"{mean:.3f} ± {B.fmt(sd, '.3f')}", B.fmt(sec, ".2f")]
    if other:
        omean, osd, osec, _ = _stats(other, key)
        se = math.sqrt(((sd if n > 1 else 0) ** 2 + (osd if n > 1 else 0) ** 2) / n)
        row += [f"{omean:.3f} ± {B.fmt(osd, '.3f')}", B.fmt(osec, ".2f"),
                f"{mean - omean:+.3f} ({B.fmt(se, '.3f')})", B.fmt(osec / sec)]  # fmt: skip
    else:
        row += ["-", "-", "-", "-"]
    return row


if __name__ == "__main__":
    sys.exit(main())
