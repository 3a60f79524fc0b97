#!/usr/bin/env bash
# Opt-in: installs the peer tools that benches compare contimg against (not needed to build,
# test or run contimg), with everything scripts/setup.sh installs. Debian 12, as root or
# with sudo. Idempotent.
#   aoflagger  AOFlagger 3.x (benches/vs_aoflagger.sh)
set -euo pipefail
bash "$(dirname "$0")/setup.sh" aoflagger
aoflagger --version
