// saliency.h — what `lcam explain`, `lcam eval` and `lcam demo` share: the saliency-method flags
// (--method list, --lcam checkpoints, --chunk, RISE settings) and one object that computes any
// method's maps for a batch. Besides the paper's methods it offers two controls that look at
// nothing: `center` (a centred Gaussian) and `random` (seeded smooth noise), the floor any
// explanation must beat. Omits the methods themselves (models/lcam.h, models/cams.h).
#pragma once
#include <map>     // std::map
#include <memory>  // std::unique_ptr
#include <string>  // std::string
#include <vector>  // std::vector

#include <CLI/CLI.hpp>  // CLI::App

#include "models/lcam.h"   // Lcam, Attention
#include "models/model.h"  // Model

namespace lcam::app {

struct SaliencyOptions {
  std::string methods, lcam_method = "img", rise_cache;
  std::vector<std::string> lcam_ckpts;  // --lcam, one per trained variant
  int chunk = 64, rise_n = 0, size = 224;  // size: side of the images the maps are for
  uint64_t rise_seed = 0;                  // also seeds the `random` control
  // Registers --method (required when `required`), --lcam, --lcam-method, --chunk, --rise-*.
  void add_to(CLI::App& sub, bool required, const std::string& default_method = "");
};

class SaliencyMethods {
 public:
  // Validates the method names, loads the L-CAM checkpoints and draws (or reads) the RISE masks
  // when those methods are asked for. Method `lcam` is the one --lcam checkpoint; `lcam-img`,
  // `lcam-fm` and `lcam-img7x7` pick, among several, the one trained as that variant.
  SaliencyMethods(Model& model, const SaliencyOptions& o, Device dev);
  const std::vector<std::string>& names() const { return names_; }
  // The comma-separated method list, checked (InputError naming an unknown method), duplicates
  // dropped.
  static std::vector<std::string> parse_names(const std::string& methods);
  // Maps [N,1,H,W] in [0,1] of `method` for one class per image of x01 [N,3,H,W].
  Tensor compute(const std::string& method, const Tensor& x01, const std::vector<int>& classes);
  // Forward passes per map (#FW of the paper's table).
  int forward_passes(const std::string& method) const;

 private:
  Model& model_;
  SaliencyOptions opt_;
  std::vector<std::string> names_;
  struct Trained {
    std::unique_ptr<Lcam> lcam;
    Attention att;
  };
  std::map<std::string, Trained> lcam_;  // by method name
  Tensor rise_masks_;
  uint64_t random_draws_ = 0;
};

}  // namespace lcam::app
