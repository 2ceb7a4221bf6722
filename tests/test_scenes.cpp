// test_scenes.cpp — IDX reading (plain and gzip, every kind of bad file named) and the demo's
// scenes: Fashion-MNIST loads as the Debian package installs it, and a scene is a pure function
// of (seed, index) whose label and box are its main item's.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <zlib.h>  // gzopen, gzwrite (compressed test files)

#include <filesystem>  // temp paths
#include <fstream>     // raw test files

#include "engine/common.h"    // InputError
#include "loaders/idx.h"      // read_idx, load_fashion_mnist
#include "loaders/scenes.h"   // make_scene

namespace fs = std::filesystem;
using namespace lcam;

namespace {

std::string idx_bytes(uint8_t type, std::vector<uint32_t> dims, size_t data_bytes) {
  std::string s = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  for (uint32_t d : dims)
    for (int k = 3; k >= 0; --k) s += static_cast<char>((d >> (8 * k)) & 255);
  for (size_t i = 0; i < data_bytes; ++i) s += static_cast<char>(i % 251);
  return s;
}

std::string error_of(const std::string& path) {
  try {
    read_idx(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

// A tiny stand-in for Fashion-MNIST: n items of 28x28 with a filled square of ink each.
FashionMnist tiny_items(int n) {
  FashionMnist f;
  f.count = n, f.rows = f.cols = 28;
  f.images.assign(static_cast<size_t>(n) * 28 * 28, 0);
  f.labels.resize(n);
  for (int i = 0; i < n; ++i) {
    f.labels[i] = static_cast<uint8_t>(i % 10);
    for (int y = 6; y < 22; ++y)
      for (int x = 4 + i % 3; x < 24; ++x) f.images[(static_cast<size_t>(i) * 28 + y) * 28 + x] = 200;
  }
  return f;
}

}  // namespace

TEST_SUITE("scenes") {

TEST_CASE("IDX files: plain and gzip read back; bad files are named") {
  const fs::path dir = fs::temp_directory_path() / "lcam_idx";
  fs::create_directories(dir);
  const std::string good = idx_bytes(0x08, {3, 4}, 12);
  std::ofstream(dir / "a.idx", std::ios::binary) << good;
  IdxArray a = read_idx((dir / "a.idx").string());
  CHECK(a.dims == std::vector<int64_t>{3, 4});
  CHECK(a.data[11] == 11);
  gzFile gz = gzopen((dir / "a.idx.gz").string().c_str(), "wb");
  gzwrite(gz, good.data(), static_cast<unsigned>(good.size()));
  gzclose(gz);
  CHECK(read_idx((dir / "a.idx.gz").string()).data == a.data);
  std::ofstream(dir / "magic.idx", std::ios::binary) << "PK\x03\x04 not idx";
  CHECK(error_of((dir / "magic.idx").string()).find("not an IDX file") != std::string::npos);
  std::ofstream(dir / "float.idx", std::ios::binary) << idx_bytes(0x0D, {2}, 8);
  CHECK(error_of((dir / "float.idx").string()).find("only unsigned bytes") != std::string::npos);
  std::ofstream(dir / "short.idx", std::ios::binary) << idx_bytes(0x08, {3, 4}, 7);
  CHECK(error_of((dir / "short.idx").string()).find("truncated") != std::string::npos);
  std::ofstream(dir / "long.idx", std::ios::binary) << idx_bytes(0x08, {3, 4}, 13);
  CHECK(error_of((dir / "long.idx").string()).find("trailing bytes") != std::string::npos);
  CHECK(error_of((dir / "none.idx").string()).find("no such file") != std::string::npos);
  // 3.3 GB declared by a 21-byte file: refused as truncated once its 5 bytes end (the data is
  // read in 16 MiB steps, never allocated whole up front); and data over one step reads back.
  std::ofstream(dir / "huge.idx", std::ios::binary) << idx_bytes(0x08, {2560, 512, 2560}, 5);
  CHECK(error_of((dir / "huge.idx").string()).find("truncated") != std::string::npos);
  std::ofstream(dir / "big.idx", std::ios::binary) << idx_bytes(0x08, {4097, 4097}, 4097 * 4097);
  const IdxArray big = read_idx((dir / "big.idx").string());
  REQUIRE(big.data.size() == size_t{4097} * 4097);
  CHECK(big.data.back() == (4097 * 4097 - 1) % 251);
  CHECK(big.data[size_t{1} << 24] == (size_t{1} << 24) % 251);
  bool threw = false;
  try {
    load_fashion_mnist(dir.string(), true);
  } catch (const InputError& e) {
    threw = std::string(e.what()).find("train-images-idx3-ubyte") != std::string::npos;
  }
  CHECK(threw);
  fs::remove_all(dir);
}

TEST_CASE("Fashion-MNIST as Debian installs it") {
  if (!fs::exists(std::string(kFashionMnistDir) + "/t10k-labels-idx1-ubyte.gz")) {
    MESSAGE("scenes: skipped (no " << kFashionMnistDir << "; apt-get install dataset-fashion-mnist)");
    return;
  }
  const FashionMnist test = load_fashion_mnist(kFashionMnistDir, false);
  CHECK(test.count == 10000);
  CHECK(test.rows == 28);
  CHECK(test.cols == 28);
  int per_class[10] = {};
  for (uint8_t l : test.labels) ++per_class[l];
  for (int c : per_class) CHECK(c == 1000);
}

TEST_CASE("scenes: a pure function of (seed, index), labelled with the main item and its box") {
  const FashionMnist fm = tiny_items(40);
  SceneOptions o;
  o.seed = 9;
  const Scene a = make_scene(fm, 5, o), b = make_scene(fm, 5, o), c = make_scene(fm, 6, o);
  CHECK(a.image.rgb == b.image.rgb);
  CHECK(a.image.rgb != c.image.rgb);
  CHECK(a.image.width == 96);
  for (const Scene* s : {&a, &c}) {
    CHECK(s->label == fm.labels[s->item]);
    CHECK(0 <= s->x0);
    CHECK(s->x0 < s->x1);
    CHECK(s->x1 <= 96);
    CHECK(0 <= s->y0);
    CHECK(s->y0 < s->y1);
    CHECK(s->y1 <= 96);
    // The square of ink covers 16/28 of the item's side, which is 36..72 pixels.
    CHECK(s->y1 - s->y0 >= 36 * 16 / 28 - 1);
  }
  o.seed = 10;
  CHECK(make_scene(fm, 5, o).image.rgb != a.image.rgb);
}

}  // TEST_SUITE
