// cams.cpp — see cams.h.
#include "models/cams.h"

#include <cmath>   // std::exp, std::ceil
#include <filesystem>  // std::filesystem::exists (RISE mask cache)
#include <random>  // std::mt19937_64 (RISE grids and shifts)

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError, LCAM_REQUIRE
#include "engine/cuda_runtime.h"  // cuda::TraceRange
#include "engine/ops.h"     // the op set
#include "loaders/hdf5.h"   // h5::Reader, h5::Writer (RISE mask cache)
#include "models/evaluation.h"  // class_probs

namespace lcam {
namespace {
}  // namespace

GradCam parse_grad_cam(const std::string& method) {
  if (method == "gradcam") return GradCam::Plain;
  if (method == "gradcampp") return GradCam::PlusPlus;
  if (method == "gradcampp-paper") return GradCam::PlusPlusPaper;
  throw InputError(fmt::format("--method: '{}' is not gradcam, gradcampp or gradcampp-paper", method));
}

CamResult grad_cam(Model& model, const Tensor& x01, const std::vector<int>& classes, GradCam method) {
  cuda::TraceRange range(method == GradCam::Plain ? "grad-cam" : "grad-cam++");
  const Device dev = x01.device();
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  const int K = model.num_classes();
  check_classes(classes, K, "class");
  Tensor x = Tensor::empty(x01.shape(), dev);
  normalize_forward(x, x01, kImagenetMean, kImagenetStd);
  Tensor A = model.forward_range(x, 0, model.features_end(), nullptr);
  Tape tape;
  Tensor logits = model.forward_range(A, model.features_end(), model.size(), &tape);
  // d(score)/d(logits), built on the host (N x K is small): the logit itself for Grad-CAM;
  // the softmax probability S_c for Grad-CAM++, dS_c/dz_k = S_c (delta_ck - S_k).
  const std::vector<float> z = logits.to_vector();
  std::vector<float> dz(static_cast<size_t>(N) * K, 0.f), expS(N, 0.f);
  for (int64_t n = 0; n < N; ++n) {
    const int c = classes[n];
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
  std::vector<int32_t> rows(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) rows[n] = static_cast<int32_t>(n);
  Tensor raw = Tensor::empty({N, 1, h, w}, dev);
  attention_forward(raw, A, r.weights, Tensor::zeros({N}, dev), Tensor::from_i32(rows, {N, 1}, dev));
  relu_forward(raw, raw);
  r.cam = Tensor::empty(raw.shape(), dev);
  minmax_normalize(r.cam, raw);
  r.saliency = Tensor::empty({N, 1, x01.dim(2), x01.dim(3)}, dev);
  upsample_bilinear_forward(r.saliency, r.cam);
  return r;
}

namespace {

// scores[k] = the softmax probability of class `cls` for the normalized image xn [1,3,H,W]
// times masks[k] ([K,1,H,W]), `chunk` masked images per forward pass. Nothing is read back: on
// a GPU every chunk of an image is queued back to back.
void all_masked_scores(Tensor& scores, Model& model, const Tensor& xn, const Tensor& masks, int cls, int chunk) {
  const Device dev = xn.device();
  const int64_t K = masks.dim(0);
  // The class's rows in a chunk's flattened probabilities (b * classes + cls): made once, and
  // their first B serve a shorter last chunk.
  const Tensor rows = class_prob_rows(std::vector<int>(static_cast<size_t>(std::min<int64_t>(chunk, K)), cls),
                                      model.num_classes(), dev);
  for (int64_t k0 = 0; k0 < K; k0 += chunk) {
    const int64_t B = std::min<int64_t>(chunk, K - k0);
    Tensor masked = Tensor::empty({B, 3, xn.dim(2), xn.dim(3)}, dev);
    mask_mul_forward(masked, xn, masks.slice0(k0, k0 + B));
    Tensor part = scores.slice0(k0, k0 + B);
    class_probs_into(part, model.logits(masked), rows.slice0(0, B));
  }
}

// SM [1,1,H,W] = minmax(relu(sum_k w_k maps_k)) with maps [K,1,H,W] and w [K] on their device:
// the gathered GEMM with w as a one-row table.
Tensor weighted_map(const Tensor& maps, const Tensor& w, bool relu) {
  const Device dev = maps.device();
  const int64_t K = maps.dim(0), H = maps.dim(2), W = maps.dim(3);
  const Tensor row0 = Tensor::zeros({1, 1}, dev, DType::I32);
  Tensor out = Tensor::empty({1, 1, H, W}, dev);
  attention_forward(out, maps.reshape({1, K, H, W}), w.reshape({1, K}), Tensor::zeros({1}, dev), row0);
  if (relu) relu_forward(out, out);
  Tensor sm = Tensor::empty(out.shape(), dev);
  minmax_normalize(sm, out);
  return sm;
}

}  // namespace

Tensor score_cam(Model& model, const Tensor& x01, const std::vector<int>& classes, int chunk, Tensor* weights) {
  cuda::TraceRange range("score-cam");
  const Device dev = x01.device();
  const int64_t N = x01.dim(0), H = x01.dim(2), W = x01.dim(3);
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  Tensor out = Tensor::empty({N, 1, H, W}, dev);
  Tensor all_w;  // [N,C], made when C is known
  for (int64_t n = 0; n < N; ++n) {
    Tensor x1 = x01.slice0(n, n + 1);
    Tensor xn = Tensor::empty(x1.shape(), dev);
    normalize_forward(xn, x1, kImagenetMean, kImagenetStd);
    Tensor A = model.forward_range(xn, 0, model.features_end(), nullptr);
    const int64_t C = A.dim(1);
    if (!all_w.defined()) all_w = Tensor::empty({N, C}, dev);
    relu_forward(A, A);
    Tensor up = Tensor::empty({1, C, H, W}, dev);
    upsample_bilinear_forward(up, A);
    Tensor U = Tensor::empty({C, 1, H, W}, dev);
    range_scale(U, up.reshape({C, 1, H, W}));
    Tensor w = all_w.slice0(n, n + 1).reshape({C});
    all_masked_scores(w, model, xn, U, classes[n], chunk);
    Tensor dst = out.slice0(n, n + 1);
    dst.copy_from(weighted_map(U, w, true));
  }
  if (!all_w.defined()) all_w = Tensor::empty({N, 0});
  if (weights) *weights = all_w.device() == Device::CPU ? all_w : all_w.to(Device::CPU);
  return out;
}

Tensor rise_masks(const Tensor& grids, const std::vector<std::pair<int, int>>& shifts, int H, int W) {
  const int64_t M = grids.dim(0);
  const int s = static_cast<int>(grids.dim(1));
  LCAM_REQUIRE(grids.ndim() == 3 && grids.dim(2) == s && static_cast<int64_t>(shifts.size()) == M, "rise_masks: grids [M,s,s], one shift each");
  const int cell = (std::max(H, W) + s - 1) / s;  // ceil(H/s) for square images
  const int up = (s + 1) * cell;
  Tensor g = grids.device() == Device::CPU ? grids : grids.to(Device::CPU);
  Tensor big = Tensor::empty({M, 1, up, up});
  upsample_bilinear_forward(big, g.reshape({M, 1, s, s}));
  Tensor out = Tensor::empty({M, 1, H, W});
  const float* b = big.data();
  float* o = out.data();
  for (int64_t m = 0; m < M; ++m) {
    const auto [dy, dx] = shifts[m];
    LCAM_REQUIRE(dy >= 0 && dx >= 0 && dy + H <= up && dx + W <= up, "rise_masks: shift outside the upsampled grid");
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) o[(m * H + y) * W + x] = b[(m * up + dy + y) * up + dx + x];
  }
  return out;
}

Tensor rise_masks(int count, int s, float p, int H, int W, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const int cell = (std::max(H, W) + s - 1) / s;
  std::vector<float> grids(static_cast<size_t>(count) * s * s);
  for (auto& v : grids) v = u(rng) < p ? 1.f : 0.f;
  std::vector<std::pair<int, int>> shifts(count);
  std::uniform_int_distribution<int> sh(0, cell - 1);
  for (auto& v : shifts) v = {sh(rng), sh(rng)};
  return rise_masks(Tensor::from_vector(grids, {count, s, s}), shifts, H, W);
}

Tensor rise_masks_cached(const std::string& cache, int count, int s, float p, int H, int W, uint64_t seed) {
  if (!cache.empty() && std::filesystem::exists(cache)) {
    h5::Reader f(cache);
    // Only a cache is replaced: a weights file or a checkpoint named by mistake is kept.
    if (!f.has("masks") || !f.attr_int("count") || !f.attr_int("seed"))
      throw InputError(fmt::format("{}: not a RISE mask cache (no 'masks' dataset with its count and seed); it is left "
                                   "as it is: give the cache a new file", cache));
    if (f.attr_int("count") == count && f.attr_int("s") == s && f.attr_double("p") == static_cast<double>(p) &&
        f.attr_int("seed") == static_cast<int64_t>(seed) && f.has("masks")) {
      Tensor m = f.read("masks");
      if (m.shape() == std::vector<int64_t>{count, 1, H, W}) return m;
    }
  }
  Tensor m = rise_masks(count, s, p, H, W, seed);
  if (!cache.empty()) {
    h5::Writer w(cache);
    w.write("masks", m);
    w.attr_int("count", count);
    w.attr_int("s", s);
    w.attr_double("p", p);
    w.attr_int("seed", static_cast<int64_t>(seed));
    w.commit();
  }
  return m;
}

Tensor rise(Model& model, const Tensor& x01, const std::vector<int>& classes, const Tensor& masks, int chunk) {
  cuda::TraceRange range("rise");
  const Device dev = x01.device();
  const int64_t N = x01.dim(0), H = x01.dim(2), W = x01.dim(3), M = masks.dim(0);
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  LCAM_REQUIRE(masks.ndim() == 4 && masks.dim(1) == 1 && masks.dim(2) == H && masks.dim(3) == W, "rise: masks [M,1,H,W]");
  Tensor out = Tensor::empty({N, 1, H, W}, dev);
  for (int64_t n = 0; n < N; ++n) {
    Tensor x1 = x01.slice0(n, n + 1);
    Tensor xn = Tensor::empty(x1.shape(), dev);
    normalize_forward(xn, x1, kImagenetMean, kImagenetStd);
    Tensor w = Tensor::empty({M}, dev);
    all_masked_scores(w, model, xn, masks, classes[n], chunk);
    Tensor dst = out.slice0(n, n + 1);
    dst.copy_from(weighted_map(masks, w, false));
  }
  return out;
}

}  // namespace lcam

