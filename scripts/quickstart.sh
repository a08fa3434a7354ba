#!/usr/bin/env bash
# The main job: train the textbook's VAE (MLP 784-400-200, batches of 100, Adam 1e-3, the
# Bernoulli ELBO) with `torchvae train`, evaluating on the test set after each epoch.
#
# Works on a fresh clone with only Python 3.10+: makes .venv and installs torchvae into it.
# Data: MNIST, found on disk (./MNIST_DATA, $TORCHVAE_DATA_DIR) or downloaded; offline, it
# falls back to Fashion-MNIST from Debian's dataset-fashion-mnist package, with a note. Run
# as root where apt-get is available, it installs that package itself (saying so); else it
# prints the one command to run.
# Default: 10 epochs (the chapter's 30 are long on a CPU); output in runs/DATASET-TIME/.
# Extra arguments go to `torchvae train`, e.g.
#   bash scripts/quickstart.sh --epochs 1
#   bash scripts/quickstart.sh --epochs 30 --out-dir runs/textbook
#   bash scripts/quickstart.sh --resume last --out-dir runs/textbook --epochs 40
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DEBIAN_FASHION=${DEBIAN_FASHION:-/usr/share/datasets/fashion-mnist}
INSTALL_FASHION="apt-get install dataset-fashion-mnist"

# As root with apt-get: install Debian's Fashion-MNIST package (retrying after an update of
# the package lists, which a fresh machine may lack). Succeeds when the files are there.
install_fashion() {
    command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] || return 1
    echo "quickstart: MNIST is not on disk and could not be downloaded (offline?);" \
        "installing Fashion-MNIST with: $INSTALL_FASHION" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q dataset-fashion-mnist >&2 ||
        { apt-get update -q >&2 && apt-get install -y -q dataset-fashion-mnist >&2; } ||
        return 1
    [ -d "$DEBIAN_FASHION" ]
}

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
    else
        rmdir -p MNIST_DATA/MNIST/raw 2>/dev/null || true # left empty by the failed download
        if [ -d "$DEBIAN_FASHION" ] || install_fashion; then
            echo "quickstart: MNIST is not on disk and could not be downloaded (offline?);" \
                "training on Fashion-MNIST from $DEBIAN_FASHION instead." >&2
            data_args=(--dataset fashion-mnist --data-dir "$DEBIAN_FASHION")
        elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -ne 0 ]; then
            echo "quickstart: MNIST is not on disk and could not be downloaded (offline?)." \
                "Install Fashion-MNIST with this one command, then rerun:" >&2
            echo "    sudo $INSTALL_FASHION" >&2
            echo "(or put MNIST's four IDX files in ./MNIST_DATA, or pass --data-dir FOLDER)" >&2
            exit 1
        else
            if command -v apt-get >/dev/null 2>&1; then
                echo "quickstart: '$INSTALL_FASHION' failed (its output is above)." >&2
            fi
            echo "quickstart: MNIST is not on disk and could not be downloaded (offline?)." \
                "Put its four IDX files in ./MNIST_DATA (or pass --data-dir FOLDER) and" \
                "rerun; see docs/howto/offline-data.md." >&2
            exit 1
        fi
    fi
    ;;
esac

exec .venv/bin/torchvae train "${data_args[@]}" "$@"
