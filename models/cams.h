// cams.h — gradient-based saliency maps on a frozen backbone, as the L-CAM paper's comparison
// ran them: Grad-CAM and Grad-CAM++ (the reference implementation's variant, and the paper's
// Eq. 19 behind a flag) on the last conv block (VGG-16 features[29], ResNet-50 layer4). A map is
// ReLU(sum_k w_k A_k), min-max normalized at feature resolution, bilinearly upsampled to the
// image. Omits Score-CAM and RISE (many forward passes; with the evaluation work).
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

}  // namespace lcam
