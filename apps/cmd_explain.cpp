// cmd_explain.cpp — `lcam explain`: saliency maps of images for a class (default: the
// predicted one), written as JET heat-map overlays on the 224x224 center crop the network saw
// (DIR/STEM.png, DIR/STEM_METHOD_CLASS.png), and optionally as raw maps in HDF5. Methods so
// lcam (one forward pass of a trained attention mechanism, --lcam CKPT), gradcam, gradcampp,
// gradcampp-paper, scorecam and rise (masks seeded, optionally cached).
#include <algorithm>   // std::find
#include <cstdio>      // std::printf, std::fprintf
#include <filesystem>  // create_directories, path stem
#include <sstream>     // std::stringstream

#include <fmt/format.h>  // fmt::format

#include "apps/cli.h"           // RuntimeOptions, kImagenetMean/Std
#include "apps/figures.h"       // overlay, to_image
#include "engine/common.h"      // InputError
#include "engine/ops.h"         // normalize_forward
#include "loaders/classes.h"    // imagenet_classes, load_class_names
#include "loaders/hdf5.h"       // h5::Writer (--save-maps)
#include "loaders/image.h"      // load_eval_image, write_png
#include "models/cams.h"        // grad_cam
#include "models/checkpoint.h"  // load_checkpoint
#include "models/lcam.h"        // Lcam
#include "models/model.h"       // load_model

namespace fs = std::filesystem;

