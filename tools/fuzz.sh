#!/usr/bin/env bash
# fuzz.sh — coverage-guided fuzzing (libFuzzer) of what lcam reads from users' files: torch.save
# files, images, IDX files, list / box / class-name files, HDF5 weights and checkpoints (the
# targets of tests/fuzz_targets.h). Builds lcam_core and one fuzzer per target with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer in build-fuzz/ (CPU only), seeds each target's
# corpus with the test fixtures, then runs each target for SECONDS (default 120) on all cores.
# An input that crashes, throws anything but an InputError, trips a sanitizer, runs past 20 s
# or asks for more than 2 GiB is written to out/fuzz/TARGET/ (crash-*, timeout-*, oom-*); add it
# to tests/fuzz/regressions/TARGET/ with the fix, and the unit suite keeps it fixed.
# usage: tools/fuzz.sh [SECONDS] [TARGET...]     (e.g. tools/fuzz.sh 600 pth)
# `tools/fuzz.sh replay FILE...` runs the regressions (or the given files) through every
# target's fuzzer once each, to reproduce a report with the sanitizers' stack traces.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
for p in clang libclang-rt-14-dev libomp-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
targets=(pth image idx text hdf5)
mode=run
if [ "${1:-}" = replay ]; then
  mode=replay
  shift
fi
seconds=120
if [ "$mode" = run ] && [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
[ "$mode" = run ] && [ $# -gt 0 ] && targets=("$@")

flags="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLCAM_CUDA=OFF -DLCAM_FUZZ=ON \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
if ! cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]/#/fuzz_}" >build-fuzz/build.log 2>&1; then
  cat build-fuzz/build.log >&2
  exit 1
fi

# allocator_may_return_null: a file that declares a huge tensor must get an InputError from the
# reader, or from lcam's out-of-memory path, not an abort in the allocator.
export ASAN_OPTIONS=${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp}
if [ "$mode" = replay ]; then
  status=0
  for t in "${targets[@]}"; do
    if [ $# -gt 0 ]; then files=("$@"); else files=(tests/fuzz/regressions/"$t"/*); fi
    [ -e "${files[0]}" ] || continue
    build-fuzz/fuzz_"$t" -runs=1 "${files[@]}" >/dev/null 2>"build-fuzz/replay-$t.log" ||
      { status=1; echo "fuzz: $t: see build-fuzz/replay-$t.log"; }
  done
  exit $status
fi

seeds() {  # the fixtures each target starts from
  case $1 in
    pth) ls tests/fixtures/pth/zoo*.pth ;;
    image) ls tests/fixtures/image/*.jpg tests/fixtures/image/{grey,grey_alpha,palette,rgba,img_97x131}.png tests/fixtures/image/formats/*.{p?m,gif,bmp,ico,cur,png,tga,webp,tif,psd,jp2,j2k,pcx,dcx,avif} ;;
    idx) ls tests/fuzz/seeds/idx/* ;;
    text) ls tests/fuzz/seeds/text/* tests/fixtures/image/index.txt ;;
    hdf5) ls tests/fixtures/pth/tiny_vgg16_lcam.ref.h5 tests/fuzz/seeds/hdf5/* ;;
  esac
}
jobs=$(nproc)
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  found=out/fuzz/$t
  mkdir -p "$corpus" "$found"
  # shellcheck disable=SC2046
  cp $(seeds "$t") "$corpus"/ 2>/dev/null || true
  echo "fuzz: $t for ${seconds}s on $jobs cores (corpus $corpus, findings $found)"
  # -fork: a crash is written down and the fuzzing goes on with the next input.
  build-fuzz/fuzz_"$t" "$corpus" -fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=131072 \
    -artifact_prefix="$found/" -print_final_stats=1 >"build-fuzz/fuzz-$t.log" 2>&1 || true
  n=$(find "$found" -type f | wc -l)
  echo "fuzz: $t: $(grep -a -o 'cov: [0-9]*' "build-fuzz/fuzz-$t.log" | tail -n 1), $(find "$corpus" -type f | wc -l) corpus inputs, $n findings"
done
