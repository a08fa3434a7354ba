#!/usr/bin/env bash
# The whole test suite: lint, format, types, unit/property tests, doctests, docs build.
# Works on a fresh clone with only Python 3.10+: it makes .venv and installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Every optional extra too: their tests run wherever the extra is installed.
.venv/bin/python -m pip install -q -e ".[dev,docs,flows,factors,metrics,config,trackers,lightning,hub]"
set -x
.venv/bin/ruff check src tests examples benchmarks
.venv/bin/ruff format --check src tests examples benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest --doctest-modules src/torchvae tests "$@"
# The benchmarks' smoke runs, so that none of them can rot (they assert no timings).
.venv/bin/python benchmarks/bench_import.py --quick
.venv/bin/python benchmarks/bench_train.py --quick
.venv/bin/python benchmarks/bench_nll.py --quick --skip-pythae
.venv/bin/python benchmarks/bench_priors.py --quick --skip-pythae
.venv/bin/python benchmarks/bench_step.py --quick
.venv/bin/python benchmarks/bench_data.py --quick
.venv/bin/python benchmarks/bench_bpd.py --quick
.venv/bin/python benchmarks/bench_metrics.py --quick --skip-disent
.venv/bin/python benchmarks/bench_disentangle.py --quick
.venv/bin/python benchmarks/bench_families.py --quick --skip-pythae --gemm-floor --floor-steps 2
.venv/bin/python benchmarks/bench_vq.py --quick --skip-pythae --floor --floor-steps 2
.venv/bin/python benchmarks/bench_bound.py --quick
.venv/bin/python benchmarks/bench_default.py --quick
.venv/bin/python benchmarks/bench_sweep.py --quick
