// lcam.cpp — see lcam.h. The backward pass is written out step by step, mirroring the forward.
#include "models/lcam.h"

#include <algorithm>  // std::min
#include <cmath>   // std::sqrt
#include <optional>  // std::optional (the step's phase ranges)
#include <random>  // std::mt19937_64

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError
#include "engine/cuda_runtime.h"  // cuda::TraceRange
#include "engine/ops.h"     // the op set

namespace lcam {

LcamMethod parse_lcam_method(const std::string& s) {
  if (s == "fm") return LcamMethod::Fm;
  if (s == "img") return LcamMethod::Img;
  if (s == "img7x7") return LcamMethod::Img7x7;
  throw InputError(fmt::format("--method: '{}' is not fm, img or img7x7", s));
}

const char* lcam_method_name(LcamMethod m) {
  return m == LcamMethod::Fm ? "fm" : m == LcamMethod::Img ? "img" : "img7x7";
}

Attention Attention::init(int K, int C, uint64_t seed, Device dev) {
  std::mt19937_64 rng(seed);
  const double bound = 1.0 / std::sqrt(static_cast<double>(C));
  std::uniform_real_distribution<double> u(-bound, bound);
  std::vector<float> w(static_cast<size_t>(K) * C), b(K);
  for (auto& v : w) v = static_cast<float>(u(rng));
  for (auto& v : b) v = static_cast<float>(u(rng));
  return {Tensor::from_vector(w, {K, C}, dev), Tensor::from_vector(b, {K}, dev)};
}

Lcam::Lcam(Model& backbone, LcamOptions opt) : backbone_(backbone), opt_(opt) {
  if (opt_.method == LcamMethod::Img7x7 && backbone_.config().arch != "vgg16")
    throw InputError("--method img7x7 needs --arch vgg16 (it reads VGG-16's 7x7 maps after the last max-pool)");
  inv_std_ = Tensor::from_vector({1.f / kImagenetStd[0], 1.f / kImagenetStd[1], 1.f / kImagenetStd[2]}, {3}, backbone_.device());
}

int Lcam::feature_end() const {
  return opt_.method == LcamMethod::Img7x7 ? backbone_.pool_end() : backbone_.features_end();
}

Tensor Lcam::features(const Tensor& x01) {
  cuda::TraceRange range("features");
  Tensor x = Tensor::empty(x01.shape(), x01.device());
  normalize_forward(x, x01, kImagenetMean, kImagenetStd);
  return backbone_.forward_range(x, 0, feature_end(), nullptr);
}

LossTerms Lcam::forward_backward(const Attention& a, const Tensor& x01, const std::vector<int>& labels, Tensor& dw,
                                 Tensor& db, uint64_t dropout_seed) {
  const StepIndex idx = step_index(a, labels, x01.device());
  return loss_terms(enqueue_forward_backward(a, x01, idx, dw, db, dropout_seed), labels);
}

Lcam::StepIndex Lcam::step_index(const Attention& a, const std::vector<int>& labels, Device dev) const {
  const int64_t K = std::min<int64_t>(a.w.dim(0), backbone_.num_classes());
  check_classes(labels, K, "label", fmt::format(" for a model with {} classes", K));
  const int64_t N = static_cast<int64_t>(labels.size());
  // Maps per image: the own label only (paper), or every label of the batch (official).
  const int64_t J = opt_.official_selection ? N : 1;
  // One index tensor [rows (N*J) | own (N) | labels (N)], one upload, three views.
  std::vector<int32_t> p(static_cast<size_t>(N * J + 2 * N));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t j = 0; j < J; ++j) p[n * J + j] = labels[J == 1 ? n : j];
    p[N * J + n] = static_cast<int32_t>(n * J + (J == 1 ? 0 : n));
    p[N * J + N + n] = labels[n];
  }
  const Tensor all = Tensor::from_i32(p, {N * J + 2 * N}, dev);
  return {all.slice0(0, N * J).reshape({N, J}), all.slice0(N * J, N * J + N), all.slice0(N * J + N, N * J + 2 * N)};
}

