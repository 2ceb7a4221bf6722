// test_learning.cpp — the end-to-end learning test: `lcam demo --quick` trains L-CAM-Img on the
// committed scenes classifier (weights/demo_vgg_scenes.h5) and evaluates it on held-out scenes.
// A trained attention mechanism must beat the controls that look at nothing (a centred blob and
// smooth random noise) by a clear margin, both at pointing at the object and at keeping the
// classifier's decision (Average Drop at 15% kept): pointing game at least 40 points above the
// better control's, AD(15%) at least 10 below. Checked by breaking the L-CAM path on purpose,
// one place at a time (committed classifier, CPU): the correct code gives 92.5% and 62.7
// against the centre blob's 34% and 82.2; dropping the cross-entropy gradient to the mask
// (51.5%, 87.5), zeroing the attention's weight gradient (65.5%, 86.6), flipping the mask
// gradient's sign (44%, 84.6), passing gradients through the backbone's ReLUs (52.5%, 76.1) and
// mirroring the upsampling's gradient (82.5%, 83.0) each fail it. A gradient with the right sign
// and the wrong size (the sigmoid's derivative left out: 95.5%, 56.5) still learns and passes:
// exact gradients are pinned by the PyTorch fixtures (test_lcam.cpp). Runs on the CPU, and again
// on the GPU when one is usable (the whole demo on CUDA must learn as well). Needs Fashion-MNIST:
// $LCAM_FASHION_MNIST, else Debian's dataset-fashion-mnist (a subset made by
// tools/fashion_subset.py will do: the GPU bundle carries one); skipped with a printed line
// without it.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <algorithm>   // std::max, std::min
#include <cstdlib>     // std::system, std::getenv
#include <filesystem>  // temp folder
#include <fstream>     // report.json
#include <map>         // per-method results

#include <nlohmann/json.hpp>  // nlohmann::json

#include "engine/cuda_runtime.h"  // cuda::available
#include "loaders/idx.h"      // kFashionMnistDir
#include "tests/test_util.h"  // lcam_binary, source_dir

namespace fs = std::filesystem;

namespace {

// `lcam demo --quick` on `device`, then the margins over the controls.
void run_demo(const std::string& fashion, const std::string& device) {
  const fs::path dir = fs::temp_directory_path() / ("lcam_learning_" + device);
  fs::remove_all(dir);
  const std::string weights = lcam::test::source_dir() + "/weights/demo_vgg_scenes.h5";
  const std::string cmd = lcam::test::lcam_binary() + " demo --quick --device " + device + " --fashion-mnist " + fashion +
                          " --weights " + weights + " --out " + dir.string() + " > " + (dir.string() + ".log") + " 2>&1";
  const int status = std::system(cmd.c_str());
  std::ifstream log(dir.string() + ".log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  INFO(text);
  REQUIRE(status == 0);
  std::ifstream js(dir / "report.json");
  REQUIRE(js);
  const auto report = nlohmann::json::parse(js);
  // The committed classifier, read through lcam's whole image path, classifies held-out scenes.
  CHECK(report["top1"].get<double>() > 70.0);
  std::map<std::string, nlohmann::json> m;
  for (const auto& r : report["methods"]) m[r["method"].get<std::string>()] = r;
  REQUIRE(m.count("lcam-img"));
  REQUIRE(m.count("center"));
  REQUIRE(m.count("random"));
  auto get = [&](const std::string& method, const char* key) { return m[method][key].get<double>(); };
  const double pg = get("lcam-img", "pointing_game");
  const double pg_control = std::max(get("center", "pointing_game"), get("random", "pointing_game"));
  const double ad = get("lcam-img", "AD15");
  const double ad_control = std::min(get("center", "AD15"), get("random", "AD15"));
  MESSAGE(device << ": pointing game: L-CAM-Img " << pg << "% vs best control " << pg_control
                 << "%; AD(15%): L-CAM-Img " << ad << " vs best control " << ad_control);
  CHECK(pg >= pg_control + 40.0);
  CHECK(ad <= ad_control - 10.0);
  fs::remove_all(dir);
  fs::remove(dir.string() + ".log");
}

}  // namespace

TEST_SUITE("learning") {

TEST_CASE("demo --quick: trained L-CAM-Img points at the object and keeps the decision better than the controls") {
  const char* env = std::getenv("LCAM_FASHION_MNIST");
  const std::string fashion = env && *env ? env : lcam::kFashionMnistDir;
  if (!fs::is_directory(fashion)) {
    MESSAGE("learning: skipped (no " << fashion << "; apt-get install dataset-fashion-mnist, or set LCAM_FASHION_MNIST)");
    return;
  }
  for (const char* device : {"cpu", "cuda"}) {
    if (std::string(device) == "cuda" && !lcam::cuda::available()) {
      MESSAGE("learning on cuda: skipped (" << lcam::cuda::unavailable_reason() << ")");
      continue;
    }
    CAPTURE(device);
    run_demo(fashion, device);
  }
}

}  // TEST_SUITE
