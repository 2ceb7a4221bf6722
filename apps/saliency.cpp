// saliency.cpp — see saliency.h.
#include "apps/saliency.h"

#include <algorithm>  // std::find
#include <cmath>      // std::exp
#include <filesystem>  // std::filesystem::exists (--rise-cache)
#include <random>     // std::mt19937_64 (random control)

#include <fmt/format.h>  // fmt::format

#include "apps/cli.h"           // kPositive, kNonNegative, check_output_file
#include "apps/progress.h"      // parse_name_list
#include "engine/common.h"      // InputError
#include "engine/ops.h"         // upsample_bilinear_forward, minmax_normalize
#include "kernels/bodies.h"     // kern::splitmix64
#include "models/cams.h"        // grad_cam, score_cam, rise, rise_masks_cached
#include "models/checkpoint.h"  // load_checkpoint

namespace lcam::app {
namespace {
const std::vector<std::string> kMethods = {"lcam",     "lcam-img", "lcam-fm", "lcam-img7x7", "gradcam", "gradcampp",
                                           "gradcampp-paper", "scorecam", "rise", "center", "random"};
constexpr const char* kMethodList =
    "lcam, lcam-img, lcam-fm, lcam-img7x7, gradcam, gradcampp, gradcampp-paper, scorecam, rise, center or random";

// The `center` control: exp(-r^2 / (2 (S/4)^2)) around the image centre, 1 at the centre.
Tensor center_maps(int64_t N, int H, int W) {
  Tensor t = Tensor::empty({N, 1, H, W});
  const float sy = H / 4.f, sx = W / 4.f, cy = (H - 1) / 2.f, cx = (W - 1) / 2.f;
  for (int64_t n = 0; n < N; ++n)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const float dy = (y - cy) / sy, dx = (x - cx) / sx;
        t.data()[(n * H + y) * W + x] = std::exp(-0.5f * (dy * dy + dx * dx));
      }
  return t;
}
}  // namespace

void SaliencyOptions::add_to(CLI::App& sub, bool required, const std::string& default_method) {
  methods = default_method;
  auto* m = sub.add_option("--method", methods, std::string("comma-separated: ") + kMethodList);
  if (required) m->required();
  sub.add_option("--lcam", lcam_ckpts, "L-CAM checkpoint (lcam train --out, or an L-CAM model saved by torch.save); several for lcam-img, lcam-fm...")
      ->delimiter(',');
  sub.add_option("--lcam-method", lcam_method, "what a checkpoint that does not say was trained as: img, fm or img7x7")
      ->check(CLI::IsMember({"img", "fm", "img7x7"}));
  sub.add_option("--chunk", chunk, "masked images per forward pass (Score-CAM, RISE)")->transform(kPositive);
  sub.add_option("--rise-masks", rise_n, "RISE masks (default 4000 vgg16, 8000 resnet50)")->transform(integer_in(1, 65536, "a number of masks from 1 to 65536"));
  sub.add_option("--rise-seed", rise_seed, "seed of the RISE masks and of the random control")->transform(kSeed);
  sub.add_option("--rise-cache", rise_cache, "HDF5 file caching the RISE masks between runs");
}

std::vector<std::string> SaliencyMethods::parse_names(const std::string& methods) {
  std::vector<std::string> names;
  for (const std::string& m : parse_name_list("--method", methods, kMethods))
    if (std::find(names.begin(), names.end(), m) == names.end()) names.push_back(m);
  return names;
}

