// fuzz_targets.h — what lcam does with a file a user hands it, as functions of the file's bytes:
// the torch.save reader, the image decoders and transforms, the IDX reader, the list / box /
// class-name parsers and the HDF5 weights and checkpoint readers. Each must end normally or with
// an InputError; anything else (a crash, another exception, a sanitizer report) is a bug. Run by
// the coverage-guided fuzzers (tests/fuzz/, tools/fuzz.sh) and, on the inputs that once broke
// them (tests/fuzz/regressions/TARGET/), by the unit suite (tests/test_fuzz_regressions.cpp).
#pragma once
#include <cstddef>  // size_t
#include <cstdint>  // uint8_t
#include <string>   // std::string
#include <vector>   // std::vector

namespace lcam::fuzz {

// The target names: pth, image, idx, text, hdf5.
const std::vector<std::string>& targets();

// Runs one target on one input: each of the target's steps (a reader, a transform, ...) either
// accepts the input or refuses it with an InputError; returns how many accepted it. Any other
// exception propagates (the fuzzer then reports it).
int run(const std::string& target, const uint8_t* data, size_t size);

}  // namespace lcam::fuzz
