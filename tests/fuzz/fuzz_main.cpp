// fuzz_main.cpp — the libFuzzer entry point of one target of tests/fuzz_targets.h, chosen at
// build time (LCAM_FUZZ_TARGET, one executable per target: see tools/fuzz.sh). An InputError is
// an accepted outcome; any other exception escapes and the fuzzer reports it as a crash.
#include <cstddef>  // size_t
#include <cstdint>  // uint8_t

#include "tests/fuzz_targets.h"  // lcam::fuzz::run

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lcam::fuzz::run(LCAM_FUZZ_TARGET, data, size);
  return 0;
}
