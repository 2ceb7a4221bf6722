// test_cams.cpp — saliency maps against PyTorch (tests/fixtures/cam_*.ref.h5, float64, written
// by tools/make_cam_fixtures.py on the tiny backbones): L-CAM inference, Grad-CAM, Grad-CAM++
// (reference variant and the paper's Eq. 19): channel weights, the map at feature resolution
// and the upsampled saliency map, for the predicted classes and a class-specific case. Also the
// localization scores (pointing game, energy in box) and box files.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <filesystem>  // temp_directory_path (box files)
#include <algorithm>   // std::stable_sort (keep_top's reference)
#include <fstream>     // std::ofstream
#include <numeric>     // std::iota
#include <random>      // std::mt19937

#include "engine/common.h"     // InputError
#include "loaders/dataset.h"  // read_boxes
#include "loaders/hdf5.h"     // h5::Reader
#include "models/cams.h"      // grad_cam
#include "models/evaluation.h"  // keep_top, class_scores, Adic, Localization
#include "models/lcam.h"      // Lcam::saliency
#include "models/model.h"     // load_model
#include "tests/test_util.h"  // fixture, check_close

using namespace lcam;
using lcam::test::check_close;
using lcam::test::to_double;

TEST_SUITE("cams") {

TEST_CASE("L-CAM, Grad-CAM and Grad-CAM++ maps match PyTorch") {
  for (const char* arch : {"vgg16", "resnet50"}) {
    CAPTURE(arch);
    h5::Reader ref(lcam::test::fixture(std::string("cam_") + arch + ".ref.h5"));
    REQUIRE(ref.attr_string("magic").value_or("") == "lcam-fixture");
    auto model = load_model(lcam::test::fixture(ref.attr_string("weights").value()), arch, Device::CPU);
    Tensor x01 = ref.read("x01", true), cls = ref.read_i32("classes");
    const std::vector<int> classes(cls.data_i32(), cls.data_i32() + cls.numel());
    const int c3 = ref.read_i32("class3").data_i32()[0];
    // Maps are in [0,1]; PyTorch's own float32 floor is <= 1.1e-5 (Grad-CAM++ on VGG).
    for (const char* m : {"gradcam", "gradcampp", "gradcampp_paper"}) {
      CAPTURE(m);
      const GradCam method = parse_grad_cam(std::string(m) == "gradcampp_paper" ? "gradcampp-paper" : m);
      CamResult r = grad_cam(*model, x01, classes, method);
      check_close(std::string(m) + " weights", r.weights.to_vector(), to_double(ref.read(std::string(m) + "/weights", true)), 1e-4);
      check_close(std::string(m) + " map", r.cam.to_vector(), to_double(ref.read(std::string(m) + "/cam", true)), 1e-4);
      check_close(std::string(m) + " saliency", r.saliency.to_vector(), to_double(ref.read(std::string("sm/") + m, true)), 1e-4);
      CamResult r3 = grad_cam(*model, x01.slice0(0, 1).clone(), {c3}, method);
      check_close(std::string(m) + " class-specific", r3.saliency.to_vector(), to_double(ref.read(std::string("sm_class3/") + m, true)), 1e-4);
    }
    Tensor w = ref.read("lcam/attn_weight", true);
    Attention a{w.reshape({w.dim(0), w.dim(1)}).clone(), ref.read("lcam/attn_bias", true)};
    Lcam lcam(*model, LcamOptions{});
    check_close("lcam saliency", lcam.saliency(a, x01, classes).to_vector(), to_double(ref.read("sm/lcam", true)), 1e-5);
    check_close("lcam class-specific", lcam.saliency(a, x01.slice0(0, 1).clone(), {c3}).to_vector(),
                to_double(ref.read("sm_class3/lcam", true)), 1e-5);
  }
}

}  // TEST_SUITE

