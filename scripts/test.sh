#!/usr/bin/env bash
# The test suite: installs what is missing, then runs every test (unit, integration,
# multi-rank under mpirun). No Python is needed: reference fixtures are committed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cargo test --release
cargo bench --no-run --quiet
