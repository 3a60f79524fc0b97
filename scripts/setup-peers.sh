#!/usr/bin/env bash
# Opt-in: installs the peer tools that benches compare contimg against (not needed to build,
# test or run contimg). Debian 12, as root or with sudo. Idempotent.
#   aoflagger  AOFlagger 3.x (benches/vs_aoflagger.sh)
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need=()
for p in aoflagger; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q \
    --no-install-recommends "${need[@]}"
fi
aoflagger --version
