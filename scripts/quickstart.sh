#!/usr/bin/env bash
# The main job: train the textbook's VAE (MLP 784-400-200, batches of 100, Adam 1e-3, the
# Bernoulli ELBO) with `torchvae train`, evaluating on the test set after each epoch.
#
# Works on a fresh clone with only Python 3.10+: makes .venv and installs torchvae into it.
# Data: MNIST, found on disk (./MNIST_DATA, $TORCHVAE_DATA_DIR) or downloaded; offline, it
# falls back to Fashion-MNIST from Debian's dataset-fashion-mnist package, with a note.
# Default: 10 epochs (the chapter's 30 are long on a CPU); output in runs/DATASET-TIME/.
# Extra arguments go to `torchvae train`, e.g.
#   bash scripts/quickstart.sh --epochs 1
#   bash scripts/quickstart.sh --epochs 30 --out-dir runs/textbook
#   bash scripts/quickstart.sh --resume last --out-dir runs/textbook --epochs 40
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEBIAN_FASHION=/usr/share/datasets/fashion-mnist

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q -e .

data_args=()
case " $* " in
*" --dataset"* | *" --data-dir"* | *" --resume"*) ;; # the user chose the data, or resumes
*)
    if .venv/bin/python -c '
from torchvae.data import load_dataset
for train in (True, False):
    load_dataset("mnist", train=train, download=True)
' >/dev/null 2>&1; then
        data_args=(--dataset mnist --download)
    elif [ -d "$DEBIAN_FASHION" ]; then
        rmdir -p MNIST_DATA/MNIST/raw 2>/dev/null || true # left empty by the failed download
        echo "quickstart: MNIST is not on disk and could not be downloaded (offline?);" \
            "training on Fashion-MNIST from $DEBIAN_FASHION instead." >&2
        data_args=(--dataset fashion-mnist --data-dir "$DEBIAN_FASHION")
    else
        rmdir -p MNIST_DATA/MNIST/raw 2>/dev/null || true
        echo "quickstart: MNIST is not on disk and could not be downloaded (offline?)." \
            "Put the four IDX files in ./MNIST_DATA (or pass --data-dir FOLDER), or install" \
            "Fashion-MNIST (sudo apt-get install dataset-fashion-mnist) and rerun." >&2
        exit 1
    fi
    ;;
esac

exec .venv/bin/torchvae train "${data_args[@]}" "$@"