namespace lcam::app {
namespace {

struct ExplainOptions {
  RuntimeOptions rt;
  std::string arch, weights, method = "lcam", lcam_ckpt, lcam_method = "img", classes_arg = "top1", names_file,
                            save_maps, out, rise_cache;
  int chunk = 64, rise_n = 0;
  uint64_t rise_seed = 0;
  std::vector<std::string> images;
};

// "top1", or comma-separated class indices or names; -1 stands for top-1.
std::vector<int> parse_classes(const std::string& arg, const std::vector<ClassName>& names, int K) {
  std::vector<int> out;
  std::stringstream in(arg);
  std::string item;
  while (std::getline(in, item, ',')) {
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
    if (found < 0) throw InputError(fmt::format("--class: '{}' is not top1, a class index in [0,{}) or a class name", item, K));
    out.push_back(found);
  }
  if (out.empty()) throw InputError("--class: empty");
  return out;
}

int run_explain(const ExplainOptions& o) {
  std::vector<std::string> methods;
  {
    std::stringstream in(o.method);
    std::string m;
    while (std::getline(in, m, ','))
      if (!m.empty()) methods.push_back(m);
  }
  const std::vector<std::string> known = {"lcam", "gradcam", "gradcampp", "gradcampp-paper", "scorecam", "rise"};
  for (const auto& m : methods)
    if (std::find(known.begin(), known.end(), m) == known.end())
      throw InputError(fmt::format("--method: '{}' is not lcam, gradcam, gradcampp, gradcampp-paper, scorecam or rise", m));
  if (methods.empty()) throw InputError("--method: empty");
  const bool any_lcam = std::find(methods.begin(), methods.end(), "lcam") != methods.end();
  if (any_lcam && o.lcam_ckpt.empty()) throw InputError("--method lcam needs --lcam CKPT.h5 (a checkpoint from lcam train)");
  const Device dev = o.rt.apply();
  auto model = load_model(o.weights, o.arch, dev);
  const int K = model->num_classes();
  const std::vector<ClassName> names = !o.names_file.empty() ? load_class_names(o.names_file)
                                                             : (K == 1000 ? imagenet_classes() : std::vector<ClassName>{});
  const std::vector<int> wanted = parse_classes(o.classes_arg, names, K);
  auto class_label = [&](int c) { return c < static_cast<int>(names.size()) ? names[c].name : fmt::format("class {}", c); };
  LcamOptions lo;
  lo.method = parse_lcam_method(o.lcam_method);
  Lcam lcam(*model, lo);
  Attention att;
  if (any_lcam) {
    att = load_checkpoint(o.lcam_ckpt, lcam.channels(), dev, nullptr);
    if (att.w.dim(0) != K) throw InputError(fmt::format("{}: {} classes, the model has {}", o.lcam_ckpt, att.w.dim(0), K));
  }
  Tensor rise_m;
  if (std::find(methods.begin(), methods.end(), "rise") != methods.end())
    rise_m = rise_masks_cached(o.rise_cache, o.rise_n > 0 ? o.rise_n : (o.arch == "vgg16" ? 4000 : 8000), 7, 0.5f, 224,
                               224, o.rise_seed)
                 .to(dev);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  if (!fs::is_directory(o.out)) throw InputError(fmt::format("{}: cannot create output folder (--out)", o.out));
  std::unique_ptr<h5::Writer> maps;
  if (!o.save_maps.empty()) maps = std::make_unique<h5::Writer>(o.save_maps);
  // The grid (paper's figure 3): a column per (image, class), the image on top, a row per method.
  std::vector<GridColumn> grid;
  int failed = 0;
  for (const std::string& path : o.images) {
    Tensor x01 = Tensor::empty({1, 3, 224, 224});
    try {
      load_eval_image(path, x01.data());
    } catch (const InputError& e) {
      std::fprintf(stderr, "lcam: error: %s\n", e.what());
      ++failed;
      continue;
    }
    Tensor xd = x01.to(dev), xn = Tensor::empty(x01.shape(), dev);
    normalize_forward(xn, xd, kImagenetMean, kImagenetStd);
    const std::vector<float> logits = model->logits(xn).to_vector();
    int top1 = 0;
    for (int k = 1; k < K; ++k)
      if (logits[k] > logits[top1]) top1 = k;
    const std::string stem = fs::path(path).stem().string();
    const ImageU8 img = to_image(x01.data(), 224, 224);
    write_png((fs::path(o.out) / (stem + ".png")).string(), img);
    for (int c : wanted) {
      const int cls = c < 0 ? top1 : c;
      GridColumn col{img, class_label(cls) + (cls == top1 ? "" : " (not top-1)"), {}};
      for (const auto& m : methods) {
        const std::vector<float> sm = (m == "lcam"       ? lcam.saliency(att, xd, {cls})
                                       : m == "scorecam" ? score_cam(*model, xd, {cls}, o.chunk)
                                       : m == "rise"     ? rise(*model, xd, {cls}, rise_m, o.chunk)
                                                         : grad_cam(*model, xd, {cls}, parse_grad_cam(m)).saliency)
                                          .to_vector();
        const std::string file = fmt::format("{}_{}_{}.png", stem, m, cls);
        col.overlays.push_back(overlay(img, sm.data()));
        write_png((fs::path(o.out) / file).string(), col.overlays.back());
        if (maps) maps->write(fmt::format("{}/{}/{}", stem, m, cls), Tensor::from_vector(sm, {224, 224}));
        std::printf("%s: %s %d (%s)%s -> %s\n", path.c_str(), m.c_str(), cls, class_label(cls).c_str(),
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
  if (failed) {
    std::fprintf(stderr, "lcam: %d of %zu images could not be read\n", failed, o.images.size());
    return 2;
  }
  return 0;
}

}  // namespace

Run setup_explain(CLI::App& sub) {
  auto o = std::make_shared<ExplainOptions>();
  sub.add_option("--arch", o->arch, "vgg16 or resnet50")->required()->check(CLI::IsMember({"vgg16", "resnet50"}));
  sub.add_option("--weights", o->weights, "backbone weights (HDF5, torchvision names)")->required();
  sub.add_option("--method", o->method, "comma-separated: lcam, gradcam, gradcampp, gradcampp-paper, scorecam, rise");
  sub.add_option("--chunk", o->chunk, "masked images per forward pass (Score-CAM, RISE)")->check(CLI::PositiveNumber);
  sub.add_option("--rise-masks", o->rise_n, "RISE masks (default 4000 vgg16, 8000 resnet50)")->check(CLI::NonNegativeNumber);
  sub.add_option("--rise-seed", o->rise_seed, "seed of the RISE masks");
  sub.add_option("--rise-cache", o->rise_cache, "HDF5 file caching the RISE masks between runs");
  sub.add_option("--lcam", o->lcam_ckpt, "L-CAM checkpoint (lcam train --out)");
  sub.add_option("--lcam-method", o->lcam_method, "what the checkpoint was trained as: img, fm or img7x7")
      ->check(CLI::IsMember({"img", "fm", "img7x7"}));
  sub.add_option("--class", o->classes_arg, "top1, or class indices/names separated by commas");
  sub.add_option("--classes", o->names_file, "class-name file (default: the 1000 ImageNet classes)");
  sub.add_option("--save-maps", o->save_maps, "also write the raw 224x224 maps to this HDF5 file");
  sub.add_option("--out", o->out, "folder for the pictures")->required();
  o->rt.add_to(sub);
  sub.add_option("images", o->images, "image files")->required();
  return [o] { return run_explain(*o); };
}

}  // namespace lcam::app
