// cmd_explain.cpp — `lcam explain`: saliency maps of images for a class (default: the
// predicted one), written as JET heat-map overlays on the 224x224 center crop the network saw
// (DIR/STEM.png, DIR/STEM_METHOD_CLASS.png), and optionally as raw maps in HDF5. Methods so
// lcam (one forward pass of a trained attention mechanism, --lcam CKPT), gradcam, gradcampp,
// gradcampp-paper, scorecam and rise (masks seeded, optionally cached).
#include <cstdio>      // std::printf, std::fprintf
#include <algorithm>   // std::find
#include <filesystem>  // create_directories, path stem

#include <fmt/format.h>  // fmt::format

#include "apps/commands.h"      // ExplainOptions, run_explain
#include "apps/figures.h"       // overlay, to_image, grid_figure
#include "apps/progress.h"      // images_status, image_error, first_repeat, split_items
#include "apps/saliency.h"      // SaliencyOptions, SaliencyMethods
#include "engine/common.h"      // InputError
#include "engine/ops.h"         // normalize_forward
#include "loaders/classes.h"    // class_names_for
#include "loaders/dataset.h"    // read_boxes
#include "loaders/hdf5.h"       // h5::Writer (--save-maps)
#include "loaders/image.h"      // load_eval_image, write_png
#include "models/model.h"       // load_model

namespace fs = std::filesystem;

