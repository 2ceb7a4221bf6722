// test_dataset.cpp — lists and folders (every kind of bad list is a one-line error naming the
// file and line), and the batch loader: same seed, same batches whatever the number of workers;
// a partial last batch; unreadable images left out and named; resuming mid-epoch; a clean stop
// mid-epoch.
#include <doctest/doctest.h>  // TEST_CASE, CHECK

#include <filesystem>  // temp folders
#include <fstream>     // list files
#include <set>         // coverage of an epoch

#include "engine/common.h"         // InputError
#include "loaders/batch_loader.h"  // BatchLoader
#include "loaders/dataset.h"       // Dataset
#include "loaders/image.h"         // write_png, ImageU8

namespace fs = std::filesystem;
using namespace lcam;

namespace {

// A temporary data folder with n small PNGs (different sizes and colours) and a list file.
struct TempData {
  fs::path dir;
  std::string list;
  explicit TempData(const std::string& name, int n, int bad_every = 0) {
    dir = fs::temp_directory_path() / ("lcam_ds_" + name);
    fs::remove_all(dir);
    fs::create_directories(dir / "imgs");
    std::string text;
    for (int i = 0; i < n; ++i) {
      const std::string rel = "imgs/img" + std::to_string(i) + ".png";
      if (bad_every && i % bad_every == bad_every - 1) {
        std::ofstream(dir / rel) << "not an image";
      } else {
        ImageU8 img;
        img.width = 40 + i % 7;
        img.height = 30 + i % 5;
        img.rgb.resize(3 * img.width * img.height);
        for (size_t k = 0; k < img.rgb.size(); ++k) img.rgb[k] = static_cast<uint8_t>((k * 7 + i * 31) & 255);
        write_png((dir / rel).string(), img);
      }
      text += rel + " " + std::to_string(i % 10) + "\n";
    }
    list = (dir / "list.txt").string();
    std::ofstream(list) << text;
  }
  ~TempData() { fs::remove_all(dir); }
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

std::string write_list(const fs::path& dir, const std::string& name, const std::string& text) {
  const std::string p = (dir / name).string();
  std::ofstream(p) << text;
  return p;
}

LoaderOptions small(int batch, int workers, bool shuffle, bool augment, uint64_t seed = 1) {
  LoaderOptions o;
  o.batch = batch;
  o.workers = workers;
  o.shuffle = shuffle;
  o.augment = augment;
  o.seed = seed;
  o.resize = 32;
  o.crop = 24;
  return o;
}

std::vector<Batch> epoch(const Dataset& d, LoaderOptions o, int64_t e = 0, int64_t first = 0) {
  BatchLoader l(d, o);
  l.start_epoch(e, first);
  std::vector<Batch> out;
  Batch b;
  while (l.next(b)) out.push_back(std::move(b));
  return out;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("list files: every mistake is named with file and line") {
  TempData t("lists", 3);
  const std::string root = t.dir.string();
  Dataset d = Dataset::from_list(root, t.list, 10);
  CHECK(d.size() == 3);
  CHECK(d[2].label == 2);
  CHECK(d.full_path(1) == (t.dir / "imgs/img1.png").string());
  CHECK(error_of([&] { Dataset::from_list(root + "/nope", t.list, 10); }).find("no such folder") != std::string::npos);
  CHECK(error_of([&] { Dataset::from_list(root, root + "/none.txt", 10); }).find("cannot open list") != std::string::npos);
  const std::string empty = write_list(t.dir, "empty.txt", "\n# comment only\n");
  CHECK(error_of([&] { Dataset::from_list(root, empty, 10); }).find("no images listed") != std::string::npos);
  const std::string range = write_list(t.dir, "range.txt", "imgs/img0.png 3\nimgs/img1.png 10\n");
  CHECK(error_of([&] { Dataset::from_list(root, range, 10); }).find("range.txt:2: label 10 out of range [0,10)") != std::string::npos);
  const std::string bad = write_list(t.dir, "bad.txt", "imgs/img0.png three\n");
  CHECK(error_of([&] { Dataset::from_list(root, bad, 10); }).find("bad.txt:1: expected 'PATH LABEL'") != std::string::npos);
  const std::string up = write_list(t.dir, "up.txt", "imgs/../../etc/passwd 1\n");
  CHECK(error_of([&] { Dataset::from_list(root, up, 10); }).find("up.txt:1: path 'imgs/../../etc/passwd' is not inside") != std::string::npos);
  const std::string abs = write_list(t.dir, "abs.txt", "/etc/passwd 1\n");
  CHECK(error_of([&] { Dataset::from_list(root, abs, 10); }).find("is not inside") != std::string::npos);
  const std::string unl = write_list(t.dir, "unl.txt", "imgs/img0.png\n");
  CHECK(error_of([&] { Dataset::from_list(root, unl, 10); }).find("unl.txt:1: no label") != std::string::npos);
  CHECK(Dataset::from_list(root, unl, 10, true)[0].label == -1);
}

TEST_CASE("class folders: ImageNet synsets keep their ImageNet index") {
  const fs::path dir = fs::temp_directory_path() / "lcam_ds_folders";
  fs::remove_all(dir);
  for (const char* c : {"n01530575", "n01440764"}) {
    fs::create_directories(dir / c);
    std::ofstream(dir / c / "b.JPEG") << "x";
    std::ofstream(dir / c / "a.JPEG") << "x";
    std::ofstream(dir / c / "notes.txt") << "x";
  }
  Dataset d = Dataset::from_folders(dir.string());
  REQUIRE(d.size() == 4);
  CHECK(d[0].path == "n01440764/a.JPEG");
  CHECK(d[0].label == 0);   // tench
  CHECK(d[2].label == 10);  // brambling
  fs::create_directories(dir / "other");
  std::ofstream(dir / "other" / "c.png") << "x";
  Dataset g = Dataset::from_folders(dir.string());
  CHECK(g[0].label == 0);
  CHECK(g[2].label == 1);
  CHECK(g[4].label == 2);  // plain sorted order once a folder is not a synset
  fs::remove_all(dir);
  CHECK(error_of([&] { Dataset::from_folders(dir.string()); }).find("no such folder") != std::string::npos);
}

TEST_CASE("loader: deterministic for a seed, whatever the number of workers") {
  TempData t("det", 23);
  Dataset d = Dataset::from_list(t.dir.string(), t.list, 10);
  auto a = epoch(d, small(5, 1, true, true, 42));
  auto b = epoch(d, small(5, 3, true, true, 42));
  REQUIRE(a.size() == 5);
  REQUIRE(b.size() == 5);
  std::set<size_t> seen;
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].index == static_cast<int64_t>(i));
    CHECK(a[i].indices == b[i].indices);
    CHECK(a[i].images.to_vector() == b[i].images.to_vector());
    for (size_t r = 0; r < a[i].indices.size(); ++r) {
      seen.insert(a[i].indices[r]);
      CHECK(a[i].labels[r] == d[a[i].indices[r]].label);
    }
  }
  CHECK(seen.size() == 23);            // each sample once per epoch
  CHECK(a.back().indices.size() == 3);  // the partial last batch
  CHECK(a.back().images.dim(0) == 3);
  auto c = epoch(d, small(5, 2, true, true, 43));
  CHECK(c[0].indices != a[0].indices);  // another seed, another order
  auto e1 = epoch(d, small(5, 2, true, true, 42), 1);
  CHECK(e1[0].indices != a[0].indices);  // another epoch, another order
  auto plain = epoch(d, small(5, 2, false, false));
  CHECK(plain[0].indices == std::vector<size_t>{0, 1, 2, 3, 4});
  // Augmentation changes pixels but not which samples: center crops differ from random ones.
  auto aug = epoch(d, small(5, 2, false, true));
  CHECK(aug[0].indices == plain[0].indices);
  CHECK(aug[0].images.to_vector() != plain[0].images.to_vector());
}

