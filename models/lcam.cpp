// lcam.cpp — see lcam.h. The backward pass is written out step by step, mirroring the forward.
#include "models/lcam.h"

#include <cmath>   // std::sqrt
#include <random>  // std::mt19937_64

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"  // InputError
#include "engine/cuda_runtime.h"  // cuda::TraceRange
#include "engine/ops.h"     // the op set

namespace lcam {
namespace {

Tensor int_tensor(const std::vector<int32_t>& v, std::vector<int64_t> shape, Device d) {
  Tensor t = Tensor::empty(std::move(shape), Device::CPU, DType::I32);
  for (size_t i = 0; i < v.size(); ++i) t.data_i32()[i] = v[i];
  return d == Device::CPU ? t : t.to(d);
}
}  // namespace

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
  Tensor x = Tensor::empty(x01.shape(), x01.device());
  normalize_forward(x, x01, kImagenetMean, kImagenetStd);
  return backbone_.forward_range(x, 0, feature_end(), nullptr);
}

LossTerms Lcam::forward_backward(const Attention& a, const Tensor& x01, const std::vector<int>& labels, Tensor& dw,
                                 Tensor& db, uint64_t dropout_seed) {
  cuda::TraceRange range(std::string("lcam train step ") + lcam_method_name(opt_.method));
  const Device dev = x01.device();
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(static_cast<int64_t>(labels.size()) == N, "one label per image");
  Tensor F = features(x01);
  const int64_t h = F.dim(2), w = F.dim(3), hw = h * w;
  // Maps per image: the own label only (paper), or every label of the batch (official).
  const int64_t J = opt_.official_selection ? N : 1;
  std::vector<int32_t> rows(N * J), own(N);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t j = 0; j < J; ++j) rows[n * J + j] = labels[J == 1 ? n : j];
    own[n] = static_cast<int32_t>(n * J + (J == 1 ? 0 : n));
  }
  Tensor rows_t = int_tensor(rows, {N, J}, dev), own_t = int_tensor(own, {N}, dev);
  Tensor labels_t = int_tensor(std::vector<int32_t>(labels.begin(), labels.end()), {N}, dev);

  Tensor c = Tensor::empty({N, J, h, w}, dev);
  attention_forward(c, F, a.w, a.b, rows_t);
  Tensor m = Tensor::empty(c.shape(), dev);
  sigmoid_forward(m, c);
  Tensor m_own = Tensor::empty({N, 1, h, w}, dev);
  take_rows(m_own, m.reshape({N * J, hw}), own_t);

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
    logits = backbone_.forward_range(Fm, feature_end(), backbone_.size(), &tape);
  } else {
    M = Tensor::empty({N, 1, x01.dim(2), x01.dim(3)}, dev);
    upsample_bilinear_forward(M, m_own);
    xm = Tensor::empty(x01.shape(), dev);
    mask_mul_forward(xm, x01, M);
    Tensor xmn = Tensor::empty(xm.shape(), dev);
    normalize_forward(xmn, xm, kImagenetMean, kImagenetStd);
    logits = backbone_.forward_range(xmn, 0, backbone_.size(), &tape);
  }
  LossTerms t;
  t.count = static_cast<int>(N);
  const float w_ce = opt_.ce_only ? 1.f : opt_.w_ce;
  Tensor dlogits = Tensor::empty(logits.shape(), dev);
  t.ce = cross_entropy(dlogits, logits, labels_t, w_ce);
  {
    const std::vector<float> lv = logits.to_vector();
    const int64_t K = logits.dim(1);
    for (int64_t n = 0; n < N; ++n) t.correct += top1(lv.data() + n * K, K) == labels[n];
  }

  // Backward to the own maps.
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
  Tensor dm = Tensor::zeros(m.shape(), dev);
  Tensor dm_rows = dm.reshape({N * J, hw});
  scatter_add_rows(dm_rows, dm_own.reshape({N, hw}), own_t);
  // Regularizers on the selected maps: m itself (J = 1: the own maps; J = N: all N x N).
  if (!opt_.ce_only) {
    t.area = area_loss(dm, m, opt_.w_area, opt_.area_eps, opt_.area_power);
    t.tv = tv_loss(dm, m, opt_.w_tv, opt_.tv_border, 2.f * static_cast<float>(N));
  }
  t.total = w_ce * t.ce + t.area + t.tv;
  Tensor dc = Tensor::empty(c.shape(), dev);
  sigmoid_backward(dc, dm, m);
  dw.fill_zero();
  db.fill_zero();
  attention_backward(dw, db, dc, F, rows_t);
  return t;
}

Tensor Lcam::class_maps(const Attention& a, const Tensor& x01, const std::vector<int>& classes) {
  const Device dev = x01.device();
  const int64_t N = x01.dim(0);
  LCAM_REQUIRE(static_cast<int64_t>(classes.size()) == N, "one class per image");
  Tensor F = features(x01);
  Tensor rows_t = int_tensor(std::vector<int32_t>(classes.begin(), classes.end()), {N, 1}, dev);
  Tensor c = Tensor::empty({N, 1, F.dim(2), F.dim(3)}, dev);
  attention_forward(c, F, a.w, a.b, rows_t);
  return c;
}

Tensor Lcam::saliency(const Attention& a, const Tensor& x01, const std::vector<int>& classes) {
  cuda::TraceRange range("lcam saliency");
  Tensor c = class_maps(a, x01, classes);
  Tensor n = Tensor::empty(c.shape(), c.device());
  minmax_normalize(n, c);
  Tensor sm = Tensor::empty({x01.dim(0), 1, x01.dim(2), x01.dim(3)}, c.device());
  upsample_bilinear_forward(sm, n);
  return sm;
}

}  // namespace lcam