namespace lcam::app {
namespace {

// "top1", or comma-separated class indices or names; -1 stands for top-1.
std::vector<int> parse_classes(const std::string& arg, const std::vector<ClassName>& names, int K) {
  std::vector<int> out;
  for (const std::string& item : split_items(arg)) {  // "3," and "3,,4" hold an empty item
    if (item.empty())
      throw InputError(arg.empty() ? std::string("--class: empty")
                                   : fmt::format("--class: '{}' has an empty item (top1, class indices or names, separated by commas)", arg));
    if (item == "top1") {
      out.push_back(-1);
      continue;
    }
    size_t used = 0;
    int v = -2;
    try {
      v = std::stoi(item, &used);
    } catch (...) {
      used = 0;
    }
    if (used == item.size() && v >= 0 && v < K) {
      out.push_back(v);
      continue;
    }
    int found = -1;
    for (size_t i = 0; i < names.size() && found < 0; ++i)
      if (names[i].name == item || names[i].synset == item) found = static_cast<int>(i);
    if (found < 0 || found >= K)
      throw InputError(found < 0 ? fmt::format("--class: '{}' is not top1, a class index in [0,{}) or a class name", item, K)
                                 : fmt::format("--class: '{}' is class {} of --classes, but the model has {} classes", item, found, K));
    out.push_back(found);
  }
  if (const int r = first_repeat(out); r >= 0)  // each (image, class) is one column and one set of files
    throw InputError(out[r] < 0 ? std::string("--class: top1 is given twice")
                                : fmt::format("--class: class {} is given twice (in '{}')", out[r], arg));
  return out;
}

// Refuses, before any work, outputs that would overwrite an input or each other: every file of
// --out is named after its image's stem (STEM.png, STEM_METHOD_CLASS.png, grid.png), and
// --save-maps must be none of the files read.
void check_outputs(const ExplainOptions& o) {
  std::vector<NamedPath> inputs = {{"--weights", o.weights}, {"--rise-cache", o.sal.rise_cache}, {"--boxes", o.boxes},
                                   {"--classes", o.names_file}};
  for (const std::string& c : o.sal.lcam_ckpts) inputs.push_back({"--lcam", c});
  for (const std::string& image : o.images) inputs.push_back({"an IMAGE", image});
  if (!o.save_maps.empty()) check_output_file(o.save_maps, "--save-maps", inputs);
  // The files --out receives: STEM.png and STEM_METHOD_CLASS.png per image, and grid.png.
  std::map<std::string, std::string> by_stem;
  for (const std::string& image : o.images) {
    const std::string stem = fs::path(image).stem().string();
    if (auto [it, fresh] = by_stem.emplace(stem, image); !fresh && it->second != image)
      throw InputError(fmt::format("{} and {}: both would be written as {}/{}.png and {}_*.png; give them different names",
                                   it->second, image, o.out, stem, stem));
  }
  // Whether `name` is one of the maps of an image other than `self`: STEM_METHOD_CLASS.png.
  auto a_map = [&](const std::string& name, const std::string& self) -> const std::string* {
    for (const auto& [stem, image] : by_stem) {
      if (stem == self || name.size() <= stem.size() + 5 || name.compare(0, stem.size() + 1, stem + "_") != 0) continue;
      const std::string rest = name.substr(stem.size() + 1, name.size() - stem.size() - 5);  // METHOD_CLASS
      const size_t cut = rest.rfind('_');
      if (name.compare(name.size() - 4, 4, ".png") == 0 && cut != std::string::npos && cut > 0 && cut + 1 < rest.size() &&
          rest.find_first_not_of("0123456789", cut + 1) == std::string::npos)
        return &image;
    }
    return nullptr;
  };
  for (const auto& [stem, image] : by_stem) {
    if (stem == "grid") throw InputError(fmt::format("{}: its picture {}/grid.png would be replaced by the grid; rename it", image, o.out));
    if (const std::string* other = a_map(stem + ".png", stem))
      throw InputError(fmt::format("{} and {}: the picture of the one would be a map of the other; give them other names",
                                   *other, image));
  }
  std::error_code ec;
  for (const std::string& image : o.images) {
    const fs::path parent = fs::path(image).parent_path().empty() ? fs::path(".") : fs::path(image).parent_path();
    if (!fs::equivalent(parent, o.out, ec)) continue;
    const std::string name = fs::path(image).filename().string();
    const bool picture = fs::path(name).extension() == ".png" && by_stem.count(fs::path(name).stem().string()) > 0;
    if (name == "grid.png" || picture || a_map(name, ""))
      throw InputError(fmt::format("{}: --out {} would overwrite it; write the pictures elsewhere", image, o.out));
  }
}

}  // namespace

int run_explain(const ExplainOptions& o) {
  check_outputs(o);
  const Device dev = o.rt.apply();
  auto model = load_model(o.weights, o.arch, dev);
  const int K = model->num_classes();
  const std::vector<ClassName> names = class_names_for(o.names_file, K);
  const std::vector<int> wanted = parse_classes(o.classes_arg, names, K);
  SaliencyOptions so = o.sal;
  so.size = o.size.crop;
  SaliencyMethods sal(*model, so, dev);
  const int S = o.size.crop;
  const std::vector<std::string>& methods = sal.names();
  auto class_label = [&](int c) { return c < static_cast<int>(names.size()) ? names[c].name : fmt::format("class {}", c); };
  const std::map<std::string, Box> boxes = o.boxes.empty() ? std::map<std::string, Box>{} : read_boxes(o.boxes, o.size.crop);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (!fs::is_directory(o.out)) throw InputError(fmt::format("{}: cannot create output folder (--out)", o.out));
  std::unique_ptr<h5::Writer> maps;
  if (!o.save_maps.empty()) maps = std::make_unique<h5::Writer>(o.save_maps);
  // The grid (paper's figure 3): a column per (image, class), the image on top, a row per method.
  std::vector<GridColumn> grid;
  // A box belongs to an image whose path is its PATH or ends with /PATH.
  auto box_of = [&](const std::string& path) -> const Box* {
    for (const auto& [p, b] : boxes)
      if (path == p || (path.size() > p.size() && path.compare(path.size() - p.size(), p.size(), p) == 0 &&
                        path[path.size() - p.size() - 1] == '/'))
        return &b;
    return nullptr;
  };
  int failed = 0;
  for (const std::string& path : o.images) {
    Tensor x01 = Tensor::empty({1, 3, S, S});
    try {
      load_eval_image(path, x01.data(), o.size.resize, S);
    } catch (const InputError& e) {
      image_error(e.what());
      ++failed;
      continue;
    }
    Tensor xd = x01.to(dev), xn = Tensor::empty(x01.shape(), dev);
    normalize_forward(xn, xd, kImagenetMean, kImagenetStd);
    const std::vector<float> logits = model->logits(xn).to_vector();
    const int top1 = lcam::top1(logits.data(), K);
    const Box* box = box_of(path);
    const std::string stem = fs::path(path).stem().string();
    const ImageU8 img = to_image(x01.data(), S, S);
    write_png((fs::path(o.out) / (stem + ".png")).string(), img);
    std::vector<int> done;  // top1 may be one of the classes asked for by number
    for (int c : wanted) {
      const int cls = c < 0 ? top1 : c;
      if (std::find(done.begin(), done.end(), cls) != done.end()) continue;
      done.push_back(cls);
      GridColumn col{img, class_label(cls) + (cls == top1 ? "" : " (not top-1)"), {}, box ? *box : Box{}};
      for (const auto& m : methods) {
        const std::vector<float> sm = sal.compute(m, xd, {cls}).to_vector();
        const std::string file = fmt::format("{}_{}_{}.png", stem, m, cls);
        col.overlays.push_back(overlay(img, sm.data()));
        write_png((fs::path(o.out) / file).string(), col.overlays.back());
        if (maps) maps->write(fmt::format("{}/{}/{}", stem, m, cls), Tensor::from_vector(sm, {S, S}));
        if (!o.quiet) std::printf("%s: %s %d (%s)%s -> %s\n", path.c_str(), m.c_str(), cls, class_label(cls).c_str(),
                    cls == top1 ? ", predicted" : "", (fs::path(o.out) / file).string().c_str());
      }
      grid.push_back(std::move(col));
    }
  }
  if (maps) maps->commit();
  if (!grid.empty()) {
    const std::string file = (fs::path(o.out) / "grid.png").string();
    write_png(file, grid_figure(grid, methods));
    std::printf("grid: %s\n", file.c_str());
  }
  return images_status(failed, o.images.size());
}

Run setup_explain(CLI::App& sub) {
  auto o = std::make_shared<ExplainOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "backbone weights: HDF5 with torchvision names, or a torch.save .pth")->required();
  o->sal.add_to(sub, /*required=*/false, "lcam");
  sub.add_option("--class", o->classes_arg, "top1, or class indices/names separated by commas");
  sub.add_option("--classes", o->names_file, "class-name file (default: the 1000 ImageNet classes)");
  sub.add_option("--boxes", o->boxes, "PATH X0 Y0 X1 Y1 per line (crop pixels): boxes drawn on the grid");
  sub.add_option("--save-maps", o->save_maps, "also write the raw maps (crop x crop) to this HDF5 file");
  sub.add_option("--out", o->out, "folder for the pictures")->required();
  o->rt.add_to(sub);
  o->size.add_to(sub);
  sub.add_option("images", o->images, "image files")->required();
  return [o] { return run_explain(*o); };
}

}  // namespace lcam::app
