#!/usr/bin/env bash
# Installs every system package contimg needs on a fresh Debian 12 machine (run as root,
# or with sudo available), plus any package named as an argument (scripts/setup-peers.sh).
# Idempotent: re-running is cheap.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need=()
# OpenMPI, HDF5, cfitsio and libclang (bindgen) build contimg; g++ builds the bundled
# casacore of the `ms` feature; python3-venv and wsclean serve the Measurement Set checks;
# Slurm and munge run the test suite's real single-node Slurm (tests/slurm).
for p in libopenmpi-dev openmpi-bin libclang-dev libhdf5-dev libcfitsio-dev pkg-config g++ \
         python3-venv wsclean slurm-wlm slurmctld slurmd slurm-client munge "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends "${need[@]}"
fi
