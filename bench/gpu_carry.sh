#!/usr/bin/env bash
# Build bench/gpu_carry/: what bench/gpu.py needs on the GPU machine beyond the repository and that machine's own
# packages (Python 3.12 with JAX, PyTorch, torchvision, h5py, ml-dtypes, rich... but no Keras, no lightly, and no
# network): the wheels of keras (+ namex, optree) and lightly, and a CIFAR-10 subset as .npz. About 20 MB in all
# (the device machine takes 64 MiB per call). Then print the one command to run there.
#
# Usage: bash bench/gpu_carry.sh            # then run the printed command on the GPU machine, carrying bench/gpu_carry
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "${SCRIPT_DIR}")"
OUT_DIR="${SCRIPT_DIR}/gpu_carry"
DATA="${CIFAR10_NPZ:-$(dirname "${ROOT}")/shared/data/cifar10/cifar10.npz}"
PYTHON="${PYTHON:-${ROOT}/.venv/bin/python}"
IMAGES="${GPU_CARRY_IMAGES:-5120}"  # 10 batches of 512 (one execution of 10 steps)

mkdir -p "${OUT_DIR}"
rm -f "${OUT_DIR}"/*.whl
# The GPU machine's python3 is CPython 3.12 on x86-64; optree is the one compiled wheel.
"${PYTHON}" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "${OUT_DIR}" \
    keras==3.15.1 namex==0.1.0 optree==0.20.0 lightly==1.6.0

"${PYTHON}" - "${DATA}" "${OUT_DIR}/cifar10_subset.npz" "${IMAGES}" <<'PY'
import sys

import numpy as np

source, target, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with np.load(source) as data:
    images = data["x_train"][:count]
if images.dtype != np.uint8 or images.shape != (count, 32, 32, 3):
    raise SystemExit(f"{source}: expected {count} uint8 32x32x3 training images, got {images.dtype} {images.shape}")
np.savez(target, x_train=images)
PY

ls -l "${OUT_DIR}"
SIZE=$(du -sm "${OUT_DIR}" | cut -f1)
if [ "${SIZE}" -gt 60 ]; then
    echo "bench/gpu_carry is ${SIZE} MB: over what one device call carries (64 MiB with the repository)" >&2
    exit 1
fi
cat <<'CMD'

Run on the GPU machine (carry: ["bench/gpu_carry"]; about 8 minutes; results in $OUT/gpu_<device>.json, copy it to
bench/results/):

python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site bench/gpu_carry/*.whl && PYTHONPATH=/tmp/site:. KERAS_BACKEND=jax PYTHONUNBUFFERED=1 timeout 590 python3 bench/gpu.py --data bench/gpu_carry/cifar10_subset.npz --out $OUT
CMD