TEST_CASE("loader: resuming at a batch gives the same batches as an uninterrupted epoch") {
  TempData t("resume", 17);
  Dataset d = Dataset::from_list(t.dir.string(), t.list, 10);
  auto full = epoch(d, small(4, 2, true, true, 7), 3);
  auto rest = epoch(d, small(4, 2, true, true, 7), 3, 2);
  REQUIRE(rest.size() == full.size() - 2);
  for (size_t i = 0; i < rest.size(); ++i) {
    CHECK(rest[i].index == full[i + 2].index);
    CHECK(rest[i].indices == full[i + 2].indices);
    CHECK(rest[i].images.to_vector() == full[i + 2].images.to_vector());
  }
}

TEST_CASE("loader: unreadable images are left out of their batch and named") {
  TempData t("bad", 10, 4);  // samples 3 and 7 are not images
  Dataset d = Dataset::from_list(t.dir.string(), t.list, 10);
  auto bs = epoch(d, small(5, 2, false, false));
  REQUIRE(bs.size() == 2);
  CHECK(bs[0].indices == std::vector<size_t>{0, 1, 2, 4});
  CHECK(bs[0].images.dim(0) == 4);
  REQUIRE(bs[0].failed.size() == 1);
  CHECK(bs[0].failed[0].find("img3.png") != std::string::npos);
  CHECK(bs[1].failed.size() == 1);
}

TEST_CASE("loader: the default prefetch stays within about 512 MiB of batches") {
  TempData t("prefetch", 4);
  Dataset d = Dataset::from_list(t.dir.string(), t.list, 10);
  LoaderOptions o = small(64, 16, false, false);
  o.crop = 224;  // 38.5 MB a batch: 13 ahead, and no more workers than that
  BatchLoader big(d, o);
  CHECK(big.prefetch() == 13);
  CHECK(big.workers() == 13);
  BatchLoader few(d, small(4, 3, false, false));  // small batches: twice the workers
  CHECK(few.prefetch() == 6);
  CHECK(few.workers() == 3);
  o.batch = 4096;  // one batch over the cap: still two ahead
  CHECK(BatchLoader(d, o).prefetch() == 2);
  o.prefetch = 40;  // asked for: kept
  CHECK(BatchLoader(d, o).prefetch() == 40);
  CHECK(BatchLoader(d, o).workers() == 16);
}

TEST_CASE("loader: a clean stop mid-epoch") {
  TempData t("stop", 40);
  Dataset d = Dataset::from_list(t.dir.string(), t.list, 10);
  {
    BatchLoader l(d, small(2, 3, true, true));
    l.start_epoch(0);
    Batch b;
    REQUIRE(l.next(b));
    l.stop();
    CHECK_FALSE(l.next(b));
    l.stop();  // idempotent
    l.start_epoch(1);  // and restartable
    CHECK(l.next(b));
  }  // destroyed mid-epoch with workers running: joins them
  {
    BatchLoader l(d, small(2, 2, false, false));
    l.start_epoch(0);
  }
  CHECK(true);
}

}  // TEST_SUITE