TEST_SUITE("cams") {

TEST_CASE("keep_top's selection zeroes exactly what a stable sort would") {
  // Maps with many ties (values on a coarse grid, -0 and +0 among them) and odd sizes; every
  // keep percentage from 0 to 100, one map at a time and as a batch.
  std::mt19937 rng(5);
  for (int64_t L : {1, 2, 7, 97, 1000}) {
    for (int levels : {1, 3, 50}) {
      std::uniform_int_distribution<int> u(0, levels - 1);
      const int64_t N = 3;
      Tensor sm = Tensor::empty({N, 1, 1, L});
      for (int64_t i = 0; i < sm.numel(); ++i) sm.data()[i] = u(rng) == 0 ? (i % 2 ? -0.f : 0.f) : static_cast<float>(u(rng)) / levels;
      for (int keep = 0; keep <= 100; keep += 1) {
        CAPTURE(L);
        CAPTURE(levels);
        CAPTURE(keep);
        Tensor got = Tensor::empty(sm.shape());
        keep_top(got, sm, keep);
        for (int64_t n = 0; n < N; ++n) {
          const float* m = sm.data() + n * L;
          std::vector<int64_t> order(static_cast<size_t>(L));
          std::iota(order.begin(), order.end(), 0);
          std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return m[a] < m[b]; });
          std::vector<float> want(m, m + L);
          const auto zeroed = static_cast<int64_t>((1.0 - keep / 100.0) * static_cast<double>(L));
          for (int64_t i = 0; i < zeroed; ++i) want[order[i]] = 0.f;
          std::vector<float> one(static_cast<size_t>(L));
          keep_top(one.data(), m, L, keep);
          CHECK(one == want);
          CHECK(std::vector<float>(got.data() + n * L, got.data() + (n + 1) * L) == want);
        }
      }
    }
  }
}

TEST_CASE("AD/IC: the official top-p% rule with its tie order, scores and averages match PyTorch") {
  for (const char* arch : {"vgg16", "resnet50"}) {
    CAPTURE(arch);
    h5::Reader ref(lcam::test::fixture(std::string("cam_") + arch + ".ref.h5"));
    auto model = load_model(lcam::test::fixture(ref.attr_string("weights").value()), arch, Device::CPU);
    Tensor x01 = ref.read("x01", true), cls = ref.read_i32("classes");
    const std::vector<int> classes(cls.data_i32(), cls.data_i32() + cls.numel());
    const int64_t L = x01.dim(2) * x01.dim(3);
    const std::vector<float> Y = class_scores(*model, x01, Tensor(), classes);
    // The methods' maps and the tie cases (constant, all zeros, steps).
    std::vector<std::pair<std::string, std::string>> cases;
    for (const char* m : {"lcam", "gradcam", "gradcampp", "scorecam", "rise"}) cases.push_back({std::string("sm/") + m, std::string("adic/") + m});
    for (const char* t : {"const", "zeros", "steps"}) cases.push_back({std::string("ties/") + t + "/map", std::string("ties/") + t});
    for (const auto& [map_name, group] : cases) {
      CAPTURE(group);
      const Tensor sm = ref.read(map_name, true);  // the map rounded to float32, as the reference
      for (int keep : {100, 50, 15}) {
        CAPTURE(keep);
        const std::string g = group + "/p" + std::to_string(keep);
        Tensor t = Tensor::empty({x01.dim(0), 1, x01.dim(2), x01.dim(3)});
        for (int64_t n = 0; n < x01.dim(0); ++n) keep_top(t.data() + n * L, sm.data() + n * L, L, keep);
        if (ref.has(g + "/thresholded"))
          CHECK(t.to_vector() == ref.read(g + "/thresholded", true).to_vector());
        const std::vector<float> O = class_scores(*model, x01, t, classes);
        check_close("Y", Y, to_double(ref.read(g + "/Y", true)), 1e-5);
        check_close("O", O, to_double(ref.read(g + "/O", true)), 1e-5);
        Adic a;
        for (size_t n = 0; n < O.size(); ++n) a.add(Y[n], O[n]);
        CHECK(a.average_drop() == doctest::Approx(ref.read(g + "/AD", true).to_vector()[0]).epsilon(1e-4));
        CHECK(a.increase_in_confidence() == doctest::Approx(ref.read(g + "/IC", true).to_vector()[0]));
      }
    }
  }
}

}  // TEST_SUITE

