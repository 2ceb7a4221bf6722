// evaluation.h — the paper's evaluation of saliency maps, exactly as the official code ran it:
// keep the top p% pixels of a map (soft values kept, the rest zeroed; ties at the threshold
// broken in row-major order, so exactly L - int((1 - p/100) L) pixels stay), multiply the [0,1]
// image by it, normalize, and compare the softmax score O of the class with the score Y on the
// unmasked image: Average Drop = 100/N sum max(0, Y - O) / Y, Increase in Confidence = 100/N
// count(O > Y). Omits the saliency methods themselves (models/lcam.h, models/cams.h).
#pragma once
#include <cstdint>  // int64_t
#include <vector>   // std::vector

#include "engine/tensor.h"  // Tensor
#include "models/model.h"   // Model

namespace lcam {

// out[L] = sm[L] with its int((1 - keep/100) * L) lowest values zeroed (stable order).
void keep_top(float* out, const float* sm, int64_t L, int keep_percent);

// Softmax probability of classes[n] in row n of logits [N,K].
std::vector<float> class_probs(const Tensor& logits, const std::vector<int>& classes);

// Softmax probability of classes[n] for each image of x01 [N,3,H,W] (on the model's device),
// multiplied first by masks [N,1,H,W] when masks is defined.
std::vector<float> class_scores(Model& model, const Tensor& x01, const Tensor& masks, const std::vector<int>& classes);

struct Adic {
  double drop_sum = 0;  // sum of max(0, Y - O) / Y
  int64_t increases = 0, count = 0;
  void add(double Y, double O);
  double average_drop() const { return count ? 100.0 * drop_sum / count : 0.0; }
  double increase_in_confidence() const { return count ? 100.0 * increases / count : 0.0; }
};

}  // namespace lcam
