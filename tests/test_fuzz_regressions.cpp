// test_fuzz_regressions.cpp — every input under tests/fuzz/regressions/TARGET/ once made lcam
// crash, throw something other than an InputError, or trip a sanitizer when read as that
// target's file (tools/fuzz.sh found them); each must now be read or refused with an InputError.
// Under tools/sanitize.sh this also checks them for memory errors.
#include <algorithm>   // std::sort
#include <filesystem>  // std::filesystem::directory_iterator
#include <string>      // std::string
#include <vector>      // std::vector

#include <doctest/doctest.h>

#include <unistd.h>  // getpid

#include "loaders/image.h"       // read_file_bytes
#include "models/checkpoint.h"  // save_checkpoint
#include "models/lcam.h"        // Attention
#include "tests/fuzz_targets.h"  // lcam::fuzz::run, targets
#include "tests/test_util.h"     // source_dir

namespace fs = std::filesystem;

TEST_CASE("inputs that once broke a reader are read or refused with an InputError") {
  int inputs = 0;
  for (const std::string& target : lcam::fuzz::targets()) {
    const fs::path dir = fs::path(lcam::test::source_dir()) / "tests/fuzz/regressions" / target;
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      const std::vector<uint8_t> bytes = lcam::read_file_bytes(f.string());
      INFO(target << ": " << f.string());
      CHECK_NOTHROW(lcam::fuzz::run(target, bytes.data(), bytes.size()));
      ++inputs;
    }
  }
  CHECK(inputs > 0);  // the folder is where the suite looks
}

TEST_CASE("the fuzz targets reach lcam's readers: seeds are accepted, garbage refused") {
  const std::string fx = lcam::test::source_dir() + "/tests/fixtures/";
  const auto bytes_of = [](const std::string& path) { return lcam::read_file_bytes(path); };
  auto accepted = [](const std::string& target, const std::vector<uint8_t>& b) {
    return lcam::fuzz::run(target, b.data(), b.size());
  };
  // The seeds tools/fuzz.sh starts from: every step of the image target takes a good image (the
  // decode and both eval transforms), the weights reader a weights file (not as a checkpoint).
  CHECK(accepted("image", bytes_of(fx + "image/small.jpg")) == 3);
  CHECK(accepted("image", bytes_of(fx + "image/palette.png")) == 3);
  CHECK(accepted("hdf5", bytes_of(fx + "tiny_vgg16.weights.h5")) == 1);
  {  // a checkpoint of 8 channels: the checkpoint reader for C = 8 takes it, nothing else does
    const std::string ckpt = (fs::temp_directory_path() / ("lcam-fuzz-seed-" + std::to_string(getpid()) + ".h5")).string();
    lcam::CheckpointState st;
    st.arch = "vgg16";
    st.method = "img";
    lcam::save_checkpoint(ckpt, lcam::Attention::init(10, 8, 1, lcam::Device::CPU), st);
    const std::vector<uint8_t> b = bytes_of(ckpt);
    fs::remove(ckpt);
    CHECK(accepted("hdf5", b) == 1);
  }
  CHECK(accepted("pth", bytes_of(fx + "pth/zoo.pth")) > 5);
  CHECK(accepted("pth", bytes_of(fx + "pth/zoo.legacy.pth")) > 5);
  const std::string list = "a.jpg 3\n# a comment\n\nsub/b.png 7\n";
  // Both lists and the class names take it; as a box file its lines are malformed.
  CHECK(accepted("text", std::vector<uint8_t>(list.begin(), list.end())) == 3);
  const std::vector<uint8_t> idx = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};  // uint8, 1 dimension of 3
  CHECK(accepted("idx", idx) == 1);
  const std::vector<uint8_t> zeros(16, 0);
  for (const char* t : {"pth", "image", "idx", "hdf5"}) {
    INFO(t);
    CHECK(accepted(t, zeros) == 0);
  }
  CHECK_THROWS_AS(accepted("no-such-target", zeros), std::invalid_argument);
}
