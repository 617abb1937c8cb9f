#!/usr/bin/env bash
# Create (or reuse) the isolated KerasHub environment used by bench/keras_hub_mlm.py (the MaskedLM reference of
# bench/cpu_side_by_side.py). Safe to run repeatedly.
#
# Usage: bash bench/setup_keras_hub_env.sh
# Only the benchmark uses this; tests and CI never run it. keras-hub is a benchmark-only dependency: it never goes
# into the project's own environment or its requirements files.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_DIR="${KERAS_HUB_VENV:-${SCRIPT_DIR}/.venv-keras-hub}"
PYTHON="${PYTHON:-python3}"

# The same TensorFlow and Keras as the project's environment, so the comparison is of the two models, not of
# two framework versions (tensorflow-cpu: the same build without the CUDA wheels).
TF_SPEC="tensorflow-cpu==2.21.0"
KERAS_SPEC="keras==3.15.1"
KERAS_HUB_SPEC="keras-hub==0.32.0"
TF_TEXT_SPEC="tensorflow-text==2.21.1"

if [ ! -x "${VENV_DIR}/bin/python" ]; then
    echo "Creating virtual environment at ${VENV_DIR}"
    "${PYTHON}" -m venv "${VENV_DIR}"
fi

VPY="${VENV_DIR}/bin/python"

if "${VPY}" - <<'PY' 2>/dev/null
import importlib.metadata as md
assert md.version("keras") == "3.15.1"
assert md.version("keras-hub") == "0.32.0"
assert md.version("tensorflow-cpu") == "2.21.0"
PY
then
    echo "Environment already complete; skipping install."
else
    "${VPY}" -m pip install -q --upgrade pip
    # keras pinned in the same command, so keras-hub's requirement cannot move it.
    "${VPY}" -m pip install -q "${TF_SPEC}" "${TF_TEXT_SPEC}" "${KERAS_SPEC}" "${KERAS_HUB_SPEC}"
fi

KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=3 "${VPY}" - <<'PY'
import sys
import keras, keras_hub, tensorflow as tf
print(f"python      {sys.version.split()[0]}")
print(f"tensorflow  {tf.__version__}")
print(f"keras       {keras.__version__}")
print(f"keras_hub   {keras_hub.__version__}")
PY
echo "venv python: ${VPY}"
