#!/usr/bin/env bash
# Create (or reuse) the isolated PyTorch/lightly environment used by
# bench/lightly_throughput.py. Safe to run repeatedly.
#
# Usage: bash bench/setup_lightly_env.sh
# Only the benchmark uses this; tests and CI never run it.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV_DIR="${LIGHTLY_VENV:-${SCRIPT_DIR}/.venv-lightly}"
PYTHON="${PYTHON:-python3}"

# torch/torchvision pinned as a pair: other combinations fail to import
# torchvision on this machine.
TORCH_SPEC="torch==2.14.1"
TORCHVISION_SPEC="torchvision==0.29.1"
LIGHTLY_SPEC="lightly>=1.6,<1.7"

if [ ! -x "${VENV_DIR}/bin/python" ]; then
    echo "Creating virtual environment at ${VENV_DIR}"
    "${PYTHON}" -m venv "${VENV_DIR}"
fi

VPY="${VENV_DIR}/bin/python"

# Skip pip entirely when everything is already present and importable.
if "${VPY}" - "${TORCH_SPEC#torch==}" "${TORCHVISION_SPEC#torchvision==}" <<'PY' 2>/dev/null
import sys
import importlib.metadata as md
torch_v, tv_v = sys.argv[1], sys.argv[2]
assert md.version("torch").split("+")[0] == torch_v
assert md.version("torchvision").split("+")[0] == tv_v
assert md.version("lightly").startswith("1.6")
import numpy, torch, torchvision, lightly  # noqa: F401
PY
then
    echo "Environment already complete; skipping install."
else
    "${VPY}" -m pip install --upgrade pip
    "${VPY}" -m pip install "${TORCH_SPEC}" "${TORCHVISION_SPEC}"
    # Install lightly with the torch pair pinned so pip cannot swap them.
    "${VPY}" -m pip install "${LIGHTLY_SPEC}" numpy "${TORCH_SPEC}" "${TORCHVISION_SPEC}"
fi

"${VPY}" - <<'PY'
import sys
import numpy, torch, torchvision, lightly
print(f"python      {sys.version.split()[0]}")
print(f"numpy       {numpy.__version__}")
print(f"torch       {torch.__version__}")
print(f"torchvision {torchvision.__version__}")
print(f"lightly     {lightly.__version__}")
print(f"cuda avail  {torch.cuda.is_available()}")
PY
echo "venv python: ${VPY}"
