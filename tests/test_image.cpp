// test_image.cpp — doctest suite "image": decoding, Pillow-exact bilinear resize, torchvision's
// Resize/CenterCrop/ToTensor, flips, crops and PNG writing, against the expectations that
// tools/make_image_fixture.py recorded from Pillow 9 / torchvision 0.14 in tests/fixtures/image/.
// Deliberately omits: exact JPEG parity (stb_image and libjpeg differ by a few levels; checked
// within the tolerance the fixture records) and speed measurements.
#include <doctest/doctest.h>  // TEST_SUITE, TEST_CASE, CHECK, REQUIRE

#include <algorithm>   // std::max, std::clamp
#include <atomic>      // std::atomic counter for unique temp dir names
#include <cstdint>     // uint8_t, uint32_t, uint64_t
#include <cstdlib>     // std::abs
#include <filesystem>  // temp directories, exists
#include <fstream>     // reading the index, writing broken files
#include <iterator>    // std::istreambuf_iterator
#include <random>      // std::random_device for unique temp dir names
#include <sstream>     // std::istringstream for index lines
#include <string>      // std::string
#include <vector>      // std::vector

#include "engine/common.h"   // lcam::InputError
#include "loaders/image.h"   // the functions under test
#include "tests/test_util.h" // lcam::test::fixture

namespace fs = std::filesystem;
using lcam::ImageU8;

namespace {

std::string fixture(const std::string& name) {
  return lcam::test::fixture("image/" + name);
}

// The index's lines of one kind, split into words.
std::vector<std::vector<std::string>> index_lines(const std::string& kind) {
  std::ifstream f(fixture("index.txt"));
  REQUIRE_MESSAGE(f.good(), "missing " << fixture("index.txt"));
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

  TEST_CASE("resize sweep over sizes (up, down, one pass, 1-pixel sides) matches Pillow") {
    auto lines = index_lines("sweep");
    REQUIRE(lines.size() >= 100);
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
    CHECK(mismatches == 0);
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
    auto lines = index_lines("evalproc");
    REQUIRE(lines.size() >= 4);
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

  TEST_CASE("JPEG (baseline, progressive, CMYK, grey) decodes within a few levels of Pillow") {
    auto lines = index_lines("jpeg");
    REQUIRE(lines.size() == 4);  // baseline, progressive, CMYK, grey
    for (const auto& l : lines) {
      CAPTURE(l[1]);
      ImageU8 got = lcam::decode_image(fixture(l[1]));
      ImageU8 want = lcam::decode_image(fixture(l[2]));
      REQUIRE(got.width == 83);
      REQUIRE(got.height == 61);
      CHECK(max_abs_diff(got, want) <= std::stoi(l[3]));
    }
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
    // From memory, the given name is the one reported.
    try {
      (void)lcam::decode_image_memory(reinterpret_cast<const uint8_t*>(words.data()), words.size(),
                                      "archive.tar:img.jpg");
      FAIL("no exception");
    } catch (const lcam::InputError& e) {
      CHECK(std::string(e.what()).rfind("archive.tar:img.jpg: ", 0) == 0);
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
    CHECK(!fs::exists(path + ".tmp"));
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
}
