#!/usr/bin/env bash
# Installs every build and runtime dependency of linearpatch from Debian 12
# packages. OpenBLAS matters: without it Debian's libtorch falls back to the
# reference BLAS and runs ~25x slower. Gloo's headers let the data-parallel
# distillation (c10d) build and be tested on the CPU.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libtorch-dev libopenblas0-openmp libgloo-dev
  libsentencepiece-dev libcli11-dev nlohmann-json3-dev libspdlog-dev libpcre2-dev
  libgtest-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "install_deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