TEST_SUITE("cams") {

TEST_CASE("Score-CAM and RISE match PyTorch (masks from the reference's grids and shifts)") {
  for (const char* arch : {"vgg16", "resnet50"}) {
    CAPTURE(arch);
    h5::Reader ref(lcam::test::fixture(std::string("cam_") + arch + ".ref.h5"));
    auto model = load_model(lcam::test::fixture(ref.attr_string("weights").value()), arch, Device::CPU);
    Tensor x01 = ref.read("x01", true), cls = ref.read_i32("classes");
    const std::vector<int> classes(cls.data_i32(), cls.data_i32() + cls.numel());
    Tensor w;
    Tensor sc = score_cam(*model, x01, classes, 16, &w);
    check_close("score-cam weights", w.to_vector(), to_double(ref.read("scorecam/weights", true)), 1e-5);
    check_close("score-cam saliency", sc.to_vector(), to_double(ref.read("sm/scorecam", true)), 1e-4);
    Tensor sh = ref.read_i32("rise/shifts");
    std::vector<std::pair<int, int>> shifts;
    for (int64_t i = 0; i < sh.dim(0); ++i) shifts.push_back({sh.data_i32()[2 * i], sh.data_i32()[2 * i + 1]});
    Tensor masks = rise_masks(ref.read("rise/grids", true), shifts, 64, 64);
    check_close("rise masks", masks.to_vector(), to_double(ref.read("rise/masks", true)), 1e-6);
    check_close("rise saliency", rise(*model, x01, classes, masks, 16).to_vector(), to_double(ref.read("sm/rise", true)), 1e-4);
  }
  Tensor drawn = rise_masks(10, 7, 0.5f, 224, 224, 3);
  CHECK(drawn.shape() == std::vector<int64_t>{10, 1, 224, 224});
  CHECK(drawn.to_vector() == rise_masks(10, 7, 0.5f, 224, 224, 3).to_vector());
}

}  // TEST_SUITE

TEST_SUITE("cams") {

TEST_CASE("localization: pointing game and energy in box, ties to the first maximum") {
  // 4x3 map (h=3, w=4), box covering columns 1..2 of rows 0..1.
  const Box box{1, 0, 3, 2};
  Localization loc;
  const float inside_max[12] = {0, 0, 5, 0,  //
                                0, 1, 0, 0,  //
                                2, 0, 0, 2};
  loc.add(inside_max, 3, 4, box);
  CHECK(loc.hits == 1);
  CHECK(loc.energy_sum == doctest::Approx(6.0 / 10.0));
  // Two equal maxima: the first in row-major order (outside the box) decides.
  const float tie[12] = {3, 0, 0, 0,  //
                         0, 0, 3, 0,  //
                         0, 0, 0, 0};
  loc.add(tie, 3, 4, box);
  CHECK(loc.hits == 1);
  CHECK(loc.energy_sum == doctest::Approx(0.6 + 0.5));
  const float zero[12] = {};
  loc.add(zero, 3, 4, box);  // no energy anywhere: counts as 0, and its "maximum" is pixel 0
  CHECK(loc.count == 3);
  CHECK(loc.hits == 1);
  CHECK(loc.pointing_game() == doctest::Approx(100.0 / 3));
  CHECK(loc.energy() == doctest::Approx(100.0 * 1.1 / 3));
}

TEST_CASE("box files: parsed by path; malformed lines named by file and line") {
  const std::string dir = std::filesystem::temp_directory_path().string();
  const std::string good = dir + "/lcam_boxes_good.txt", bad = dir + "/lcam_boxes_bad.txt";
  std::ofstream(good) << "# comment\nimages/a.png 1 2 30 40\n\nimages/b.png 0 0 5 5\n";
  const auto boxes = read_boxes(good);
  REQUIRE(boxes.size() == 2);
  CHECK(boxes.at("images/a.png").x0 == 1);
  CHECK(boxes.at("images/a.png").y1 == 40);
  for (const char* line : {"a.png 1 2 30\n", "a.png 5 2 3 40\n", "a.png 1 2 30 40 9\n", "a.png -1 0 3 3\n"}) {
    CAPTURE(line);
    std::ofstream(bad) << "ok.png 0 0 1 1\n" << line;
    try {
      read_boxes(bad);
      FAIL("no error");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find(bad + ":2:") != std::string::npos);
    }
  }
  // Boxes are in crop pixels: one reaching past the crop is kept, one wholly outside is refused.
  std::ofstream(bad) << "in.png 0 0 64 64\npart.png 60 10 300 20\nout.png 10 64 20 90\n";
  CHECK(read_boxes(bad).size() == 3);
  try {
    read_boxes(bad, 64);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find(bad + ":3: box 10 64 20 90 lies wholly outside the 64x64 crop") != std::string::npos);
  }
  std::ofstream(bad) << "in.png 0 0 64 64\npart.png 63 63 300 300\n";
  CHECK(read_boxes(bad, 64).size() == 2);
  std::filesystem::remove(good);
  std::filesystem::remove(bad);
}

}  // TEST_SUITE
