#!/usr/bin/env bash
# Creates .venv with the Python side of the test suite: the independent references that
# check contimg's Measurement Sets (python-casacore, pyuvdata, astropy), NVIDIA's NVRTC
# library (nvidia-cuda-nvrtc-cu12, no GPU needed) that compiles the kernels in the tests, and
# its PTX assembler (ptxas, from nvidia-cuda-nvcc-cu12) that checks they fit their launches.
# Prints the interpreter's path. `cargo test` itself needs no Python; scripts/test.sh uses this.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
want="python-casacore==3.8.1 pyuvdata==3.2.8 astropy==8.0.2 numpy==2.3.5 nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86"
if ! .venv/bin/python -c "import casacore.tables, pyuvdata, astropy, nvidia.cuda_nvrtc, nvidia.cuda_nvcc" >/dev/null 2>&1; then
  .venv/bin/pip install -q --disable-pip-version-check $want >&2
fi
echo "$PWD/.venv/bin/python"
