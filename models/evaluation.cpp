// evaluation.cpp — see evaluation.h.
#include "models/evaluation.h"

#include <algorithm>  // std::nth_element, std::clamp, std::copy, std::max
#include <cmath>      // std::exp

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError, LCAM_REQUIRE
#include "engine/cuda_runtime.h"  // cuda::TraceRange
#include "engine/ops.h"     // mask_mul_forward, normalize_forward, softmax_forward

namespace lcam {
namespace {
}  // namespace

void keep_top(float* out, const float* sm, int64_t L, int keep_percent) {
  const double p = keep_percent / 100.0;
  const int64_t zeroed = std::clamp<int64_t>(static_cast<int64_t>((1.0 - p) * static_cast<double>(L)), 0, L);
  std::copy(sm, sm + L, out);
  if (zeroed == 0) return;
  // The zeroed-th smallest value t (a selection, not a sort): everything below t goes, and of
  // the values equal to t the first ones in row-major order, as many as are still missing.
  thread_local std::vector<float> v;
  v.assign(sm, sm + L);
  std::nth_element(v.begin(), v.begin() + (zeroed - 1), v.end());
  const float t = v[static_cast<size_t>(zeroed - 1)];
  int64_t ties = zeroed;
  for (int64_t i = 0; i < L; ++i) ties -= sm[i] < t;
  for (int64_t i = 0; i < L; ++i)
    if (sm[i] < t || (sm[i] == t && ties-- > 0)) out[i] = 0.f;
}

void keep_top(Tensor& out, const Tensor& sm, int keep_percent) {
  LCAM_REQUIRE(out.device() == Device::CPU && sm.device() == Device::CPU && out.shape() == sm.shape() && sm.ndim() >= 2,
               "keep_top: host maps [N,...] of one shape");
  const int64_t N = sm.dim(0), L = sm.numel() / std::max<int64_t>(N, 1);
  float* o = out.data();
  const float* s = sm.data();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t n = 0; n < N; ++n) keep_top(o + n * L, s + n * L, L, keep_percent);
}

std::vector<std::vector<float>> kept_scores(Model& model, const Tensor& x01, const Tensor& sm, const std::vector<int>& keeps,
                                            const std::vector<int>& classes) {
  cuda::TraceRange range("ad/ic thresholds");
  const Device dev = x01.device();
  const int64_t N = x01.dim(0), T = static_cast<int64_t>(keeps.size());
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  const Tensor host = sm.device() == Device::CPU ? sm : sm.to(Device::CPU);
  // Every threshold's maps first (on the host: the official tie rule is a selection), then
  // every forward pass queued back to back, then one read of all the scores.
  // The thresholded maps go up from page-locked memory (a large pageable copy would wait for
  // the stream); they stay alive until the final read has seen every pass.
  const Tensor rows = class_prob_rows(classes, model.num_classes(), dev);
  Tensor scores = Tensor::empty({T, N}, dev);
  std::vector<Tensor> staged;
  for (int64_t k = 0; k < T; ++k) {
    Tensor t = dev == Device::CPU ? Tensor::empty(host.shape()) : Tensor::empty_pinned(host.shape());
    staged.push_back(t);
    keep_top(t, host, keeps[k]);
    Tensor x = Tensor::empty(x01.shape(), dev), xn = Tensor::empty(x01.shape(), dev);
    mask_mul_forward(x, x01, dev == Device::CPU ? t : t.to_async(dev));
    normalize_forward(xn, x, kImagenetMean, kImagenetStd);
    Tensor out = scores.slice0(k, k + 1).reshape({N});
    class_probs_into(out, model.logits(xn), rows);
  }
  const std::vector<float> v = scores.to_vector();
  std::vector<std::vector<float>> out;
  for (int64_t k = 0; k < T; ++k) out.emplace_back(v.begin() + k * N, v.begin() + (k + 1) * N);
  return out;
}

std::vector<float> class_scores(Model& model, const Tensor& x01, const Tensor& masks, const std::vector<int>& classes) {
  const Device dev = x01.device();
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  Tensor x = x01;
  if (masks.defined()) {
    x = Tensor::empty(x01.shape(), dev);
    mask_mul_forward(x, x01, masks);
  }
  Tensor xn = Tensor::empty(x.shape(), dev);
  normalize_forward(xn, x, kImagenetMean, kImagenetStd);
  return class_probs(model.logits(xn), classes);
}

std::vector<float> class_probs(const Tensor& logits, const std::vector<int>& classes) {
  LCAM_REQUIRE(logits.ndim() == 2 && static_cast<int64_t>(classes.size()) == logits.dim(0), "one class per row");
  Tensor out = Tensor::empty({logits.dim(0)}, logits.device());
  class_probs_into(out, logits, class_prob_rows(classes, logits.dim(1), logits.device()));
  return out.to_vector();
}

Tensor class_prob_rows(const std::vector<int>& classes, int64_t K, Device dev) {
  check_classes(classes, K, "class");
  const int64_t N = static_cast<int64_t>(classes.size());
  std::vector<int32_t> rows(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) rows[n] = static_cast<int32_t>(n * K + classes[n]);
  return Tensor::from_i32(rows, {N}, dev);
}

void class_probs_into(Tensor& out, const Tensor& logits, const Tensor& rows) {
  LCAM_REQUIRE(logits.ndim() == 2 && out.numel() == logits.dim(0), "class_probs_into: out [N] for logits [N,K]");
  const int64_t N = logits.dim(0), K = logits.dim(1);
  Tensor probs = Tensor::empty(logits.shape(), logits.device());
  softmax_forward(probs, logits);
  Tensor o = out.reshape({N, 1});
  take_rows(o, probs.reshape({N * K, 1}), rows);
}

void Adic::add(double Y, double O) {
  drop_sum += std::max(0.0, Y - O) / Y;
  increases += O > Y;
  ++count;
}

void Localization::add(const float* sm, int h, int w, const Box& box) {
  const int64_t L = static_cast<int64_t>(h) * w;
  int64_t best = 0;
  double total = 0, inside = 0;
  for (int64_t i = 0; i < L; ++i) {
    if (sm[i] > sm[best]) best = i;
    const int y = static_cast<int>(i / w), x = static_cast<int>(i % w);
    total += sm[i];
    if (x >= box.x0 && x < box.x1 && y >= box.y0 && y < box.y1) inside += sm[i];
  }
  const int by = static_cast<int>(best / w), bx = static_cast<int>(best % w);
  hits += bx >= box.x0 && bx < box.x1 && by >= box.y0 && by < box.y1;
  energy_sum += total > 0 ? inside / total : 0.0;
  ++count;
}

}  // namespace lcam
