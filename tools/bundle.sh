#!/usr/bin/env bash
# bundle.sh — builds lcam and lcam_tests for the H200 (sm_90) in a build folder of their own
# (default build-gpu/) and packs them into a relocatable folder (default gpu-bundle/) for the
# GPU machine: the two binaries, a lib/ with every shared library they load that the GPU machine
# lacks (OpenBLAS and its Fortran runtime, OpenMP, fmt, szip/zlib, the CUDA runtime), an rpath
# of $ORIGIN/lib, the test fixtures, data/, weights/ (the demo classifier), twenty sample photos
# (the CLI tests and the GPU check use them), a Fashion-MNIST subset (the learning test and the
# demo use it), tools/gpu-check.sh and the PyTorch bench scripts, and
# bundle-info.txt (paths compiled into the tests, versions, the newest glibc/libstdc++ symbols
# required).
# HDF5 is linked statically and the link uses --as-needed, which drops the ~30 libraries
# (curl, TLS, Kerberos, ...) that Debian's shared libhdf5 would pull in.
# Deliberately leaves out glibc, the driver (libcuda), cuDNN and cuBLAS: the GPU machine has its
# own (cuDNN/cuBLAS from PyTorch's wheels; gpu-check.sh finds them); libstdc++ and libgcc_s come
# along only as a fallback in lib-fallback/, for a machine whose own are older.
# Fails when the bundle exceeds 60 MiB.
#
# usage: tools/bundle.sh [DEST]    env: BUILD_DIR (build-gpu), JOBS (2), LEAN (0), COMPRESS (1)
# COMPRESS=1 (the default) stores the libraries over 4 MiB gzipped (OpenBLAS: 37 -> 11 MiB),
# which keeps the bundle under 60 MiB: gpu-check.sh unpacks them before anything runs (by hand:
# `gunzip lib/*.gz` once before running lcam). COMPRESS=0 leaves them as they are, for a copy
# with no size limit: the folder is then about 76 MiB, and its size is reported, not checked.
# LEAN=1 leaves the test fixtures and the demo classifier out: for a device run that carries
# the bundle beside a copy of the working tree (which has them), where bundle + tree must fit
# the 64 MiB carry limit; gpu-check.sh then reads the fixtures from the bundle's parent folder.
# then, on the GPU machine:         cd gpu-bundle && ./gpu-check.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEST=${1:-gpu-bundle}
BUILD=${BUILD_DIR:-build-gpu}
JOBS=${JOBS:-2}
LIMIT_MIB=60

if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
command -v nvcc >/dev/null || { echo "bundle: no nvcc (CUDA toolkit) found" >&2; exit 2; }
if ! command -v patchelf >/dev/null; then
  echo "bundle: installing patchelf"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    --no-install-recommends patchelf >/dev/null
fi
command -v patchelf >/dev/null || { echo "bundle: patchelf is required" >&2; exit 2; }

# ---- build -----------------------------------------------------------------------------------
# CMAKE_CUDA20_*: CMake 3.25 knows no C++20 flag for nvcc (nvcc 12+ accepts -std=c++20); newer
# CMake sets these itself and ignores the cache entries.
echo "bundle: configuring $BUILD"
cmake -S . -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release \
  -DLCAM_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DCMAKE_CUDA20_STANDARD_COMPILE_OPTION=-std=c++20 \
  -DCMAKE_CUDA20_EXTENSION_COMPILE_OPTION=-std=c++20 \
  -DHDF5_USE_STATIC_LIBRARIES=ON \
  -DCMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed >/dev/null
echo "bundle: building lcam and lcam_tests (-j$JOBS)"
cmake --build "$BUILD" -j "$JOBS" --target lcam lcam_tests

# ---- assemble --------------------------------------------------------------------------------
rm -rf "$DEST"
mkdir -p "$DEST/lib" "$DEST/tools" "$DEST/tests"
cp "$BUILD/lcam" "$BUILD/lcam_tests" "$DEST/"

