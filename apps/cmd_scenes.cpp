// cmd_scenes.cpp — `lcam scenes`: writes a reproducible scenes data set (loaders/scenes.h) as
// PNG files with the lists the other commands read: DIR/list.txt (PATH LABEL), DIR/boxes.txt
// (PATH X0 Y0 X1 Y1, end exclusive) and DIR/classes.txt (the ten Fashion-MNIST names).
#include <algorithm>   // std::max, std::min
#include <exception>   // std::exception_ptr (from the parallel loop)
#include <cstdio>      // std::printf
#include <filesystem>  // create_directories
#include <vector>      // std::vector (labels and boxes by index)

#include <fmt/format.h>  // fmt::format

#include "apps/commands.h"  // ScenesOptions, run_scenes
#include "apps/progress.h"  // Progress, write_text_atomic
#include "engine/common.h"  // InputError
#include "loaders/idx.h"    // load_fashion_mnist
#include "loaders/image.h"  // write_png
#include "loaders/scenes.h" // make_scene

namespace lcam::app {
namespace {

std::string scene_path(int64_t index) { return fmt::format("images/scene_{:07d}.png", index); }

}  // namespace

int run_scenes(const ScenesOptions& o) {
  SceneOptions so = o.scene;
  so.min_item = o.min_item ? o.min_item : std::max(8, so.size / 4);
  so.max_item = o.max_item ? o.max_item : std::max(so.min_item, so.size / 2);
  if (so.min_item > so.max_item)
    throw InputError(fmt::format("--min-item {} is larger than --max-item {}", so.min_item, so.max_item));
  if (so.max_item > so.size) throw InputError(fmt::format("--max-item {} is larger than --size {}", so.max_item, so.size));
  const FashionMnist fm = load_fashion_mnist(o.source, o.split == "train");
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(fs::path(o.out) / "images", ec);
  if (!fs::is_directory(fs::path(o.out) / "images")) throw InputError(fmt::format("{}: cannot create folder (--out)", o.out));
  // Scenes are independent (a pure function of seed and index): they are drawn and encoded on
  // every core, in blocks of a fixed size so that progress shows and a failure stops the rest
  // soon. An exception cannot leave an OpenMP region: the first is kept and rethrown here.
  Progress progress("scenes", o.count);
  std::vector<Scene> written(static_cast<size_t>(o.count));
  std::exception_ptr error;
  constexpr int64_t kBlock = 64;
  for (int64_t i0 = 0; i0 < o.count && !error; i0 += kBlock) {
    const int64_t i1 = std::min(o.count, i0 + kBlock);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = i0; i < i1; ++i) {
      try {
        Scene s = make_scene(fm, o.first + i, so);
        write_png((fs::path(o.out) / scene_path(o.first + i)).string(), s.image);
        s.image = ImageU8();  // only the label and the box are kept
        written[static_cast<size_t>(i)] = std::move(s);
      } catch (...) {
#pragma omp critical(lcam_scenes_error)
        if (!error) error = std::current_exception();
      }
    }
    progress.update(i1);
  }
  if (error) std::rethrow_exception(error);
  std::string list, boxes, classes;
  for (const char* n : FashionMnist::kClassNames) classes += std::string(n) + "\n";
  for (int64_t i = 0; i < o.count; ++i) {
    const Scene& s = written[static_cast<size_t>(i)];
    const std::string rel = scene_path(o.first + i);
    list += fmt::format("{} {}\n", rel, s.label);
    boxes += fmt::format("{} {} {} {} {}\n", rel, s.x0, s.y0, s.x1, s.y1);
  }
  write_text_atomic((fs::path(o.out) / "list.txt").string(), list);
  write_text_atomic((fs::path(o.out) / "boxes.txt").string(), boxes);
  write_text_atomic((fs::path(o.out) / "classes.txt").string(), classes);
  progress.finish();
  if (!o.quiet) std::printf("wrote %lld scenes to %s\n", static_cast<long long>(o.count), o.out.c_str());
  return 0;
}

Run setup_scenes(CLI::App& sub) {
  auto o = std::make_shared<ScenesOptions>();
  sub.add_option("--out", o->out, "folder to write (images/, list.txt, boxes.txt, classes.txt)")->required();
  sub.add_option("--count", o->count, "scenes to write")->transform(integer_in(1, 10000000, "a number of scenes from 1 to 10000000"));
  sub.add_option("--first", o->first, "index of the first scene (a held-out set: another range)")
      ->transform(integer_in(0, 1000000000, "a scene index from 0 to 1000000000"));
  sub.add_option("--seed", o->scene.seed, "seed of the data set")->transform(kSeed);
  sub.add_option("--size", o->scene.size, "canvas side in pixels")->transform(integer_in(16, 1024, "an integer from 16 to 1024"));
  sub.add_option("--min-item", o->min_item, "smallest main item side in pixels (default: size / 4)")->transform(integer_in(8, 1024, "an integer from 8 to 1024"));
  sub.add_option("--max-item", o->max_item, "largest main item side in pixels (default: size / 2)")->transform(integer_in(8, 1024, "an integer from 8 to 1024"));
  sub.add_option("--split", o->split, "Fashion-MNIST items to draw from: train or test")->check(CLI::IsMember({"train", "test"}));
  sub.add_option("--fashion-mnist", o->source, "folder with the Fashion-MNIST IDX files");
  return [o] { return run_scenes(*o); };
}

}  // namespace lcam::app
