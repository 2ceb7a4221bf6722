// cams.cpp — see cams.h.
#include "models/cams.h"

#include <cmath>  // std::exp

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError, LCAM_REQUIRE
#include "engine/ops.h"     // the op set

namespace lcam {
namespace {
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};
}  // namespace

GradCam parse_grad_cam(const std::string& method) {
  if (method == "gradcam") return GradCam::Plain;
  if (method == "gradcampp") return GradCam::PlusPlus;
  if (method == "gradcampp-paper") return GradCam::PlusPlusPaper;
  throw InputError(fmt::format("--method: '{}' is not gradcam, gradcampp or gradcampp-paper", method));
}

CamResult grad_cam(Model& model, const Tensor& x01, const std::vector<int>& classes, GradCam method) {
  const Device dev = x01.device();
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  const int K = model.num_classes();
  Tensor x = Tensor::empty(x01.shape(), dev);
  normalize_forward(x, x01, kMean, kStd);
  Tensor A = model.forward_range(x, 0, model.features_end(), nullptr);
  Tape tape;
  Tensor logits = model.forward_range(A, model.features_end(), model.size(), &tape);
  // d(score)/d(logits), built on the host (N x K is small): the logit itself for Grad-CAM;
  // the softmax probability S_c for Grad-CAM++, dS_c/dz_k = S_c (delta_ck - S_k).
  const std::vector<float> z = logits.to_vector();
  std::vector<float> dz(static_cast<size_t>(N) * K, 0.f), expS(N, 0.f);
  for (int64_t n = 0; n < N; ++n) {
    const int c = classes[n];
    if (c < 0 || c >= K) throw InputError(fmt::format("class {} out of range [0,{})", c, K));
    if (method == GradCam::Plain) {
      dz[n * K + c] = 1.f;
      continue;
    }
    double m = z[n * K], s = 0;
    for (int k = 1; k < K; ++k) m = std::max<double>(m, z[n * K + k]);
    for (int k = 0; k < K; ++k) s += std::exp(z[n * K + k] - m);
    const double Sc = std::exp(z[n * K + c] - m) / s;
    for (int k = 0; k < K; ++k) {
      const double Sk = std::exp(z[n * K + k] - m) / s;
      dz[n * K + k] = static_cast<float>(Sc * ((k == c ? 1.0 : 0.0) - Sk));
    }
    expS[n] = static_cast<float>(std::exp(Sc));
  }
  Tensor g = model.backward_range(tape, Tensor::from_vector(dz, {N, K}, dev), model.features_end(), model.size());
  CamResult r;
  const int64_t C = A.dim(1), h = A.dim(2), w = A.dim(3);
  r.weights = Tensor::empty({N, C}, dev);
  const int kind = method == GradCam::Plain ? 0 : method == GradCam::PlusPlus ? 1 : 2;
  cam_weights(r.weights, A, g, kind ? Tensor::from_vector(expS, {N}, dev) : Tensor(), kind);
  // sum_k w[n,k] A[n,k]: the attention's gathered GEMM with the weights as a table of N rows.
  Tensor rows = Tensor::empty({N, 1}, Device::CPU, DType::I32);
  for (int64_t n = 0; n < N; ++n) rows.data_i32()[n] = static_cast<int32_t>(n);
  Tensor raw = Tensor::empty({N, 1, h, w}, dev);
  attention_forward(raw, A, r.weights, Tensor::zeros({N}, dev), dev == Device::CPU ? rows : rows.to(dev));
  relu_forward(raw, raw);
  r.cam = Tensor::empty(raw.shape(), dev);
  minmax_normalize(r.cam, raw);
  r.saliency = Tensor::empty({N, 1, x01.dim(2), x01.dim(3)}, dev);
  upsample_bilinear_forward(r.saliency, r.cam);
  return r;
}

}  // namespace lcam
