#!/usr/bin/env bash
# The test suite: installs what is missing, then runs every test (unit, integration,
# multi-rank under mpirun, Measurement Set export). Reference fixtures are committed; the
# MS export is also checked by independent tools (python-casacore, pyuvdata, WSClean) from
# a venv that scripts/python-env.sh makes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CONTIMG_MS_PYTHON="$(bash scripts/python-env.sh)"
export CONTIMG_MS_PYTHON
cargo test --release --features ms
cargo bench --no-run --quiet
