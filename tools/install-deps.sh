#!/usr/bin/env bash
# install-deps.sh — installs what lcam needs to build and test on Debian 12 (as root, or with
# sudo): compiler, CMake, Ninja, HDF5, OpenBLAS, OpenMP, stb, doctest, CLI11, nlohmann-json, fmt,
# libjpeg-turbo, zlib, libwebp, libtiff, OpenJPEG, littleCMS, libavif (its header; the library is
# loaded at run time for AVIF files).
# Does nothing when everything is already there. The CUDA toolkit is not installed here: when
# /usr/local/cuda exists, the build picks it up (LCAM_CUDA=ON); otherwise it builds CPU-only.
# Python/PyTorch are NOT needed: they only regenerate the committed test fixtures.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config libhdf5-dev libopenblas-dev libstb-dev
      doctest-dev libcli11-dev nlohmann-json3-dev libfmt-dev libjpeg62-turbo-dev zlib1g-dev
      libwebp-dev libtiff-dev libopenjp2-7-dev liblcms2-dev libavif-dev dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