# Libraries the GPU machine has (or must use its own of): glibc and the loader, the C++ and
# GCC runtimes, the driver, cuDNN and cuBLAS.
keep_out() {
  case "$1" in
    linux-vdso.so* | ld-linux* | libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | \
      libutil.so* | libresolv.so* | libstdc++.so* | libgcc_s.so* | libcuda.so* | libnvidia* | \
      libcudnn* | libcublas*) return 0 ;;
  esac
  return 1
}

missing=0
while read -r soname path; do
  if [ "$path" = "not" ]; then
    keep_out "$soname" || { echo "bundle: $soname not found by ldd" >&2; missing=1; }
    continue
  fi
  keep_out "$soname" && continue
  cp -L "$path" "$DEST/lib/$soname"
  chmod u+w "$DEST/lib/$soname"
done < <(ldd "$DEST/lcam" "$DEST/lcam_tests" | awk '$2 == "=>" {print $1, $3}' | sort -u)
[ "$missing" -eq 0 ] || exit 1
# The C++ and GCC runtimes this build was linked against, in lib-fallback/ (not on the rpath):
# gpu-check.sh puts them first only when the machine's own libstdc++ is too old to start lcam.
mkdir -p "$DEST/lib-fallback"
while read -r soname path; do
  case "$soname" in libstdc++.so* | libgcc_s.so*) cp -L "$path" "$DEST/lib-fallback/$soname" ;; esac
done < <(ldd "$DEST/lcam" | awk '$2 == "=>" {print $1, $3}' | sort -u)

# DT_RPATH (not RUNPATH): it applies to the libraries' own dependencies too. $ORIGIN is
# literal on purpose: the loader expands it.
# shellcheck disable=SC2016
for exe in "$DEST/lcam" "$DEST/lcam_tests"; do
  patchelf --force-rpath --set-rpath '$ORIGIN/lib' "$exe"
