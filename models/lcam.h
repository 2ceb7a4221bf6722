// lcam.h — the L-CAM attention mechanism (a class-selected 1x1 convolution from the last conv
// block's C maps to one map per class) on a frozen backbone, its training loss and gradients
// (L-CAM-Fm, L-CAM-Img, L-CAM-Img on VGG-16's 7x7 maps) and its inference maps. The paper's
// loss: 1.5 CE(logits, label) + 2 mean((m + 5e-4)^0.3) + 0.01 TV(m), m = sigmoid(c).
// Omits the optimizer and checkpoints (apps/cmd_train.cpp, models/checkpoint.h).
// Letters: N batch, C feature channels, h,w feature size, H,W image size, K classes, J maps
// per image (1 in the paper's selection, N in the official code's a[:, labels]).
#pragma once
#include <cstdint>  // uint64_t
#include <string>   // std::string
#include <vector>   // std::vector

#include "engine/tensor.h"  // Tensor
#include "models/model.h"   // Model

namespace lcam {

enum class LcamMethod { Fm, Img, Img7x7 };
LcamMethod parse_lcam_method(const std::string& s);  // "fm" | "img" | "img7x7"
const char* lcam_method_name(LcamMethod m);

struct LcamOptions {
  LcamMethod method = LcamMethod::Img;
  bool ce_only = false;             // --loss ce: cross-entropy alone
  bool official_selection = false;  // regularize every image's maps for every label of the batch
  bool official_dropout = false;    // VGG-16's classifier dropout active while training (official run)
  float w_ce = 1.5f, w_area = 2.f, w_tv = 0.01f;
  float area_eps = 5e-4f, area_power = 0.3f, tv_border = 0.3f;
};

// The attention's parameters: w [K,C] (stored as attnM.op.weight [K,C,1,1]) and b [K].
struct Attention {
  Tensor w, b;
  // PyTorch's Conv2d default: uniform(-1/sqrt(C), 1/sqrt(C)) for weight and bias, seeded.
  static Attention init(int K, int C, uint64_t seed, Device dev);
};

struct LossTerms {
  double ce = 0, area = 0, tv = 0, total = 0;
  int correct = 0;  // masked predictions equal to the label
  int count = 0;
};

class Lcam {
 public:
  Lcam(Model& backbone, LcamOptions opt);
  const LcamOptions& options() const { return opt_; }
  // Feature channels the attention reads (512 / 2048).
  int channels() const { return backbone_.feature_channels(); }

  // One forward and backward pass on a batch: x01 [N,3,H,W] in [0,1] and labels (model truth)
  // on the attention's device. Writes dw [K,C] and db [K] (overwritten). Returns every term.
  // dropout_seed draws the dropout masks when official_dropout is on (one seed per step).
  // It is step_index + enqueue_forward_backward + loss_terms: on a GPU the step's work is queued
  // without one host synchronization, and the one read of `stats` at the end waits for it.
  LossTerms forward_backward(const Attention& a, const Tensor& x01, const std::vector<int>& labels, Tensor& dw,
                             Tensor& db, uint64_t dropout_seed = 0);

  // The step's index tensors on `dev`, int32: rows [N,J] (the attention rows each image's maps
  // use), own [N] (each image's own map among them) and labels [N]. Checks every label against
  // the classes of the model and of `a` (InputError), then uploads them in one copy, queued
  // without waiting for the device.
  struct StepIndex {
    Tensor rows, own, labels;
  };
  StepIndex step_index(const Attention& a, const std::vector<int>& labels, Device dev) const;
  // The step itself, with no copy to or from the host: returns its statistics on x01's device,
  // values [2N+2] = per-image cross-entropy, the area sum, the TV sum, each image's predicted
  // class (as float) after masking; loss_terms turns them into LossTerms.
  struct StepStats {
    Tensor values;
    // The denominators of the area and TV means (their gradients used the same): the elements
    // of the regularized maps, and 2N (TV's two directions per image).
    double area_count = 0, tv_count = 0;
  };
  StepStats enqueue_forward_backward(const Attention& a, const Tensor& x01, const StepIndex& idx, Tensor& dw,
                                     Tensor& db, uint64_t dropout_seed = 0);
  LossTerms loss_terms(const StepStats& stats, const std::vector<int>& labels) const;
  // The same from the values already read to the host (a PendingRead of stats.values).
  LossTerms loss_terms(const std::vector<float>& values, const StepStats& stats, const std::vector<int>& labels) const;

  // Inference: the pre-sigmoid maps c [N,1,h,w] of the given class per image.
  Tensor class_maps(const Attention& a, const Tensor& x01, const std::vector<int>& classes);
  // The same with the classes already on x01's device (int32 [N,1], checked by the caller).
  Tensor class_maps(const Attention& a, const Tensor& x01, const Tensor& rows);
  // The explanation: c min-max normalized at feature resolution, then bilinearly upsampled to
  // the image size: saliency maps [N,1,H,W] in [0,1]. One forward pass.
  Tensor saliency(const Attention& a, const Tensor& x01, const std::vector<int>& classes);
  // The same from device rows (int32 [N,1]): nothing is copied to or from the host, so that the
  // whole explanation can be captured in a CUDA graph (cuda::Graph).
  Tensor saliency(const Attention& a, const Tensor& x01, const Tensor& rows);
  // The classes as device rows [N,1] for the two overloads above (checked against `a`).
  static Tensor class_rows(const Attention& a, const std::vector<int>& classes, Device dev);

 private:
  Tensor features(const Tensor& x01);  // F [N,C,h,w] of the normalized image
  int feature_end() const;
  Model& backbone_;
  LcamOptions opt_;
  Tensor inv_std_;  // [3] = 1/std, for the backward of normalization
};

}  // namespace lcam
