// test_image.cpp — doctest suite "image": decoding (JPEG bit-exact with Pillow, format by content,
// truncated and corrupt files), Pillow-exact bilinear resize (AVX2 and portable kernels), regions
// of a resize, torchvision's Resize/CenterCrop/ToTensor and the fused eval transform, flips, crops
// and PNG writing, against the expectations that tools/make_image_fixture.py recorded from Pillow 9
// / torchvision 0.14 in tests/fixtures/image/, and against checksums of Pillow's results on the 100
// photos of ../shared/data/imagenet-sample (skipped with a message when that directory is absent).
// Deliberately omits: speed measurements (lcam bench-data) and formats other than JPEG/PNG.
#include <doctest/doctest.h>  // TEST_SUITE, TEST_CASE, CHECK, REQUIRE
#include <zlib.h>              // crc32 (PNG headers)

#include <algorithm>   // std::max, std::clamp, std::equal
#include <atomic>      // std::atomic counter for unique temp dir names
#include <cstdint>     // uint8_t, uint32_t, uint64_t
#include <cstdlib>     // std::abs
#include <filesystem>  // temp directories, exists
#include <fstream>     // reading the index, writing broken files
#include <iterator>    // std::istreambuf_iterator
#include <map>         // the per-CPU outcomes of the format fixtures
#include <random>      // std::random_device (temp dir names), std::mt19937 (random regions)
#include <sstream>     // std::istringstream for index lines
#include <string>      // std::string
#include <vector>      // std::vector

#include <stb_image_write.h>  // BMP and TGA files for the truncation test

#include "engine/common.h"   // lcam::InputError
#include "loaders/image.h"   // the functions under test
#include "loaders/yuv.h"     // lcam::yuv_to_rgb: AVIF's conversion, without libavif
#include "tests/test_util.h" // lcam::test::fixture, lcam::test::source_dir

namespace fs = std::filesystem;
using lcam::ImageU8;

namespace {

std::string fixture(const std::string& name) {
  return lcam::test::fixture("image/" + name);
}

// The index's lines of one kind, split into words (index.txt: Pillow 9; index.pillow13.txt: the
// procedural kinds as Pillow 13 resizes them).
std::vector<std::vector<std::string>> index_lines(const std::string& kind, const std::string& file = "index.txt") {
  std::ifstream f(fixture(file));
  REQUIRE_MESSAGE(f.good(), "missing " << fixture(file));
  std::vector<std::vector<std::string>> out;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ss(line);
    std::vector<std::string> words;
    for (std::string w; ss >> w;) words.push_back(w);
    if (!words.empty() && words[0] == kind) out.push_back(words);
  }
  return out;
}

// The expectation files and the Pillow whose resize each one holds.
const std::pair<const char*, lcam::PillowResize> kPillowIndexes[] = {{"index.txt", lcam::PillowResize::k12},
                                                                     {"index.pillow13.txt", lcam::PillowResize::k13}};

// Sets the Pillow version for a scope; the previous one comes back on every path.
struct PillowScope {
  lcam::PillowResize before;
  explicit PillowScope(lcam::PillowResize v) : before(lcam::set_pillow_resize(v)) {}
  ~PillowScope() { lcam::set_pillow_resize(before); }
};

// Same as tools/make_image_fixture.py: lowbias32.
uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x7FEB352Du;
  h ^= h >> 15;
  h *= 0x846CA68Bu;
  h ^= h >> 16;
  return h;
}

// Same as procedural() in tools/make_image_fixture.py (noise 17, random blocks period 7).
ImageU8 procedural(int w, int h, uint32_t seed, int noise = 17, int period = 7) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) {
        uint32_t n = mix32(seed * 0x9E3779B9u +
                           (static_cast<uint32_t>(y) * static_cast<uint32_t>(w) +
                            static_cast<uint32_t>(x)) * 3u + static_cast<uint32_t>(c));
        long long base = c == 0   ? x * 255LL / std::max(w - 1, 1)
                         : c == 1 ? y * 255LL / std::max(h - 1, 1)
                                  : (x + y) * 255LL / std::max(w + h - 2, 1);
        long long v = base + static_cast<long long>(n % static_cast<uint32_t>(noise)) - noise / 2;
        if (((x >> 4) + (y >> 4)) % period == 0) v = n >> 24;
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        img.rgb[(static_cast<size_t>(y) * w + x) * 3 + c] = static_cast<uint8_t>(v);
      }
  return img;
}

// Same as sum64() in tools/make_image_fixture.py.
uint64_t sum64(const std::vector<uint8_t>& bytes) {
  uint64_t s = 0;
  for (uint64_t i = 0; i < bytes.size(); ++i) {
    uint64_t z = i + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    s += (static_cast<uint64_t>(bytes[i]) + 1) * (z | 1);
  }
  return s;
}

int max_abs_diff(const ImageU8& a, const ImageU8& b) {
  if (a.width != b.width || a.height != b.height || a.rgb.size() != b.rgb.size()) return 1 << 20;
  int m = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) m = std::max(m, std::abs(a.rgb[i] - b.rgb[i]));
  return m;
}

// A fresh directory under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = fs::temp_directory_path() / ("lcam_test_image_" + std::to_string(std::random_device{}()) +
                                        "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void write_bytes(const std::string& path, const uint8_t* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(n));
}

// An image whose pixel (x, y) is (x & 255, y & 255, (x >> 8) * 16 + (y >> 8)) + a small offset so
// that no pixel is zero (zero marks padding).
ImageU8 coordinate_image(int w, int h) {
  ImageU8 img;
  img.width = w;
  img.height = h;
  img.rgb.resize(static_cast<size_t>(w) * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &img.rgb[(static_cast<size_t>(y) * w + x) * 3];
      p[0] = static_cast<uint8_t>(x & 255);
      p[1] = static_cast<uint8_t>(y & 255);
      p[2] = static_cast<uint8_t>(1 + (x >> 8) * 16 + (y >> 8));
    }
  return img;
}

const uint8_t* pixel(const ImageU8& img, int x, int y) {
  return &img.rgb[(static_cast<size_t>(y) * img.width + x) * 3];
}

// Checks that decoding `path` throws InputError whose one-line message starts with the path.
void check_decode_error(const std::string& path) {
  CAPTURE(path);
  bool thrown = false;
  try {
    (void)lcam::decode_image(path);
  } catch (const lcam::InputError& e) {
    thrown = true;
    std::string msg = e.what();
    CAPTURE(msg);
    CHECK(msg.rfind(path + ": ", 0) == 0);
    CHECK(msg.size() > path.size() + 2);
    CHECK(msg.find('\n') == std::string::npos);
  }
  CHECK(thrown);
}

}  // namespace