done
# shellcheck disable=SC2016
for lib in "$DEST"/lib/*; do
  patchelf --force-rpath --set-rpath '$ORIGIN' "$lib"
done

cp tools/gpu-check.sh "$DEST/"
chmod +x "$DEST/gpu-check.sh"
[ -f tools/bench_torch.py ] && cp tools/bench_torch.py "$DEST/tools/"  # for runs by hand; gpu-check uses bench_work_torch.py
[ -f tools/bench_work_torch.py ] && cp tools/bench_work_torch.py "$DEST/tools/"
cp tools/bench_table.py tools/kernel_summary.py tools/torch_tf32.py tools/run_suite.py "$DEST/tools/"
cp -r data "$DEST/data"
# The demo classifier: `lcam demo` looks for weights/ beside the binary (LEAN: the carried tree
# has it; pass --weights TREE/weights/demo_vgg_scenes.h5).
if [ "${LEAN:-0}" != 1 ] && [ -d weights ]; then cp -r weights "$DEST/weights"; fi
if [ "${LEAN:-0}" != 1 ] && [ -d tests/fixtures ]; then cp -r tests/fixtures "$DEST/tests/fixtures"; fi
# The inputs that once broke a reader (tests/test_fuzz_regressions.cpp reads them beside the fixtures).
if [ "${LEAN:-0}" != 1 ] && [ -d tests/fuzz/regressions ]; then
  mkdir -p "$DEST/tests/fuzz"
  cp -r tests/fuzz/regressions "$DEST/tests/fuzz/regressions"
fi

# Twenty sample photos (the CLI training test needs 20) in the layout the tests expect
# (SOURCE/../shared/data/imagenet-sample).
samples_src="$ROOT/../shared/data/imagenet-sample"
if [ -d "$samples_src" ]; then
  mkdir -p "$DEST/shared/data/imagenet-sample"
  # The whole sorted list first: `sort | head` under pipefail fails whenever head exits before
  # sort has written everything (SIGPIPE), which ended this script at random.
  mapfile -t photos < <(find "$samples_src" -maxdepth 1 -name '*.JPEG' | sort)
  for f in "${photos[@]:0:20}"; do
    cp "$f" "$DEST/shared/data/imagenet-sample/"
    b=$(basename "$f")
    grep -F "$b " "$ROOT/../shared/data/imagenet-sample.txt" 2>/dev/null || true
  done >"$DEST/shared/data/imagenet-sample.txt"
else
  echo "bundle: $samples_src not found; the bundle has no sample photos" >&2
fi

# A Fashion-MNIST subset (the first 6000 training and 2000 test items, 3.4 MB;
# tools/fashion_subset.py): the GPU machine has no dataset, and the learning test (the demo on
# the CPU and on CUDA) and `lcam demo --fashion-mnist fashion-mnist` need one.
fm_src=/usr/share/datasets/fashion-mnist
if [ -d "$fm_src" ] && command -v python3 >/dev/null; then
  python3 tools/fashion_subset.py "$DEST/fashion-mnist" --source "$fm_src"
else
  echo "bundle: no Fashion-MNIST at $fm_src; the learning test will skip on the GPU machine" >&2
fi

# ---- describe --------------------------------------------------------------------------------
newest() {  # newest symbol version with prefix $1 that the files $2... require
  local prefix=$1
  shift
  objdump -T "$@" 2>/dev/null | grep -o "${prefix}[0-9.]*" | sort -uV | tail -n 1
}
glibc=$(newest GLIBC_ "$DEST/lcam" "$DEST/lcam_tests" "$DEST"/lib/*)
glibcxx=$(newest GLIBCXX_ "$DEST/lcam" "$DEST/lcam_tests" "$DEST"/lib/*)
cudnn_h=$(awk '/#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) /{printf "%s%s", sep, $3; sep="."}' \
  "$(dirname "$(command -v nvcc)")/../include/cudnn_version.h" 2>/dev/null || true)
{
  echo "source_dir=$ROOT"
  echo "lcam_binary=$ROOT/$BUILD/lcam"
  echo "built=$(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(uname -srm)"
  echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
  echo "nvcc=$(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p') sm_90"
  echo "cudnn_headers=${cudnn_h:-?} (runtime: the machine's libcudnn.so.9)"
  echo "needs: ${glibc:-?} ${glibcxx:-?} (newest symbol versions used)"
  echo "needs from the machine: libcudnn.so.9 libcublas.so.13 libcublasLt.so.13 libcuda.so.1"
  echo "lib/: $(find "$DEST/lib" -maxdepth 1 -type f -printf '%f\n' | sort | tr '\n' ' ')"
} >"$DEST/bundle-info.txt"

# ---- check -----------------------------------------------------------------------------------
echo "bundle: libraries as the bundled binaries resolve them here (cuDNN/cuBLAS come from the GPU machine):"
env -u LD_LIBRARY_PATH ldd "$DEST/lcam_tests" | awk '$2 == "=>" {print "  " $1, "->", $3}' \
  | grep -v -E 'libc\.so|libm\.so|ld-linux|vdso' || true
# COMPRESS=1 (default): libraries over 4 MiB are stored gzipped (see the top of this file).
if [ "${COMPRESS:-1}" = 1 ]; then
  find "$DEST/lib" -maxdepth 1 -type f -size +4M ! -name '*.gz' -exec gzip -9 {} +
  echo "compressed=$(find "$DEST/lib" -maxdepth 1 -name '*.gz' -printf '%f ' ) (gunzip before use)" >>"$DEST/bundle-info.txt"
fi
bytes=$(du -sb "$DEST" | cut -f1)
mib=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')
echo "size=${mib} MiB" >>"$DEST/bundle-info.txt"
if [ "${COMPRESS:-1}" = 1 ]; then
  echo "bundle: $DEST is ${mib} MiB (limit ${LIMIT_MIB} MiB)"
  if [ "$bytes" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "bundle: too large for the GPU machine's transfer limit" >&2
    exit 1
  fi
else
  echo "bundle: $DEST is ${mib} MiB, uncompressed (COMPRESS=0: not checked against the ${LIMIT_MIB} MiB limit)"
fi
echo "bundle: done. On the GPU machine: cd $DEST && ./gpu-check.sh \"\$OUT\""
if compgen -G "$DEST/lib/*.gz" >/dev/null; then
  echo "bundle: (to run lcam there directly, unpack the libraries once: cd $DEST && gunzip lib/*.gz)"
fi