Lcam::StepStats Lcam::enqueue_forward_backward(const Attention& a, const Tensor& x01, const StepIndex& idx, Tensor& dw,
                                               Tensor& db, uint64_t dropout_seed) {
  cuda::TraceRange range(std::string("lcam train step ") + lcam_method_name(opt_.method));
  // The step's phases, as profiler ranges one after the other (engine/profile.h).
  std::optional<cuda::TraceRange> phase;
  auto enter = [&phase](const char* name) {
    phase.reset();
    phase.emplace(name);
  };
  const Device dev = x01.device();
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(idx.labels.numel() == N && idx.own.numel() == N && idx.rows.dim(0) == N, "one label per image");
  const int64_t J = idx.rows.dim(1);
  Tensor F = features(x01);
  const int64_t h = F.dim(2), w = F.dim(3), hw = h * w;
  Tensor stats = Tensor::empty({2 * N + 2}, dev);
  StepStats out{stats, 0, 2.0 * static_cast<double>(N)};
  Tensor ce_rows = stats.slice0(0, N), area_sum = stats.slice0(N, N + 1), tv_sum = stats.slice0(N + 1, N + 2);
  Tensor predicted = stats.slice0(N + 2, 2 * N + 2);

  enter("attention and masking");
  Tensor c = Tensor::empty({N, J, h, w}, dev);
  attention_forward(c, F, a.w, a.b, idx.rows);
  Tensor m = Tensor::empty(c.shape(), dev);
  sigmoid_forward(m, c);
  out.area_count = static_cast<double>(m.numel());
  Tensor m_own = Tensor::empty({N, 1, h, w}, dev);
  take_rows(m_own, m.reshape({N * J, hw}), idx.own);

  // Forward through the frozen network, keeping what its data-gradient backward needs (with the
  // classifier's dropout on in the official VGG-16 setting, off again whatever happens).
  struct DropoutScope {
    Model& m;
    DropoutScope(Model& model, bool on, uint64_t seed) : m(model) { m.set_dropout_training(on, seed); }
    ~DropoutScope() { m.set_dropout_training(false, 0); }
  } dropout_scope(backbone_, opt_.official_dropout, dropout_seed);
  Tape tape;
  Tensor logits, M, xm;
  if (opt_.method == LcamMethod::Fm) {
    Tensor Fm = Tensor::empty(F.shape(), dev);
    mask_mul_forward(Fm, F, m_own);
    enter("masked forward");
    logits = backbone_.forward_range(Fm, feature_end(), backbone_.size(), &tape);
  } else {
    M = Tensor::empty({N, 1, x01.dim(2), x01.dim(3)}, dev);
    upsample_bilinear_forward(M, m_own);
    xm = Tensor::empty(x01.shape(), dev);
    mask_mul_forward(xm, x01, M);
    Tensor xmn = Tensor::empty(xm.shape(), dev);
    normalize_forward(xmn, xm, kImagenetMean, kImagenetStd);
    enter("masked forward");
    logits = backbone_.forward_range(xmn, 0, backbone_.size(), &tape);
  }
  enter("loss");
  const float w_ce = opt_.ce_only ? 1.f : opt_.w_ce;
  Tensor dlogits = Tensor::empty(logits.shape(), dev);
  cross_entropy_rows(ce_rows, dlogits, logits, idx.labels, w_ce);
  argmax_rows(predicted, logits);

  // Backward to the own maps.
  enter("backward");
  Tensor dm_own = Tensor::empty(m_own.shape(), dev);
  if (opt_.method == LcamMethod::Fm) {
    Tensor dFm = backbone_.backward_range(tape, dlogits, feature_end(), backbone_.size());
    mask_mul_backward_mask(dm_own, dFm, F);
  } else {
    Tensor dxmn = backbone_.backward_range(tape, dlogits, 0, backbone_.size());
    Tensor dxm = Tensor::empty(dxmn.shape(), dev);
    channel_affine_backward(dxm, dxmn, inv_std_);
    Tensor dM = Tensor::empty(M.shape(), dev);
    mask_mul_backward_mask(dM, dxm, x01);
    upsample_bilinear_backward(dm_own, dM);
  }
  enter("maps backward");
  Tensor dm = Tensor::zeros(m.shape(), dev);
  Tensor dm_rows = dm.reshape({N * J, hw});
  scatter_add_rows(dm_rows, dm_own.reshape({N, hw}), idx.own);
  // Regularizers on the selected maps: m itself (J = 1: the own maps; J = N: all N x N).
  if (!opt_.ce_only) {
    area_loss_sum(area_sum, dm, m, opt_.w_area, opt_.area_eps, opt_.area_power);
    tv_loss_sum(tv_sum, dm, m, opt_.w_tv, opt_.tv_border, static_cast<float>(out.tv_count));
  } else {
    area_sum.fill_zero();
    tv_sum.fill_zero();
  }
  Tensor dc = Tensor::empty(c.shape(), dev);
  sigmoid_backward(dc, dm, m);
  dw.fill_zero();
  db.fill_zero();
  attention_backward(dw, db, dc, F, idx.rows);
  return out;
}