SaliencyMethods::SaliencyMethods(Model& model, const SaliencyOptions& o, Device dev)
    : model_(model), opt_(o), names_(parse_names(o.methods)) {
  auto wants = [&](const char* name) { return std::find(names_.begin(), names_.end(), name) != names_.end(); };
  if (opt_.rise_n <= 0) opt_.rise_n = model.config().arch == "vgg16" ? 4000 : 8000;
  // Each checkpoint records the variant it was trained as; --lcam-method covers those that do not.
  struct Loaded {
    std::string path;
    Attention att;
  };
  std::map<std::string, Loaded> by_variant;  // "img" -> its checkpoint
  for (const auto& path : o.lcam_ckpts) {
    CheckpointState st;
    Attention att = load_checkpoint(path, model.feature_channels(), dev, &st);
    if (att.w.dim(0) != model.num_classes())
      throw InputError(fmt::format("{}: {} classes, the model has {}", path, att.w.dim(0), model.num_classes()));
    const std::string v = st.method.empty() ? o.lcam_method : st.method;
    if (by_variant.count(v))
      throw InputError(fmt::format("--lcam: {} and {} are both L-CAM-{} checkpoints", by_variant[v].path, path, v));
    by_variant[v] = {path, std::move(att)};
  }
  std::vector<std::string> used;  // the variants the methods read
  for (const auto& name : names_) {
    if (name.rfind("lcam", 0) != 0) continue;
    std::string variant;
    if (name == "lcam") {
      if (o.lcam_ckpts.size() != 1)
        throw InputError(o.lcam_ckpts.empty() ? "--method lcam needs --lcam CKPT.h5 (a checkpoint from lcam train)"
                                              : "--method lcam needs exactly one --lcam checkpoint; with several, "
                                                "ask for lcam-img, lcam-fm or lcam-img7x7");
      variant = by_variant.begin()->first;
    } else {
      variant = name.substr(5);
      if (!by_variant.count(variant))
        throw InputError(fmt::format("--method {} needs an L-CAM-{} checkpoint among --lcam", name, variant));
    }
    LcamOptions lo;
    lo.method = parse_lcam_method(variant);
    lcam_[name] = {std::make_unique<Lcam>(model, lo), by_variant[variant].att};
    used.push_back(variant);
  }
  // A checkpoint no method reads is a mistake in the command (a method left out of --method).
  for (const auto& [v, loaded] : by_variant)
    if (std::find(used.begin(), used.end(), v) == used.end())
      throw InputError(fmt::format("--lcam {}: an L-CAM-{} checkpoint, but --method {} asks for no {} map (add lcam-{} to --method, "
                                   "or leave the checkpoint out)", loaded.path, v, opt_.methods, used.empty() ? "L-CAM" : "lcam-" + v, v));
  if (wants("rise")) {
    if (!o.rise_cache.empty() && !std::filesystem::exists(o.rise_cache))
      check_output_file(o.rise_cache, "--rise-cache");  // written once the masks are drawn
    rise_masks_ = rise_masks_cached(o.rise_cache, opt_.rise_n, 7, 0.5f, o.size, o.size, o.rise_seed).to(dev);
  }
}

Tensor SaliencyMethods::compute(const std::string& m, const Tensor& x01, const std::vector<int>& classes) {
  if (auto it = lcam_.find(m); it != lcam_.end()) return it->second.lcam->saliency(it->second.att, x01, classes);
  if (m == "scorecam") return score_cam(model_, x01, classes, opt_.chunk);
  if (m == "rise") return rise(model_, x01, classes, rise_masks_, opt_.chunk);
  const int64_t N = x01.dim(0);
  const int H = static_cast<int>(x01.dim(2)), W = static_cast<int>(x01.dim(3));
  if (m == "center") return center_maps(N, H, W).to(x01.device());
  if (m == "random") {
    // 7x7 uniform noise per image (the grid of RISE's masks), bilinearly upsampled, min-max scaled.
    Tensor noise = Tensor::empty({N, 1, 7, 7});
    std::mt19937_64 rng(kern::splitmix64(opt_.rise_seed ^ kern::splitmix64(++random_draws_)));
    std::uniform_real_distribution<float> u(0.f, 1.f);
    for (int64_t i = 0; i < noise.numel(); ++i) noise.data()[i] = u(rng);
    Tensor up = Tensor::empty({N, 1, H, W}, x01.device()), out = Tensor::empty({N, 1, H, W}, x01.device());
    upsample_bilinear_forward(up, noise.to(x01.device()));
    minmax_normalize(out, up);
    return out;
  }
  return grad_cam(model_, x01, classes, parse_grad_cam(m)).saliency;
}

int SaliencyMethods::forward_passes(const std::string& m) const {
  return m == "scorecam" ? model_.feature_channels() : m == "rise" ? opt_.rise_n : (m == "center" || m == "random") ? 0 : 1;
}

}  // namespace lcam::app
