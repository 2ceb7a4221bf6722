#!/usr/bin/env bash
# build.sh — installs dependencies if missing, configures and builds lcam and its tests into
# build/ (Release; CUDA backend when a CUDA toolkit is found, e.g. under /usr/local/cuda).
# Extra arguments go to CMake's configure step (e.g. -DLCAM_CUDA=OFF).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [ -x /usr/local/cuda/bin/nvcc ] && ! command -v nvcc >/dev/null; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j "$(nproc)"
