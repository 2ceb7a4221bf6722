// saliency.h — what `lcam explain` and `lcam eval` share: the saliency-method flags (--method
// list, --lcam checkpoint, --chunk, RISE settings) and one object that computes any method's
// maps for a batch. Omits the methods themselves (models/lcam.h, models/cams.h).
#pragma once
#include <memory>  // std::unique_ptr
#include <string>  // std::string
#include <vector>  // std::vector

#include <CLI/CLI.hpp>  // CLI::App

#include "models/lcam.h"   // Lcam, Attention
#include "models/model.h"  // Model

namespace lcam::app {

struct SaliencyOptions {
  std::string methods, lcam_ckpt, lcam_method = "img", rise_cache;
  int chunk = 64, rise_n = 0, size = 224;  // size: side of the images the maps are for
  uint64_t rise_seed = 0;
  // Registers --method (required when `required`), --lcam, --lcam-method, --chunk, --rise-*.
  void add_to(CLI::App& sub, bool required, const std::string& default_method = "");
};

class SaliencyMethods {
 public:
  // Validates the method names, loads the L-CAM checkpoint and draws (or reads) the RISE masks
  // when those methods are asked for.
  SaliencyMethods(Model& model, const SaliencyOptions& o, Device dev);
  const std::vector<std::string>& names() const { return names_; }
  // Maps [N,1,H,W] in [0,1] of `method` for one class per image of x01 [N,3,H,W].
  Tensor compute(const std::string& method, const Tensor& x01, const std::vector<int>& classes);
  // Forward passes per map (#FW of the paper's table).
  int forward_passes(const std::string& method) const;

 private:
  Model& model_;
  SaliencyOptions opt_;
  std::vector<std::string> names_;
  std::unique_ptr<Lcam> lcam_;
  Attention att_;
  Tensor rise_masks_;
};

}  // namespace lcam::app
