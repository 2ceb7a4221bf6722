#!/usr/bin/env bash
# test.sh — the README's second quick-start command: builds lcam and runs the whole test suite
# with CTest (unit suites, PyTorch parity fixtures, CLI tests; CUDA tests skip with a printed
# line when no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/build.sh
ctest --test-dir build --output-on-failure
