// evaluation.h — the paper's evaluation of saliency maps, exactly as the official code ran it:
// keep the top p% pixels of a map (soft values kept, the rest zeroed; ties at the threshold
// broken in row-major order, so exactly L - int((1 - p/100) L) pixels stay), multiply the [0,1]
// image by it, normalize, and compare the softmax score O of the class with the score Y on the
// unmasked image: Average Drop = 100/N sum max(0, Y - O) / Y, Increase in Confidence = 100/N
// count(O > Y). Also the localization scores of maps against an object's bounding box: the
// pointing game (is the map's maximum inside the box) and the share of the map's energy inside
// it. Omits the saliency methods themselves (models/lcam.h, models/cams.h).
#pragma once
#include <cstdint>  // int64_t
#include <vector>   // std::vector

#include "engine/tensor.h"  // Tensor
#include "loaders/dataset.h" // Box
#include "models/model.h"   // Model

namespace lcam {

// out[L] = sm[L] with its int((1 - keep/100) * L) lowest values zeroed (stable order: of equal
// values the first in row-major order go first). A selection, O(L), not a sort.
void keep_top(float* out, const float* sm, int64_t L, int keep_percent);
// The same for each map of host tensors [N,...] (out and sm of one shape), maps in parallel.
void keep_top(Tensor& out, const Tensor& sm, int keep_percent);
// For each keep percentage: the softmax probability of classes[n] on image n of x01 [N,3,H,W]
// multiplied by keep_top(sm[n], keep) (sm [N,1,H,W] on any device).
std::vector<std::vector<float>> kept_scores(Model& model, const Tensor& x01, const Tensor& sm, const std::vector<int>& keeps,
                                            const std::vector<int>& classes);

// Softmax probability of classes[n] in row n of logits [N,K].
std::vector<float> class_probs(const Tensor& logits, const std::vector<int>& classes);
// The same left on the logits' device: out[N] = softmax(logits)[n, class], with rows from
// class_prob_rows (int32 [N] = n * K + classes[n], checked and uploaded without waiting).
Tensor class_prob_rows(const std::vector<int>& classes, int64_t K, Device dev);
void class_probs_into(Tensor& out, const Tensor& logits, const Tensor& rows);

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

// Localization of maps (h x w, non-negative) against boxes, accumulated over images. A hit: the
// map's maximum (the first in row-major order when several pixels share it) lies in the box.
// Energy: sum of the map inside the box / sum over the map (0 for an all-zero map).
struct Localization {
  int64_t hits = 0, count = 0;
  double energy_sum = 0;
  void add(const float* sm, int h, int w, const Box& box);
  double pointing_game() const { return count ? 100.0 * hits / count : 0.0; }
  double energy() const { return count ? 100.0 * energy_sum / count : 0.0; }
};

}  // namespace lcam