LossTerms Lcam::loss_terms(const StepStats& stats, const std::vector<int>& labels) const {
  return loss_terms(stats.values.to_vector(), stats, labels);  // the step's one host synchronization
}

LossTerms Lcam::loss_terms(const std::vector<float>& v, const StepStats& stats, const std::vector<int>& labels) const {
  const int64_t N = static_cast<int64_t>(labels.size());
  LCAM_REQUIRE(static_cast<int64_t>(v.size()) == 2 * N + 2, "loss_terms: stats of another batch size");
  LossTerms t;
  t.count = static_cast<int>(N);
  t.ce = mean_of(std::vector<float>(v.begin(), v.begin() + N));
  if (!opt_.ce_only) {
    t.area = opt_.w_area * static_cast<double>(v[N]) / stats.area_count;
    t.tv = opt_.w_tv * static_cast<double>(v[N + 1]) / stats.tv_count;
  }
  for (int64_t n = 0; n < N; ++n) t.correct += static_cast<int>(v[N + 2 + n]) == labels[n];
  t.total = (opt_.ce_only ? 1.0 : opt_.w_ce) * t.ce + t.area + t.tv;
  return t;
}

Tensor Lcam::class_rows(const Attention& a, const std::vector<int>& classes, Device dev) {
  check_classes(classes, a.w.dim(0), "class", " for the attention mechanism");
  return Tensor::from_i32(std::vector<int32_t>(classes.begin(), classes.end()), {static_cast<int64_t>(classes.size()), 1},
                          dev);
}

Tensor Lcam::class_maps(const Attention& a, const Tensor& x01, const std::vector<int>& classes) {
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == x01.dim(0), "one class per image");
  return class_maps(a, x01, class_rows(a, classes, x01.device()));
}

Tensor Lcam::class_maps(const Attention& a, const Tensor& x01, const Tensor& rows) {
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(rows.ndim() == 2 && rows.dim(0) == N && rows.dim(1) == 1, "one class per image");
  Tensor F = features(x01);
  Tensor c = Tensor::empty({N, 1, F.dim(2), F.dim(3)}, x01.device());
  attention_forward(c, F, a.w, a.b, rows);
  return c;
}

Tensor Lcam::saliency(const Attention& a, const Tensor& x01, const std::vector<int>& classes) {
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == x01.dim(0), "one class per image");
  return saliency(a, x01, class_rows(a, classes, x01.device()));
}

Tensor Lcam::saliency(const Attention& a, const Tensor& x01, const Tensor& rows) {
  cuda::TraceRange range("lcam saliency");
  Tensor c = class_maps(a, x01, rows);
  Tensor n = Tensor::empty(c.shape(), c.device());
  minmax_normalize(n, c);
  Tensor sm = Tensor::empty({x01.dim(0), 1, x01.dim(2), x01.dim(3)}, c.device());
  upsample_bilinear_forward(sm, n);
  return sm;
}

}  // namespace lcam
