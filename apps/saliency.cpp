// saliency.cpp — see saliency.h.
#include "apps/saliency.h"

#include <algorithm>  // std::find
#include <sstream>    // std::stringstream

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"      // InputError
#include "models/cams.h"        // grad_cam, score_cam, rise, rise_masks_cached
#include "models/checkpoint.h"  // load_checkpoint

namespace lcam::app {
namespace {
const std::vector<std::string> kMethods = {"lcam", "gradcam", "gradcampp", "gradcampp-paper", "scorecam", "rise"};
}  // namespace

void SaliencyOptions::add_to(CLI::App& sub, bool required, const std::string& default_method) {
  methods = default_method;
  auto* m = sub.add_option("--method", methods, "comma-separated: lcam, gradcam, gradcampp, gradcampp-paper, scorecam, rise");
  if (required) m->required();
  sub.add_option("--lcam", lcam_ckpt, "L-CAM checkpoint (lcam train --out), for --method lcam");
  sub.add_option("--lcam-method", lcam_method, "what the checkpoint was trained as: img, fm or img7x7")
      ->check(CLI::IsMember({"img", "fm", "img7x7"}));
  sub.add_option("--chunk", chunk, "masked images per forward pass (Score-CAM, RISE)")->check(CLI::PositiveNumber);
  sub.add_option("--rise-masks", rise_n, "RISE masks (default 4000 vgg16, 8000 resnet50)")->check(CLI::NonNegativeNumber);
  sub.add_option("--rise-seed", rise_seed, "seed of the RISE masks");
  sub.add_option("--rise-cache", rise_cache, "HDF5 file caching the RISE masks between runs");
}

SaliencyMethods::SaliencyMethods(Model& model, const SaliencyOptions& o, Device dev) : model_(model), opt_(o) {
  std::stringstream in(o.methods);
  std::string m;
  while (std::getline(in, m, ',')) {
    if (m.empty()) continue;
    if (std::find(kMethods.begin(), kMethods.end(), m) == kMethods.end())
      throw InputError(fmt::format("--method: '{}' is not lcam, gradcam, gradcampp, gradcampp-paper, scorecam or rise", m));
    names_.push_back(m);
  }
  if (names_.empty()) throw InputError("--method: give one or more of lcam, gradcam, gradcampp, gradcampp-paper, scorecam, rise");
  auto wants = [&](const char* name) { return std::find(names_.begin(), names_.end(), name) != names_.end(); };
  if (opt_.rise_n <= 0) opt_.rise_n = model.config().arch == "vgg16" ? 4000 : 8000;
  if (wants("lcam")) {
    if (o.lcam_ckpt.empty()) throw InputError("--method lcam needs --lcam CKPT.h5 (a checkpoint from lcam train)");
    LcamOptions lo;
    lo.method = parse_lcam_method(o.lcam_method);
    lcam_ = std::make_unique<Lcam>(model, lo);
    att_ = load_checkpoint(o.lcam_ckpt, lcam_->channels(), dev, nullptr);
    if (att_.w.dim(0) != model.num_classes())
      throw InputError(fmt::format("{}: {} classes, the model has {}", o.lcam_ckpt, att_.w.dim(0), model.num_classes()));
  }
  if (wants("rise")) rise_masks_ = rise_masks_cached(o.rise_cache, opt_.rise_n, 7, 0.5f, o.size, o.size, o.rise_seed).to(dev);
}

Tensor SaliencyMethods::compute(const std::string& m, const Tensor& x01, const std::vector<int>& classes) {
  if (m == "lcam") return lcam_->saliency(att_, x01, classes);
  if (m == "scorecam") return score_cam(model_, x01, classes, opt_.chunk);
  if (m == "rise") return rise(model_, x01, classes, rise_masks_, opt_.chunk);
  return grad_cam(model_, x01, classes, parse_grad_cam(m)).saliency;
}

int SaliencyMethods::forward_passes(const std::string& m) const {
  return m == "scorecam" ? model_.feature_channels() : m == "rise" ? opt_.rise_n : 1;
}

}  // namespace lcam::app
