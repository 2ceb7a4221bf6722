#!/usr/bin/env bash
# sanitize.sh — the whole CPU test suite under AddressSanitizer (with LeakSanitizer),
# UndefinedBehaviorSanitizer and libstdc++'s assertions (bounds of every vector and string
# index): a CPU-only build in build-asan/, then ctest. Any out-of-bounds access, use after
# free, leak, signed overflow, float-to-int conversion out of range, misaligned access or
# out-of-range shift stops the test that hit it with a stack trace. CI runs it after
# tools/test.sh.
# `sanitize.sh thread`: ThreadSanitizer instead, in build-tsan/, on the data loader's suite (its
# worker threads and the consumer; the rest of the suite runs OpenMP, whose GNU runtime
# ThreadSanitizer cannot see into, so that it would report its barriers as races).
# Further arguments go to CMake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
if [ "${1:-}" = thread ]; then
  shift
  flags="-fsanitize=thread -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLCAM_CUDA=OFF \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=thread" "$@" >/dev/null
  cmake --build build-tsan -j "$(nproc)" --target lcam_tests
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/lcam_tests --test-suite=data
  exit
fi
flags="-fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLCAM_CUDA=OFF \
  -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined,float-cast-overflow" "$@" >/dev/null
cmake --build build-asan -j "$(nproc)"
# allocator_may_return_null: the tests of "out of host memory" ask for terabytes on purpose and
# expect the allocation to fail, not the sanitizer to abort.
export ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir build-asan --output-on-failure -j "$(nproc)" -E run_suite
# The runner's probe segfaults on purpose (tests/probe/): there the signal must stay a signal,
# not become the sanitizer's report and exit status 1.
ASAN_OPTIONS="$ASAN_OPTIONS:handle_segv=0" ctest --test-dir build-asan --output-on-failure -R run_suite