TEST_SUITE("image") {
  TEST_CASE("resize of fixture images is bit-exact with Pillow's BILINEAR") {
    auto lines = index_lines("resize");
    REQUIRE(lines.size() >= 12);
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      CAPTURE(l[2] + "x" + l[3]);
      ImageU8 in = lcam::decode_image(fixture(l[1]));
      ImageU8 out = lcam::resize_bilinear_pil(in, std::stoi(l[2]), std::stoi(l[3]));
      REQUIRE(out.width == std::stoi(l[2]));
      REQUIRE(out.height == std::stoi(l[3]));
      if (l.size() > 5) CHECK(max_abs_diff(out, lcam::decode_image(fixture(l[5]))) == 0);
      CHECK(sum64(out.rgb) == std::stoull(l[4]));
    }
  }

  TEST_CASE("resize sweep over sizes (up, down, one pass, 1-pixel sides) matches Pillow 9 and Pillow 13") {
    for (const auto& [file, version] : kPillowIndexes) {
      CAPTURE(file);
      auto lines = index_lines("sweep", file);
      REQUIRE(lines.size() >= 100);
      const PillowScope pillow(version);
      // Once with the AVX2 kernels (where the CPU has them) and once with the portable loops.
      for (bool simd : {true, false}) {
        CAPTURE(simd);
        const bool before = lcam::set_resize_simd(simd);
        int mismatches = 0;
        for (const auto& l : lines) {
          const int w = std::stoi(l[1]), h = std::stoi(l[2]), ow = std::stoi(l[4]), oh = std::stoi(l[5]);
          ImageU8 out = lcam::resize_bilinear_pil(procedural(w, h, std::stoul(l[3])), ow, oh);
          REQUIRE(out.width == ow);
          REQUIRE(out.height == oh);
          if (sum64(out.rgb) != std::stoull(l[6])) {
            ++mismatches;
            MESSAGE("mismatch resizing " << w << "x" << h << " to " << ow << "x" << oh);
          }
        }
        lcam::set_resize_simd(before);
        CHECK(mismatches == 0);
      }
    }
    // The two Pillows differ where the height shrinks more than twice as much as the width: the
    // second file is not the first one again.
    const auto a = index_lines("sweep"), b = index_lines("sweep", "index.pillow13.txt");
    REQUIRE(a.size() == b.size());
    int differ = 0;
    for (size_t i = 0; i < a.size(); ++i) differ += a[i] != b[i];
    CHECK(differ >= 20);
  }

  TEST_CASE("resize_bilinear_pil_region is the same rectangle of the full resize") {
    std::mt19937 rng(77);
    for (int n = 0; n < 60; ++n) {
      const int w = 1 + static_cast<int>(rng() % 300), h = 1 + static_cast<int>(rng() % 300);
      const int ow = n % 3 == 0 ? w : 1 + static_cast<int>(rng() % 320);  // some one-pass cases
      const int oh = n % 5 == 0 ? h : 1 + static_cast<int>(rng() % 320);
      const int rw = 1 + static_cast<int>(rng() % ow), rh = 1 + static_cast<int>(rng() % oh);
      const int left = static_cast<int>(rng() % (ow - rw + 1)), top = static_cast<int>(rng() % (oh - rh + 1));
      CAPTURE(w);
      CAPTURE(h);
      CAPTURE(ow);
      CAPTURE(oh);
      ImageU8 img = procedural(w, h, 3000 + n);
      for (const auto& [file, version] : kPillowIndexes) {  // both pass orders
        const PillowScope pillow(version);
        ImageU8 want = lcam::crop(lcam::resize_bilinear_pil(img, ow, oh), top, left, rh, rw);
        for (bool simd : {true, false}) {
          const bool before = lcam::set_resize_simd(simd);
          ImageU8 got = lcam::resize_bilinear_pil_region(img, ow, oh, left, top, rw, rh);
          lcam::set_resize_simd(before);
          CHECK(max_abs_diff(got, want) == 0);
        }
      }
    }
  }

  TEST_CASE("resize_shorter_side is torchvision Resize(int)") {
    auto lines = index_lines("shorter");
    REQUIRE(lines.size() >= 6);
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      ImageU8 out = lcam::resize_shorter_side(lcam::decode_image(fixture(l[1])), std::stoi(l[2]));
      CHECK(out.width == std::stoi(l[3]));
      CHECK(out.height == std::stoi(l[4]));
      CHECK(sum64(out.rgb) == std::stoull(l[5]));
    }
    // int(size * long / short) truncates: 256 * 500 / 333 = 384.38..., 256 * 640 / 427 = 383.7...
    CHECK(lcam::resize_shorter_side(procedural(500, 333, 1), 256).width == 384);
    CHECK(lcam::resize_shorter_side(procedural(427, 640, 1), 256).height == 383);
    ImageU8 same = procedural(256, 300, 2);
    CHECK(lcam::resize_shorter_side(same, 256).rgb == same.rgb);  // Pillow copies at equal size
  }

  TEST_CASE("eval transform matches torchvision on every pixel") {
    auto lines = index_lines("eval");
    REQUIRE(lines.size() >= 6);
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      CAPTURE(l[2]);
      const int resize = std::stoi(l[2]), crop = std::stoi(l[3]);
      std::vector<float> got(static_cast<size_t>(3) * crop * crop, -1.f);
      lcam::load_eval_image(fixture(l[1]), got.data(), resize, crop);
      ImageU8 want = lcam::decode_image(fixture(l[4]));
      REQUIRE(want.width == crop);
      REQUIRE(want.height == crop);
      const size_t plane = static_cast<size_t>(crop) * crop;
      size_t bad = 0;
      for (size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c)
          if (got[c * plane + i] != want.rgb[3 * i + c] / 255.f) ++bad;
      CHECK(bad == 0);
    }
  }

  TEST_CASE("eval transform of noisy images written with write_png matches torchvision") {
    TempDir dir;
    for (const auto& [file, version] : kPillowIndexes) {
      CAPTURE(file);
      auto lines = index_lines("evalproc", file);
      REQUIRE(lines.size() >= 7);
      const PillowScope pillow(version);
      for (const auto& l : lines) {
        const int w = std::stoi(l[1]), h = std::stoi(l[2]);
        const int resize = std::stoi(l[4]), crop = std::stoi(l[5]);
        CAPTURE(w);
        CAPTURE(h);
        CAPTURE(resize);
        const std::string path = dir.file("proc.png");
        lcam::write_png(path, procedural(w, h, std::stoul(l[3])));
        std::vector<float> got(static_cast<size_t>(3) * crop * crop);
        lcam::load_eval_image(path, got.data(), resize, crop);
        // Back to HWC bytes; every value must be exactly k / 255.f.
        const size_t plane = static_cast<size_t>(crop) * crop;
        std::vector<uint8_t> hwc(3 * plane);
        size_t inexact = 0;
        for (size_t i = 0; i < plane; ++i)
          for (int c = 0; c < 3; ++c) {
            float v = got[c * plane + i];
            int k = static_cast<int>(v * 255.f + 0.5f);
            if (k < 0 || k > 255 || v != k / 255.f) ++inexact;
            hwc[3 * i + c] = static_cast<uint8_t>(std::clamp(k, 0, 255));
          }
        CHECK(inexact == 0);
        CHECK(sum64(hwc) == std::stoull(l[6]));
      }
    }
  }

  TEST_CASE("decoding expands grey, drops alpha and expands palettes like convert('RGB')") {
    auto lines = index_lines("convert");
    REQUIRE(lines.size() == 4);
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      ImageU8 got = lcam::decode_image(fixture(l[1]));
      ImageU8 want = lcam::decode_image(fixture(l[2]));
      CHECK(got.width == 40);
      CHECK(got.height == 30);
      CHECK(max_abs_diff(got, want) == 0);
    }
    // Grey really is replicated into three equal channels.
    ImageU8 g = lcam::decode_image(fixture("grey.png"));
    for (size_t i = 0; i < g.rgb.size(); i += 3) {
      CHECK(g.rgb[i] == g.rgb[i + 1]);
      CHECK(g.rgb[i] == g.rgb[i + 2]);
    }
  }

  TEST_CASE("JPEG (4:2:0, 4:2:2, 4:4:4, progressive, CMYK, grey, damaged) decodes exactly like Pillow") {
    auto lines = index_lines("jpeg");
    REQUIRE(lines.size() == 7);
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      ImageU8 got = lcam::decode_image(fixture(l[1]));
      ImageU8 want = lcam::decode_image(fixture(l[2]));
      REQUIRE(got.width == 83);
      REQUIRE(got.height == 61);
      CHECK(max_abs_diff(got, want) <= std::stoi(l[3]));
      CHECK(std::stoi(l[3]) == 0);
      std::vector<uint8_t> bytes = read_bytes(fixture(l[1]));
      CHECK(lcam::is_jpeg(bytes.data(), bytes.size()));
      CHECK(lcam::decode_jpeg_memory(bytes.data(), bytes.size(), l[1]).rgb == got.rgb);
    }
    // Grey stays grey (three equal channels), as convert("RGB") replicates L.
    ImageU8 g = lcam::decode_image(fixture("small_grey.jpg"));
    for (size_t i = 0; i < g.rgb.size(); i += 3) {
      CHECK(g.rgb[i] == g.rgb[i + 1]);
      CHECK(g.rgb[i] == g.rgb[i + 2]);
    }
  }

  TEST_CASE("decode_jpeg_window gives exactly the window's pixels of the full decode") {
    // Checks the window of `bytes` against the full decode; `got` is reused from call to call.
    ImageU8 got = lcam::hflip(lcam::decode_image(fixture("img_97x131.png")));
    auto check_window = [&](const std::vector<uint8_t>& bytes, const std::string& name, const ImageU8& full,
                            lcam::JpegWindow want) {
      CAPTURE(name);
      CAPTURE(want.x0);
      CAPTURE(want.x1);
      CAPTURE(want.y0);
      CAPTURE(want.y1);
      const int W = full.width, H = full.height;
      int seen_w = -1, seen_h = -1, out_x0 = -1, full_w = -1, full_h = -1;
      lcam::JpegWindow win;
      lcam::decode_jpeg_window(
          bytes.data(), bytes.size(), name,
          [&](int w, int h) {
            seen_w = w;
            seen_h = h;
            return want;
          },
          &got, &win, &out_x0, &full_w, &full_h);
      CHECK(seen_w == W);
      CHECK(seen_h == H);
      CHECK(full_w == W);
      CHECK(full_h == H);
      const int x0 = std::clamp(want.x0, 0, W - 1), x1 = std::clamp(want.x1, x0 + 1, W);
      const int y0 = std::clamp(want.y0, 0, H - 1), y1 = std::clamp(want.y1, y0 + 1, H);
      CHECK(win.x0 == x0);
      CHECK(win.x1 == x1);
      CHECK(win.y0 == y0);
      CHECK(win.y1 == y1);
      REQUIRE(out_x0 >= 0);
      REQUIRE(out_x0 <= x0);
      REQUIRE(out_x0 + got.width >= x1);
      REQUIRE(got.height == y1 - y0);
      size_t bad = 0;
      for (int y = y0; y < y1; ++y)
        for (int x = x0; x < x1; ++x)
          for (int c = 0; c < 3; ++c)
            if (pixel(got, x - out_x0, y - y0)[c] != pixel(full, x, y)[c]) ++bad;
      CHECK(bad == 0);
    };
    for (const char* name : {"small.jpg", "small_422.jpg", "small_444.jpg", "small_progressive.jpg",
                             "small_cmyk.jpg", "small_grey.jpg", "small_corrupt.jpg"}) {
      std::vector<uint8_t> bytes = read_bytes(fixture(name));
      const ImageU8 full = lcam::decode_jpeg_memory(bytes.data(), bytes.size(), name);
      const int W = full.width, H = full.height;
      for (lcam::JpegWindow want :
           {lcam::JpegWindow{0, W, 0, H}, lcam::JpegWindow{0, W, 0, 1}, lcam::JpegWindow{0, W, H - 1, H},
            lcam::JpegWindow{0, 1, 0, H}, lcam::JpegWindow{W - 1, W, 0, H}, lcam::JpegWindow{16, 32, 8, 16},
            lcam::JpegWindow{17, 18, 17, 18}, lcam::JpegWindow{5, 70, 5, 40}, lcam::JpegWindow{31, W, 30, H},
            lcam::JpegWindow{-4, 1000, -4, 1000}})
        check_window(bytes, name, full, want);
    }
    // Real photos (4:4:4 and 4:2:0, 500 pixels wide), a few windows each.
    const std::string dir = lcam::test::shared_dir() + "/data/imagenet-sample";
    if (fs::is_directory(dir)) {
      int n = 0;
      for (const auto& l : index_lines("imagenet")) {
        if (n++ % 10 != 0) continue;
        std::vector<uint8_t> bytes = read_bytes(dir + "/" + l[1]);
        const ImageU8 full = lcam::decode_jpeg_memory(bytes.data(), bytes.size(), l[1]);
        const int W = full.width, H = full.height;
        for (lcam::JpegWindow want : {lcam::JpegWindow{W / 6, W - W / 6, H / 9, H - H / 7},
                                      lcam::JpegWindow{33, 34, H / 2, H / 2 + 3}, lcam::JpegWindow{0, W / 3, 0, H / 3},
                                      lcam::JpegWindow{W - 47, W, H - 9, H}})
          check_window(bytes, l[1], full, want);
      }
    } else {
      MESSAGE("skipped the photos: no " << dir);
    }
    const std::string text = "not a jpeg at all";
    CHECK_THROWS_AS(lcam::decode_jpeg_window(reinterpret_cast<const uint8_t*>(text.data()), text.size(), "t",
                                             [](int w, int h) { return lcam::JpegWindow{0, w, 0, h}; }, &got, nullptr,
                                             nullptr, nullptr, nullptr),
                    lcam::InputError);
  }

  TEST_CASE("eval transform of JPEGs (window decoding, region resize) matches torchvision") {
    auto lines = index_lines("evalsum");
    REQUIRE(lines.size() >= 21);
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      CAPTURE(l[2]);
      const int resize = std::stoi(l[2]), crop = std::stoi(l[3]);
      const size_t plane = static_cast<size_t>(crop) * crop;
      std::vector<float> got(3 * plane, -1.f);
      lcam::load_eval_image(fixture(l[1]), got.data(), resize, crop);
      // The step-by-step pipeline gives the same floats.
      std::vector<float> slow(3 * plane, -2.f);
      lcam::to_chw_float(lcam::center_crop(lcam::resize_shorter_side(lcam::decode_image(fixture(l[1])), resize), crop),
                         slow.data());
      CHECK(got == slow);
      std::vector<uint8_t> hwc(3 * plane);
      size_t inexact = 0;
      for (size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c) {
          const float v = got[c * plane + i];
          const int k = static_cast<int>(v * 255.f + 0.5f);
          if (k < 0 || k > 255 || v != k / 255.f) ++inexact;
          hwc[3 * i + c] = static_cast<uint8_t>(std::clamp(k, 0, 255));
        }
      CHECK(inexact == 0);
      CHECK(sum64(hwc) == std::stoull(l[4]));
    }
  }

  TEST_CASE("truncated JPEGs fail, naming the path, exactly where Pillow fails") {
    TempDir dir;
    auto lines = index_lines("cut");
    REQUIRE(lines.size() >= 20);
    int ok_cases = 0;
    for (const auto& l : lines) {
      std::vector<uint8_t> bytes = read_bytes(fixture(l[1]));
      const size_t keep = std::stoul(l[2]);
      REQUIRE(keep <= bytes.size());
      const std::string path = dir.file("cut_" + l[2] + "_" + l[1]);
      write_bytes(path, bytes.data(), keep);
      CAPTURE(path);
      std::vector<float> x(3 * 224 * 224);
      if (l[3] == "ERR") {
        check_decode_error(path);
        bool thrown = false;
        try {
          lcam::load_eval_image(path, x.data());
        } catch (const lcam::InputError& e) {
          thrown = true;
          CHECK(std::string(e.what()).rfind(path + ": ", 0) == 0);
        }
        CHECK(thrown);
      } else {
        ++ok_cases;
        CHECK(sum64(lcam::decode_image(path).rgb) == std::stoull(l[4]));
        lcam::load_eval_image(path, x.data());
      }
    }
    CHECK(ok_cases >= 3);  // the complete files
    // The message says what happened.
    std::vector<uint8_t> bytes = read_bytes(fixture("small.jpg"));
    try {
      (void)lcam::decode_image_memory(bytes.data(), bytes.size() / 2, "half.jpg");
      FAIL("no exception");
    } catch (const lcam::InputError& e) {
      CHECK(std::string(e.what()).find("truncated") != std::string::npos);
    }
  }

  TEST_CASE("the format comes from the content, not from the file name") {
    TempDir dir;
    auto copy_as = [&](const std::string& src, const std::string& name) {
      std::vector<uint8_t> bytes = read_bytes(fixture(src));
      const std::string path = dir.file(name);
      write_bytes(path, bytes.data(), bytes.size());
      return path;
    };
    const ImageU8 jpeg_want = lcam::decode_image(fixture("small_pil.png"));
    const ImageU8 png_want = lcam::decode_image(fixture("img_97x131.png"));
    // A JPEG named .png / without extension, a PNG named .JPEG (as some ImageNet "JPEGs" are).
    for (const char* name : {"photo.png", "photo", "photo.PNG.gif"})
      CHECK(max_abs_diff(lcam::decode_image(copy_as("small.jpg", name)), jpeg_want) == 0);
    for (const char* name : {"n01440764_fake.JPEG", "fake.jpg"})
      CHECK(max_abs_diff(lcam::decode_image(copy_as("img_97x131.png", name)), png_want) == 0);
    // The eval transform too: same floats as for the correctly named files.
    std::vector<float> a(3 * 224 * 224), b(3 * 224 * 224);
    lcam::load_eval_image(fixture("small.jpg"), a.data());
    lcam::load_eval_image(copy_as("small.jpg", "lying.png"), b.data());
    CHECK(a == b);
    lcam::load_eval_image(fixture("img_97x131.png"), a.data());
    lcam::load_eval_image(copy_as("img_97x131.png", "lying.JPEG"), b.data());
    CHECK(a == b);
  }

  TEST_CASE("ImageNet photos: decode and eval transform are bit-exact with Pillow + torchvision") {
    const std::string dir = lcam::test::shared_dir() + "/data/imagenet-sample";
    if (!fs::is_directory(dir)) {
      MESSAGE("skipped: no " << dir);
      return;
    }
    auto lines = index_lines("imagenet");
    REQUIRE(lines.size() == 100);
    int decode_bad = 0, eval_bad = 0, missing = 0;
    const size_t plane = 224 * 224;
    std::vector<float> x(3 * plane);
    std::vector<uint8_t> hwc(3 * plane);
    for (const auto& l : lines) {
      const std::string path = dir + "/" + l[1];
      if (!fs::exists(path)) {
        ++missing;
        MESSAGE("missing " << path);
        continue;
      }
      ImageU8 img = lcam::decode_image(path);
      if (img.width != std::stoi(l[2]) || img.height != std::stoi(l[3]) || sum64(img.rgb) != std::stoull(l[4])) {
        ++decode_bad;
        MESSAGE("decode differs from Pillow: " << l[1]);
      }
      lcam::load_eval_image(path, x.data());
      for (size_t i = 0; i < plane; ++i)
        for (int c = 0; c < 3; ++c)
          hwc[3 * i + c] = static_cast<uint8_t>(std::clamp(static_cast<int>(x[c * plane + i] * 255.f + 0.5f), 0, 255));
      if (sum64(hwc) != std::stoull(l[5])) {
        ++eval_bad;
        MESSAGE("eval transform differs from torchvision: " << l[1]);
      }
    }
    CHECK(missing == 0);
    CHECK(decode_bad == 0);
    CHECK(eval_bad == 0);
  }

  TEST_CASE("decode errors are InputError naming the path") {
    TempDir dir;
    check_decode_error(dir.file("does_not_exist.jpg"));
    check_decode_error(dir.path.string());  // a directory
    const std::string empty = dir.file("empty.png");
    write_bytes(empty, nullptr, 0);
    check_decode_error(empty);
    const std::string text = dir.file("notes.jpg");
    const std::string words = "this is a text file with a .jpg name\n";
    write_bytes(text, reinterpret_cast<const uint8_t*>(words.data()), words.size());
    check_decode_error(text);
    for (const char* src : {"img_97x131.png", "small.jpg", "small_progressive.jpg"}) {
      std::vector<uint8_t> bytes = read_bytes(fixture(src));
      REQUIRE(bytes.size() > 200);
      for (size_t keep : {bytes.size() / 2, bytes.size() / 5, size_t{40}}) {
        const std::string cut = dir.file(std::string("truncated_") + std::to_string(keep) + "_" + src);
        write_bytes(cut, bytes.data(), keep);
        check_decode_error(cut);
      }
    }
    // PNG headers Pillow refuses, each named: one over Pillow's limit (more than 2 x 89478485
    // pixels, where Pillow raises DecompressionBombError) is "too large" once the image data
    // begins, one of an unknown bit depth is no image Pillow knows, one whose IHDR's CRC is wrong
    // is a broken file, one that ends after its header has no image.
    const auto png_header = [](uint32_t w, uint32_t h, uint8_t depth, bool good_crc = true) {
      std::vector<uint8_t> b = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
      for (uint32_t v : {w, h})
        for (int k = 3; k >= 0; --k) b.push_back(static_cast<uint8_t>(v >> (8 * k)));
      for (uint8_t v : {depth, uint8_t{2}, uint8_t{0}, uint8_t{0}, uint8_t{0}}) b.push_back(v);  // RGB, no interlace
      const uLong crc = crc32(0, b.data() + 12, 17) ^ (good_crc ? 0u : 1u);
      for (int k = 3; k >= 0; --k) b.push_back(static_cast<uint8_t>(crc >> (8 * k)));
      return b;
    };
    // The image data begins: an IDAT of `length` bytes (two given) after the header.
    const auto with_idat = [](std::vector<uint8_t> b, uint32_t length) {
      for (int k = 3; k >= 0; --k) b.push_back(static_cast<uint8_t>(length >> (8 * k)));
      for (uint8_t v : {uint8_t{'I'}, uint8_t{'D'}, uint8_t{'A'}, uint8_t{'T'}, uint8_t{0x78}, uint8_t{0xda}}) b.push_back(v);
      return b;
    };
    const auto png_error = [](const std::vector<uint8_t>& b) {
      try {
        (void)lcam::decode_image_memory(b.data(), b.size(), "h.png");
      } catch (const lcam::InputError& e) {
        return std::string(e.what());
      }
      return std::string("no exception");
    };
    CHECK(png_error(with_idat(png_header(20000, 20000, 8), 2)) == "h.png: image too large (20000x20000 pixels)");
    CHECK(png_error(with_idat(png_header(13000, 13766, 8), 2)) == "h.png: image too large (13000x13766 pixels)");
    CHECK(png_error(with_idat(png_header(64, 48, 7), 2)) == "h.png: PNG of an unknown bit depth and colour type (or no IHDR)");
    CHECK(png_error(with_idat(png_header(64, 48, 8, false), 2)) == "h.png: broken PNG file (bad checksum in IHDR)");
    CHECK(png_error(png_header(64, 48, 8)) == "h.png: truncated PNG (a chunk header cut short)");
    // A chunk that declares 2 GiB in a file of a few bytes: read 64 KiB at a time, as Pillow
    // reads it, so nothing allocates the 2 GiB; the data ends before the first row.
    CHECK(png_error(with_idat(png_header(64, 48, 8), 0x7fff0000u)) == "h.png: truncated PNG (image file is truncated)");
    // Sides near 2^32, whose product overflows 64 bits: still "too large".
    CHECK(png_error(with_idat(png_header(0xe2e2e2e2u, 0xe2e2e2e2u, 8), 2)) == "h.png: image too large (3806520034x3806520034 pixels)");
    // Pillow calls JPEG only what starts FF D8 FF: with fill bytes before the start marker, or
    // no third FF, it is no image at all (not one for a second JPEG decoder).
    for (const std::vector<uint8_t>& b : {std::vector<uint8_t>{0xff, 0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0},
                                          std::vector<uint8_t>{0xff, 0xd8, 0x00, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0}}) {
      CHECK(png_error(b).rfind("h.png: not a decodable image (", 0) == 0);
    }
    // From memory, the given name is the one reported.
    try {
      (void)lcam::decode_image_memory(reinterpret_cast<const uint8_t*>(words.data()), words.size(),
                                      "archive.tar:img.jpg");
      FAIL("no exception");
    } catch (const lcam::InputError& e) {
      CHECK(std::string(e.what()).rfind("archive.tar:img.jpg: ", 0) == 0);
    }
  }

  TEST_CASE("truncated BMP, TGA and PNM files are refused as Pillow refuses them; a PNG that ends after its image data is read") {
    // A 13x5 RGB image, written whole by stb_image_write (BMP, TGA raw and run-length) and by
    // hand (binary PPM and PGM): each whole file decodes to its pixels, and each one cut short
    // inside its pixel data is "truncated" (stb_image alone would fill the rest with zeros).
    lcam::ImageU8 img;
    img.width = 13;
    img.height = 5;
    for (int i = 0; i < 13 * 5 * 3; ++i) img.rgb.push_back(static_cast<uint8_t>(i * 37 % 256));
    auto encoded = [&](const std::string& format) {
      std::vector<uint8_t> out;
      const auto sink = [](void* ctx, void* data, int n) {
        auto* o = static_cast<std::vector<uint8_t>*>(ctx);
        o->insert(o->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + n);
      };
      const std::string f = format;
      if (f == "ppm" || f == "pgm") {
        const std::string head = (f == "ppm" ? "P6\n# a comment\n13 5\n255\n" : "P5 13 5 255\n");
        out.assign(head.begin(), head.end());
        for (size_t i = 0; i < img.rgb.size(); i += (f == "ppm" ? 1 : 3)) out.push_back(img.rgb[i]);
      } else {
        stbi_write_tga_with_rle = f == "tga-rle";
        const int ok = f == "bmp" ? stbi_write_bmp_to_func(sink, &out, 13, 5, 3, img.rgb.data())
                                  : stbi_write_tga_to_func(sink, &out, 13, 5, 3, img.rgb.data());
        stbi_write_tga_with_rle = 1;
        REQUIRE(ok);
      }
      return out;
    };
    const auto decode = [](const std::vector<uint8_t>& b) { return lcam::decode_image_memory(b.data(), b.size(), "t"); };
    for (const std::string format : {"bmp", "tga", "tga-rle", "ppm", "pgm"}) {
      CAPTURE(format);
      const std::vector<uint8_t> whole = encoded(format);
      const lcam::ImageU8 back = decode(whole);
      CHECK(back.width == 13);
      CHECK(back.height == 5);
      if (format != "pgm") CHECK(back.rgb == img.rgb);
      for (size_t cut : {size_t{1}, size_t{2}, size_t{7}, whole.size() / 3}) {
        CAPTURE(cut);
        const std::vector<uint8_t> part(whole.begin(), whole.end() - static_cast<std::ptrdiff_t>(cut));
        if (format == "bmp" && cut == 1) {  // only the last row's padding byte is missing: Pillow reads it
          CHECK(decode(part).rgb == img.rgb);
          continue;
        }
        try {
          (void)decode(part);
          FAIL("no exception");
        } catch (const lcam::InputError& e) {
          CHECK(std::string(e.what()).rfind("t: ", 0) == 0);
        }
      }
    }
    // A run-length TGA header declaring 3000x3000 pixels, with 10 bytes of data: refused before
    // 27 MB are allocated and decoded from nothing.
    std::vector<uint8_t> tga = {0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb8, 0x0b, 0xb8, 0x0b, 24, 0};
    tga.resize(tga.size() + 10, 0xff);
    try {
      (void)decode(tga);
      FAIL("no exception");
    } catch (const lcam::InputError& e) {
      CHECK(std::string(e.what()) == "t: truncated or corrupt image (3000x3000 pixels in 28 bytes)");
    }
    // A PNM header without pixels: no image, not an empty one. A magic glued to other bytes is
    // not PNM's (Pillow reads the magic up to the first whitespace).
    for (const std::string head : {"P6 0 5 255\n", "P5 7 0 255\n", "P6\xbe+"}) {
      const std::vector<uint8_t> b(head.begin(), head.end());
      try {
        (void)decode(b);
        FAIL("no exception");
      } catch (const lcam::InputError& e) {
        CHECK(std::string(e.what()).rfind(head[2] == '\xbe' ? "t: not a decodable image" : "t: image of ", 0) == 0);
      }
    }
    // Pillow reads a PNG that ends after its image data: inside IEND (1, 5 bytes short), without
    // IEND (12), inside the last image chunk's CRC (14), and inside the zlib stream's adler-32
    // (17, 20), which the last row does not need; so does lcam, with the same pixels. Cut inside
    // the last rows' data (25), it is refused.
    const std::vector<uint8_t> png = read_bytes(fixture("palette.png"));
    for (size_t cut : {size_t{1}, size_t{5}, size_t{12}, size_t{14}, size_t{17}, size_t{20}, size_t{25}}) {
      CAPTURE(cut);
      const std::vector<uint8_t> short_png(png.begin(), png.end() - static_cast<std::ptrdiff_t>(cut));
      if (cut < 25) {
        CHECK(decode(short_png).rgb == decode(png).rgb);
      } else {
        CHECK_THROWS_AS((void)decode(short_png), lcam::InputError);
      }
    }
  }

  TEST_CASE("image formats: PBM/PGM/PPM, GIF, BMP, ICO, CUR, TGA, WebP, TIFF, PSD, PNG, JPEG 2000, PCX, DCX and AVIF decode or fail exactly as Pillow 13") {
    // tests/fixtures/image/formats/index.txt (tools/make_format_fixture.py): each file's outcome under
    // Image.open(f).convert("RGB"), and files over Pillow's read blocks (1 MiB for PNM, 64 KiB for
    // GIF) built here by inserting spaces, a comment or empty GIF sub-blocks where
    // make_format_fixture.py inserted them. The GIFs (loaders/gif.cpp lists Pillow's rules):
    // transparency, frames inside and past the screen, interlacing, stray bytes, no colour table,
    // streams without a leading clear code or with a deferred clear, end codes inside the data,
    // odd extensions, files cut at the places that matter. The BMPs (loaders/bmp.cpp): rows
    // either way up, RLE8/RLE4, 5-5-5 and 5-6-5, bitfields, OS/2 headers, grey-ramp palettes.
    // The TGAs (loaders/tga.cpp): rows either way up and mirrored, RLE literals crossing rows,
    // 1-bit grey, colour maps with a first index and on grey images, Pillow's refusals. The
    // WebPs (loaders/webp.cpp, libwebp's animation decoder as Pillow's): lossy, lossless, with
    // transparent pixels, animated, cut. The TIFFs (loaders/tiff.cpp): every compression Pillow
    // writes, the layouts it does not (min-is-white, 2- and 4-bit samples, fill order 2,
    // associated alpha, extra samples, tiles, separate planes, 16-bit RGB and CMYK, signed
    // samples, a predictor, BigTIFF, swapped version fields), Orientation, Pillow's refusals and
    // files cut short; a line ending "lcam-refuses" is a file Pillow reads that lcam refuses on
    // purpose (pixels that do not describe the image, or modes lcam does not read). The PNGs
    // (loaders/png.cpp): every bit depth and colour type, straight and Adam7, all five filters,
    // palettes shorter than the indices or missing, CRCs, chunks too short or cut, APNG frame
    // controls, image data split, damaged, ending early or cut inside its adler-32. The icons
    // (loaders/bmp.cpp): Pillow's own, PNG and bitmap frames at every depth, the choice among
    // entries, the alpha and AND mask reads. The PSDs (loaders/psd.cpp): every mode Pillow reads,
    // raw and PackBits, resources and layers skipped, runs past a row, Pillow's refusals. The
    // JPEG 2000s (loaders/jpeg2000.cpp, OpenJPEG as Pillow calls it): J2K and JP2, every mode
    // Pillow writes, tiles and offsets, lossy, colour spaces (sYCC, unknown ones guessed, grey
    // data in an RGB image), palettes deduplicated as Pillow's, CMYK, damaged and cut files. The
    // PCXs (loaders/pcx.cpp): what Pillow writes, 16-colour bit planes, grey and 8-bit palettes,
    // strides the header gets wrong, runs past a line, cut data, and the headers Pillow gives up
    // on that its TGA reader then takes; a DCX's first frame (its palette at the end of the
    // file). The cursors (loaders/bmp.cpp): halved bitmaps, black-and-
    // white and grey ones masked by their top half, the choice among entries, an odd height, and
    // a header left to the TGA reader. The AVIFs (loaders/avif.cpp for the container, as Pillow
    // opens it with libavif; loaders/yuv.cpp for libavif 1.4's conversion to RGB): Pillow-written
    // subsamplings, ranges, alpha straight and premultiplied, an animation, Exif blocks Pillow
    // takes or gives up on, a wrong Exif offset; 10- and 12-bit files with and without alpha,
    // grey, identity, YCgCo, YCgCo-Re, chromaticity-derived, SMPTE 240, FCC and reserved
    // matrices, an unconverted one, a grid, irot/imir/clap, cut files, a colour box with
    // reserved bits set, AV1 data that disagrees with the av1C property (Pillow reads its mode
    // from one, its bytes from the other). Where libavif cannot be loaded (a machine without it),
    // the AVIF lines are skipped with a message.
    std::string avif_why;
    const bool avif = lcam::avif_available(&avif_why);
    if (!avif) MESSAGE("AVIF fixtures skipped: " << avif_why);
    // On aarch64 Pillow's wheels decode a few files differently (index.aarch64.txt, from
    // make_format_fixture.py --platform-index): where lcam decodes that way too (a library's own
    // floating point: OpenJPEG's irreversible wavelet), its outcome replaces index.txt's there;
    // elsewhere (libyuv's and libavif's Arm paths) lcam keeps index.txt's bytes on every CPU.
    const auto platform = [] {
      std::map<std::string, std::vector<std::string>> out;
      for (auto& l : index_lines("file", "formats/index.aarch64.txt")) {
        REQUIRE(l.size() >= 4);
        REQUIRE((l.back() == "lcam" || l.back() == "x86-64"));
#if defined(__aarch64__)
        if (l.back() == "lcam") out[l[1]] = std::vector<std::string>(l.begin() + 2, l.end() - 1);
#endif
      }
      return out;
    }();
    const auto lines = [&] {
      std::vector<std::vector<std::string>> out;
      for (const char* kind : {"file", "pad"})
        for (auto& l : index_lines(kind, "formats/index.txt")) {
          if (auto it = platform.find(l[1]); l[0] == "file" && it != platform.end()) {
            l.resize(2);
            l.insert(l.end(), it->second.begin(), it->second.end());
          }
          out.push_back(l);
        }
      return out;
    }();
    REQUIRE(lines.size() >= 459);
    int ok = 0, refused = 0, refused_by_lcam = 0, avif_lines = 0;
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      if (l[1].rfind("avif", 0) == 0) {
        ++avif_lines;
        if (!avif) continue;
      }
      std::vector<uint8_t> bytes = read_bytes(fixture("formats/" + (l[0] == "file" ? l[1] : l[2])));
      size_t at = 2;  // the outcome's first word
      if (l[0] == "pad") {
        const size_t offset = std::stoul(l[3]), k = std::stoul(l[5]);
        std::string ins;
        if (l[4] == "space") ins.assign(k, ' ');
        else if (l[4] == "zeros") ins.assign(k, '\0');  // empty GIF sub-blocks
        else if (l[4] == "comment") ins = "#" + std::string(k - 2, 'c') + "\n";
        else ins.assign(k, 'c');  // comment_open: the source's own LF ends it
        REQUIRE(offset <= bytes.size());
        bytes.insert(bytes.begin() + static_cast<std::ptrdiff_t>(offset), ins.begin(), ins.end());
        at = 6;
      }
      if (l[at] == "ERR" || l.back() == "lcam-refuses") {
        ++(l[at] == "ERR" ? refused : refused_by_lcam);
        try {
          (void)lcam::decode_image_memory(bytes.data(), bytes.size(), "f.pnm");
          FAIL("decoded a file Pillow refuses");
        } catch (const lcam::InputError& e) {
          CHECK(std::string(e.what()).rfind("f.pnm: ", 0) == 0);
          CHECK(std::string(e.what()).find('\n') == std::string::npos);
        }
        continue;
      }
      ++ok;
      const ImageU8 img = lcam::decode_image_memory(bytes.data(), bytes.size(), "f.pnm");
      CHECK(img.width == std::stoi(l[at + 1]));
      CHECK(img.height == std::stoi(l[at + 2]));
      CHECK(sum64(img.rgb) == std::stoull(l[at + 3]));
    }
    CHECK(avif_lines == 42);
    CHECK(ok >= (avif ? 333 : 299));
    CHECK(refused >= (avif ? 125 : 117));
    CHECK(refused_by_lcam == 1);
    // TIFFs and PSDs lcam refuses name what they hold.
    for (const auto& [file, message] : std::vector<std::pair<std::string, std::string>>{
             {"tif_ycbcr_raw.tif", "t: TIFF of uncompressed YCbCr (Pillow ignores its subsampling) (lcam does not read it)"},
             {"tif_rgba_assoc_planar_raw.tif", "t: TIFF whose raw mode a has no unpacker for mode RGBA (unknown raw mode)"},
             {"tif_unknown_mode.tif", "t: TIFF of an unknown pixel mode (photometric 2, bits per sample 8,8, 0 extra samples)"},
             {"psd_16_bit.psd", "t: PSD of colour mode 3 at 16 bits (Pillow reads 1-bit bitmaps and 8-bit grey, indexed, RGB, CMYK and LAB)"}}) {
      CAPTURE(file);
      const std::vector<uint8_t> tif = read_bytes(fixture("formats/" + file));
      try {
        (void)lcam::decode_image_memory(tif.data(), tif.size(), "t");
        FAIL("no exception");
      } catch (const lcam::InputError& e) {
        CHECK(std::string(e.what()) == message);
      }
    }
    // Pillow's own variants are refused by name; the 8-bit raw files are the bytes themselves.
    for (const std::string head : {"Pf\n2 1\n-1.0\n", "P0CMYK 1 1 255\n", "PyP 1 1 255\n"}) {
      try {
        (void)lcam::decode_image_memory(reinterpret_cast<const uint8_t*>(head.data()), head.size(), "v");
        FAIL("no exception");
      } catch (const lcam::InputError& e) {
        CHECK(std::string(e.what()).rfind("v: unsupported PNM variant", 0) == 0);
      }
    }
    const std::string p6 = "P6 2 1 255\n\x01\x02\x03\xfd\xfe\xff";
    const ImageU8 img = lcam::decode_image_memory(reinterpret_cast<const uint8_t*>(p6.data()), p6.size(), "v");
    CHECK(img.rgb == std::vector<uint8_t>{1, 2, 3, 253, 254, 255});
    // A header declaring more pixels than Pillow's decompression-bomb limit: refused by size
    // before the data is looked at.
    const std::string big = "P5 20000 20000 255\n";
    try {
      (void)lcam::decode_image_memory(reinterpret_cast<const uint8_t*>(big.data()), big.size(), "v");
      FAIL("no exception");
    } catch (const lcam::InputError& e) {
      CHECK(std::string(e.what()) == "v: image too large (20000x20000 pixels)");
    }
  }

  TEST_CASE("center_crop rounds half to even and zero-pads small images like torchvision") {
    struct Case { int w, h, left, top; };
    // (w - 224) / 2: 341 -> 58.5 -> 58, 343 -> 59.5 -> 60, 225 -> 0.5 -> 0, 227 -> 1.5 -> 2.
    for (Case c : {Case{341, 256, 58, 16}, Case{343, 257, 60, 16}, Case{225, 227, 0, 2},
                   Case{224, 224, 0, 0}, Case{256, 384, 16, 80}, Case{6400, 256, 3088, 16}}) {
      CAPTURE(c.w);
      CAPTURE(c.h);
      ImageU8 img = coordinate_image(c.w, c.h);
      ImageU8 out = lcam::center_crop(img, 224);
      REQUIRE(out.width == 224);
      REQUIRE(out.height == 224);
      CHECK(max_abs_diff(out, lcam::crop(img, c.top, c.left, 224, 224)) == 0);
      const uint8_t* p = pixel(out, 0, 0);
      CHECK(p[0] == (c.left & 255));
      CHECK(p[1] == (c.top & 255));
      CHECK(p[2] == 1 + (c.left >> 8) * 16 + (c.top >> 8));
    }
    // Smaller than the crop: padding (size - side) // 2 before, the rest after.
    ImageU8 img = coordinate_image(201, 300);  // pad width 23: 11 left, 12 right; top round(38)
    ImageU8 out = lcam::center_crop(img, 224);
    REQUIRE(out.width == 224);
    for (int y : {0, 100, 223}) {
      CHECK(pixel(out, 10, y)[2] == 0);
      CHECK(pixel(out, 11, y)[0] == 0);  // x = 0 of the image
      CHECK(pixel(out, 11, y)[1] == ((y + 38) & 255));
      CHECK(pixel(out, 211, y)[0] == 200);
      CHECK(pixel(out, 212, y)[2] == 0);
    }
    ImageU8 tiny = lcam::center_crop(coordinate_image(3, 2), 4);  // pads 0 left / 1 right, 1 top / 1 bottom
    CHECK(pixel(tiny, 0, 0)[2] == 0);
    CHECK(pixel(tiny, 0, 1)[2] != 0);
    CHECK(pixel(tiny, 0, 1)[0] == 0);
    CHECK(pixel(tiny, 3, 1)[2] == 0);
    CHECK(pixel(tiny, 0, 3)[2] == 0);
  }

  TEST_CASE("crop zero-fills outside the image; hflip mirrors") {
    ImageU8 img = coordinate_image(10, 7);
    ImageU8 c = lcam::crop(img, -2, 8, 5, 4);
    REQUIRE(c.width == 4);
    REQUIRE(c.height == 5);
    CHECK(pixel(c, 0, 0)[2] == 0);
    CHECK(pixel(c, 1, 2)[0] == 9);
    CHECK(pixel(c, 1, 2)[1] == 0);
    CHECK(pixel(c, 2, 2)[2] == 0);
    CHECK(lcam::crop(img, 20, 20, 3, 3).rgb == std::vector<uint8_t>(27, 0));

    ImageU8 f = lcam::hflip(img);
    REQUIRE(f.width == 10);
    for (int y = 0; y < 7; ++y)
      for (int x = 0; x < 10; ++x) {
        CHECK(pixel(f, x, y)[0] == 9 - x);
        CHECK(pixel(f, x, y)[1] == y);
      }
    CHECK(lcam::hflip(f).rgb == img.rgb);
  }

  TEST_CASE("to_chw_float is ToTensor: planar, v / 255") {
    ImageU8 img = procedural(5, 3, 9);
    std::vector<float> out(3 * 15);
    lcam::to_chw_float(img, out.data());
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 5; ++x)
        for (int c = 0; c < 3; ++c)
          CHECK(out[c * 15 + y * 5 + x] == pixel(img, x, y)[c] / 255.f);
    ImageU8 extremes;
    extremes.width = 2;
    extremes.height = 1;
    extremes.rgb = {0, 255, 0, 255, 0, 255};
    std::vector<float> e(6);
    lcam::to_chw_float(extremes, e.data());
    CHECK(e == std::vector<float>{0.f, 1.f, 1.f, 0.f, 0.f, 1.f});
  }

  TEST_CASE("write_png round-trips, leaves no temporary file, fails with InputError") {
    TempDir dir;
    ImageU8 img = procedural(37, 23, 11);
    const std::string path = dir.file("out.png");
    lcam::write_png(path, img);
    for (const auto& e : fs::directory_iterator(dir.path))  // only the PNG: no temporary left
      CHECK(e.path().filename() == "out.png");
    CHECK(lcam::decode_image(path).rgb == img.rgb);
    lcam::write_png(path, lcam::hflip(img));  // overwrites
    CHECK(lcam::decode_image(path).rgb == lcam::hflip(img).rgb);
    const std::string bad = dir.file("no_such_dir/out.png");
    CHECK_THROWS_AS(lcam::write_png(bad, img), lcam::InputError);
    try {
      lcam::write_png(bad, img);
    } catch (const lcam::InputError& e) {
      CHECK(std::string(e.what()).rfind(bad + ": ", 0) == 0);
    }
  }

  TEST_CASE("AVIF's YUV to RGB: libyuv's fixed point, libavif's float paths, grey, premultiplied alpha, refusals") {
    // Values worked out from libyuv's and libavif's arithmetic (loaders/yuv.cpp), on one-pixel
    // pictures; they need no libavif.
    auto convert = [](int depth, lcam::YuvPicture::Format format, bool full, int matrix, std::vector<uint16_t> yuva,
                      bool alpha, bool premultiplied = false) {
      static std::vector<uint16_t> keep16;
      static std::vector<uint8_t> keep8;
      keep16 = yuva;
      keep8.assign(yuva.begin(), yuva.end());
      lcam::YuvPicture p;
      p.width = p.height = 1;
      p.depth = depth;
      p.format = format;
      p.full_range = full;
      p.matrix = matrix;
      for (int i = 0; i < 4; ++i) {
        p.planes[i] = depth == 8 ? static_cast<const void*>(&keep8[i]) : static_cast<const void*>(&keep16[i]);
        p.strides[i] = 1;
      }
      if (!alpha) p.planes[3] = nullptr;
      p.alpha_premultiplied = premultiplied;
      ImageU8 out;
      const std::string why = lcam::yuv_to_rgb(p, out);
      return why.empty() ? std::vector<int>(out.rgb.begin(), out.rgb.end()) : std::vector<int>{-1};
    };
    using F = lcam::YuvPicture;
    // libyuv's BT.601 limited and full (JPEG) constants at 8 bits.
    CHECK(convert(8, F::k444, false, 6, {81, 90, 240, 255}, false) == std::vector<int>{254, 0, 0});
    CHECK(convert(8, F::k444, false, 6, {145, 54, 34, 255}, false) == std::vector<int>{0, 255, 2});
    CHECK(convert(8, F::k444, true, 6, {255, 255, 255, 255}, false) == std::vector<int>{255, 120, 255});
    // 10-bit limited white: RGB cuts the planes to 8 bits first (235: white); RGBA keeps 10-bit
    // luma in libyuv's pixel, which gives 254.
    CHECK(convert(10, F::k444, false, 6, {940, 512, 512, 1023}, false) == std::vector<int>{255, 255, 255});
    CHECK(convert(10, F::k444, false, 6, {940, 512, 512, 1023}, true) == std::vector<int>{254, 254, 254});
    // Grey: (s - 64) * 255 / 876 = 42.5 at 10 bits limited, rounded up.
    CHECK(convert(10, F::k400, false, 6, {210, 0, 0, 0}, false) == std::vector<int>{43, 43, 43});
    // libavif's own path (SMPTE 240 has no libyuv constants): the float formulas.
    CHECK(convert(8, F::k444, true, 7, {128, 128, 128, 255}, false) == std::vector<int>{128, 128, 128});
    // The identity matrix at 8 bits full range is G, B, R = Y, U, V; premultiplied alpha is then
    // undone as libyuv's x86 ARGBUnattenuate does it, signed saturation included (alpha 1).
    CHECK(convert(8, F::k444, true, 0, {10, 20, 30, 255}, true, true) == std::vector<int>{30, 10, 20});
    CHECK(convert(8, F::k444, true, 0, {100, 100, 100, 200}, true, true) == std::vector<int>{128, 128, 128});
    CHECK(convert(8, F::k444, true, 0, {200, 100, 100, 1}, true, true) == std::vector<int>{255, 0, 255});
    // What libavif refuses.
    CHECK(convert(10, F::k420, true, 10, {500, 500, 500, 0}, false) == std::vector<int>{-1});
    CHECK(convert(8, F::k420, true, 0, {1, 2, 3, 0}, false) == std::vector<int>{-1});
    CHECK(convert(8, F::k444, false, 8, {1, 2, 3, 0}, false) == std::vector<int>{-1});
    CHECK(convert(12, F::k444, true, 16, {1, 2, 3, 0}, false) == std::vector<int>{-1});
    CHECK(convert(10, F::k444, true, 16, {100, 512, 512, 0}, false) != std::vector<int>{-1});
  }

  TEST_CASE("AVIF's YUV to RGB: the AVX2 pixel rows give the bytes of the portable ones") {
    // Every libyuv path (each subsampling, 8/10/12 bits, with and without alpha) on a 37x23
    // random picture, converted with the run-time AVX2 choice allowed and then refused.
    std::mt19937 rng(7);
    const int w = 37, h = 23;
    for (int depth : {8, 10, 12}) {
      for (auto format : {lcam::YuvPicture::k444, lcam::YuvPicture::k422, lcam::YuvPicture::k420, lcam::YuvPicture::k400}) {
        for (bool alpha : {false, true}) {
          CAPTURE(depth);
          CAPTURE(static_cast<int>(format));
          CAPTURE(alpha);
          std::vector<uint16_t> s16(static_cast<size_t>(w) * h * 4);
          for (auto& v : s16) v = static_cast<uint16_t>(rng() % (1u << depth));
          std::vector<uint8_t> s8(s16.begin(), s16.end());
          lcam::YuvPicture p;
          p.width = w;
          p.height = h;
          p.depth = depth;
          p.format = format;
          p.matrix = 1;
          for (int i = 0; i < 4; ++i) {
            const size_t at = static_cast<size_t>(i) * w * h;
            p.planes[i] = depth == 8 ? static_cast<const void*>(s8.data() + at) : static_cast<const void*>(s16.data() + at);
            p.strides[i] = w;
          }
          if (!alpha) p.planes[3] = nullptr;
          ImageU8 simd, portable;
          REQUIRE(lcam::yuv_to_rgb(p, simd).empty());
          const bool was = lcam::set_yuv_simd(false);
          REQUIRE(lcam::yuv_to_rgb(p, portable).empty());
          lcam::set_yuv_simd(was);
          CHECK(simd.rgb == portable.rgb);
        }
      }
    }
  }
}
