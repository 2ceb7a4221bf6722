// cams.h — gradient-based saliency maps on a frozen backbone, as the L-CAM paper's comparison
// ran them: Grad-CAM and Grad-CAM++ (the reference implementation's variant, and the paper's
// Eq. 19 behind a flag) on the last conv block (VGG-16 features[29], ResNet-50 layer4). A map is
// ReLU(sum_k w_k A_k), min-max normalized at feature resolution, bilinearly upsampled to the
// image. Score-CAM and RISE (many forward passes per map) as the comparison ran them, their
// forward passes batched.
#pragma once
#include <string>  // std::string
#include <vector>  // std::vector

#include "engine/tensor.h"  // Tensor
#include "models/model.h"   // Model

namespace lcam {

enum class GradCam { Plain, PlusPlus, PlusPlusPaper };
GradCam parse_grad_cam(const std::string& method);  // gradcam | gradcampp | gradcampp-paper

struct CamResult {
  Tensor saliency;  // [N,1,H,W] in [0,1]
  Tensor weights;   // [N,C] channel weights
  Tensor cam;       // [N,1,h,w] after ReLU and min-max, before upsampling
};

// x01 [N,3,H,W] in [0,1] on the model's device; one class per image. Grad-CAM differentiates the
// class logit; Grad-CAM++ the softmax probability (the reference wrapped the model in a softmax).
CamResult grad_cam(Model& model, const Tensor& x01, const std::vector<int>& classes, GradCam method);

// Score-CAM as the reference ran it: U_k = upsample(ReLU(A_k)) to the image size divided by its
// range (max - min, 1 where 0); each U_k multiplies the normalized image; weight_k = softmax
// probability of the class; SM = minmax(ReLU(sum_k weight_k U_k)) at the image size. C forward
// passes per image, `chunk` at a time. weights (if given) receives [N,C].
Tensor score_cam(Model& model, const Tensor& x01, const std::vector<int>& classes, int chunk = 64,
                 Tensor* weights = nullptr);

// RISE masks: N binary s x s grids drawn with probability p, each bilinearly upsampled
// (align_corners=False) to (s+1)*ceil(H/s) and cropped H x W at shift (dy, dx) in [0, ceil(H/s)).
// From explicit grids [N,s,s] and shifts (dy, dx) per mask, or drawn from a seed.
Tensor rise_masks(const Tensor& grids, const std::vector<std::pair<int, int>>& shifts, int H, int W);
Tensor rise_masks(int count, int s, float p, int H, int W, uint64_t seed);
// The drawn masks, cached: read from `cache` when it holds masks of these settings, otherwise
// drawn and written there (atomically) for the next run. Empty cache: drawn only. An existing
// file that is not such a cache is refused (InputError), never overwritten.
Tensor rise_masks_cached(const std::string& cache, int count, int s, float p, int H, int W, uint64_t seed);
// RISE saliency: minmax(sum_i P_class(normalized x * M_i) M_i) (the 1/(N p) factor cancels in
// the min-max). masks [M,1,H,W] on the model's device; `chunk` masked images per forward pass.
Tensor rise(Model& model, const Tensor& x01, const std::vector<int>& classes, const Tensor& masks, int chunk = 64);

}  // namespace lcam

