#!/usr/bin/env bash
# envcheck's acceptance run on an NVIDIA GPU (see bench/gpu_acceptance.py for the steps).
#
#   bash bench/gpu_acceptance.sh MNIST_DIR [OUT_DIR] [--archive FILE] [--seeds 0,1,2] [--budget S]
#
# Needs a Python (python3, or $PYTHON) with a CUDA build of PyTorch, rich and numpy. Runs from
# this checkout without installing envcheck; no pixi, TensorFlow, platformdirs or network.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
    echo "gpu_acceptance: $python not found; set PYTHON to a Python with CUDA torch" >&2
    exit 1
fi
exec "$python" "$here/gpu_acceptance.py" "$@"
