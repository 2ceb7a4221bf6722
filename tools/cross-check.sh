#!/usr/bin/env bash
# cross-check.sh — builds lcam for 64-bit Arm (aarch64: Grace Hopper servers, Arm laptops and
# boards) on an x86-64 Debian 12 and runs its test suites there under qemu-aarch64, CPU only.
#
#   tools/cross-check.sh [SUITES]     SUITES: CTest names, comma-separated (default unit,cli,learning)
#
# Installs, when missing (as root, or with sudo): Debian's cross compiler, qemu-user and
# mmdebstrap; makes a Debian 12 arm64 tree with lcam's -dev packages (build-arm64/sysroot, about
# 260 MB, made once) and builds into build-arm64/ with tools/cross/aarch64.cmake. Emulation is
# slow: on 2 cores the unit suite takes about 4 minutes, cli 11, learning about 50.
# The CLI tests start the aarch64 `lcam` through a wrapper that calls qemu (LCAM_BINARY).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build-arm64
SYSROOT=$OUT/sysroot
SUITES=${1:-unit,cli,learning}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
command -v aarch64-linux-gnu-g++ >/dev/null || need+=(crossbuild-essential-arm64)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "cross-check: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
tools/install-deps.sh  # the build machine's own CMake, Ninja, pkg-config

# The arm64 tree: lcam's build dependencies for arm64, unpacked (no package scripts run), plus
# libavif's run-time libraries for the AVIF fixtures.
if [ ! -e "$SYSROOT/.lcam-complete" ]; then
  rm -rf "$SYSROOT"
  mkdir -p "$OUT"
  pkgs=base-files,libc6-dev,libstdc++-12-dev,libgcc-12-dev,libgomp1,libhdf5-dev,libopenblas-dev
  pkgs+=,libstb-dev,doctest-dev,libcli11-dev,nlohmann-json3-dev,libfmt-dev,libjpeg62-turbo-dev
  pkgs+=,zlib1g-dev,libwebp-dev,libtiff-dev,libopenjp2-7-dev,liblcms2-dev,libavif-dev,libavif15
  echo "cross-check: making the Debian arm64 tree in $SYSROOT"
  $SUDO mmdebstrap --arch=arm64 --variant=extract --include="$pkgs" bookworm "$SYSROOT" \
    http://deb.debian.org/debian >"$OUT/mmdebstrap.log" 2>&1 ||
    { echo "cross-check: mmdebstrap failed, see $OUT/mmdebstrap.log" >&2; exit 1; }
  # What Debian's alternatives would have linked: OpenBLAS as the BLAS, and its cblas.h.
  lib=$SYSROOT/usr/lib/aarch64-linux-gnu
  for f in libblas.so libblas.so.3 libopenblas.so libopenblas.so.0; do
    $SUDO ln -sf "openblas-pthread/$f" "$lib/$f"
  done
  for f in cblas.h openblas_config.h; do
    $SUDO ln -sf "openblas-pthread/$f" "$SYSROOT/usr/include/aarch64-linux-gnu/$f"
  done
  $SUDO touch "$SYSROOT/.lcam-complete"
fi

export LCAM_SYSROOT=$SYSROOT
cmake -S . -B "$OUT" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLCAM_CUDA=OFF \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/tools/cross/aarch64.cmake" >/dev/null
cmake --build "$OUT" -j "$(nproc)"

# CTest runs the suites under qemu (the toolchain's emulator); the tests' own calls of `lcam`
# go through this wrapper.
cat >"$OUT/lcam-qemu" <<EOF
#!/bin/sh
exec qemu-aarch64 -L "$SYSROOT" "$OUT/lcam" "\$@"
EOF
chmod +x "$OUT/lcam-qemu"
export LCAM_BINARY=$OUT/lcam-qemu QEMU_LD_PREFIX=$SYSROOT
echo "cross-check: $(file -b "$OUT/lcam" | cut -d, -f1-2); $(qemu-aarch64 -L "$SYSROOT" "$OUT/lcam" --version | head -n 1)"
ctest --test-dir "$OUT" --output-on-failure -R "^(${SUITES//,/|})\$"
