// layers.cpp — see layers.h.
#include "models/layers.h"

#include <algorithm>  // std::max
#include <cmath>      // std::sqrt

#include <fmt/format.h>  // fmt::format

#include "engine/backend.h"  // cpu::fuses_conv_pool, cpu::fuses_relu_data
#include "engine/common.h"  // LCAM_REQUIRE, InputError

namespace lcam {

Tensor Tape::pop() {
  LCAM_REQUIRE(!tensors_.empty(), "backward popped an empty tape");
  Tensor t = std::move(tensors_.back());
  tensors_.pop_back();
  return t;
}

std::vector<int64_t> Tape::pop_shape() {
  LCAM_REQUIRE(!shapes_.empty(), "backward popped an empty tape");
  std::vector<int64_t> s = std::move(shapes_.back());
  shapes_.pop_back();
  return s;
}

namespace {
void require_nchw(const std::string& who, const Tensor& x, int C) {
  if (x.ndim() != 4 || x.dim(1) != C)
    throw InputError(fmt::format("{}: input {} does not have {} channels (NCHW)", who, x.shape_str(), C));
}
Tensor like(const std::vector<int64_t>& s, const Tensor& on) { return Tensor::empty(s, on.device()); }

// Through a fused ReLU: pops its packed mask and masks dy with it (dy itself when there is none).
Tensor through_relu(bool relu, Tape& tape, const Tensor& dy) {
  if (!relu) return dy;
  Tensor bits = tape.pop();
  Tensor g = like(dy.shape(), dy);
  relu_mask_backward(g, dy, bits);
  return g;
}
}  // namespace

// ---- Conv2d ---------------------------------------------------------------------------------

Conv2d::Conv2d(std::string name, int C, int K, int R, int stride, int pad, bool bias,
               std::string bn_name, bool relu)
    : name_(std::move(name)), bn_name_(std::move(bn_name)), C_(C), K_(K), R_(R), stride_(stride),
      pad_(pad), has_bias_(bias), relu_(relu) {}

std::string Conv2d::kind() const {
  std::string k = fmt::format("conv{}x{}", R_, R_);
  if (stride_ != 1) k += fmt::format("/{}", stride_);
  if (!bn_name_.empty()) k += "+bn";
  if (relu_) k += "+relu";
  return k;
}

ConvParams Conv2d::shape_for(const Tensor& x) const {
  return ConvParams{static_cast<int>(x.dim(0)), C_, static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)),
                    K_, R_, R_, stride_, stride_, pad_, pad_};
}

Tensor Conv2d::forward(const Tensor& x, Tape* tape) { return forward_add(x, Tensor(), relu_, tape); }

Tensor Conv2d::forward_add(const Tensor& x, const Tensor& z, bool relu, Tape* tape) {
  require_nchw(name_, x, C_);
  ConvParams p = shape_for(x);
  if (p.P() <= 0 || p.Q() <= 0)
    throw InputError(fmt::format("{}: input {} is too small for a {}x{} convolution", name_, x.shape_str(), R_, R_));
  Tensor y = like({p.N, K_, p.P(), p.Q()}, x);
  conv2d_forward_add(y, x, w_, b_, z, p, relu);
  if (tape) {
    tape->push_shape(x.shape());
    if (relu) tape->push(relu_mask_pack(y));
  }
  return y;
}

bool Conv2d::pools_in_one_pass(const Tensor& x) const {
  return relu_ && x.device() == Device::CPU && x.ndim() == 4 && x.dim(1) == C_ && cpu::fuses_conv_pool(shape_for(x));
}

Tensor Conv2d::forward_pooled(const Tensor& x) {
  require_nchw(name_, x, C_);
  const ConvParams p = shape_for(x);
  if (p.P() < 2 || p.Q() < 2)
    throw InputError(fmt::format("{}: input {} is too small for a {}x{} convolution and a 2x2 max-pool", name_,
                                 x.shape_str(), R_, R_));
  Tensor y = like({p.N, K_, p.P() / 2, p.Q() / 2}, x);
  conv2d_relu_maxpool2_forward(y, x, w_, b_, p);
  return y;
}

Tensor Conv2d::backward(Tape& tape, const Tensor& dy) {
  std::vector<int64_t> xs = tape.pop_shape();
  ConvParams p{static_cast<int>(xs[0]), C_, static_cast<int>(xs[2]), static_cast<int>(xs[3]), K_, R_, R_,
               stride_, stride_, pad_, pad_};
  if (relu_ && dy.device() == Device::CPU && cpu::fuses_relu_data(p)) {  // dy masked as it is read
    const Tensor bits = tape.pop();
    Tensor dx = like(xs, dy);
    conv2d_backward_data_relu(dx, dy, bits, w_, p);
    return dx;
  }
  // Elsewhere a masked copy of dy, its mask released before dx is allocated.
  const Tensor g = through_relu(relu_, tape, dy);
  Tensor dx = like(xs, dy);
  conv2d_backward_data(dx, g, w_, p);
  return dx;
}

void Conv2d::params(std::vector<Param>& out) {
  out.push_back({name_ + ".weight", {K_, C_, R_, R_}, &w_});
  if (has_bias_) out.push_back({name_ + ".bias", {K_}, &b_});
  if (!bn_name_.empty()) {
    out.push_back({bn_name_ + ".weight", {K_}, &bn_w_});
    out.push_back({bn_name_ + ".bias", {K_}, &bn_b_});
    out.push_back({bn_name_ + ".running_mean", {K_}, &bn_mean_});
    out.push_back({bn_name_ + ".running_var", {K_}, &bn_var_});
  }
}

void Conv2d::finalize() {
  if (bn_name_.empty() || !bn_w_.defined()) return;
  // Frozen batch-norm after a convolution is an affine map per output channel:
  // bn(conv(x) + b) = conv(x) * s + (b - mean) * s + beta, s = gamma / sqrt(var + eps).
  Tensor w = w_.device() == Device::CPU ? w_ : w_.to(Device::CPU);
  std::vector<float> wv = w.to_vector(), g = bn_w_.to_vector(), be = bn_b_.to_vector(),
                     m = bn_mean_.to_vector(), v = bn_var_.to_vector();
  std::vector<float> bias(K_, 0.f);
  std::vector<float> b0 = has_bias_ ? b_.to_vector() : std::vector<float>(K_, 0.f);
  const int64_t per = static_cast<int64_t>(C_) * R_ * R_;
  for (int k = 0; k < K_; ++k) {
    const double s = static_cast<double>(g[k]) / std::sqrt(static_cast<double>(v[k]) + 1e-5);
    for (int64_t j = 0; j < per; ++j) wv[k * per + j] = static_cast<float>(wv[k * per + j] * s);
    bias[k] = static_cast<float>((b0[k] - m[k]) * s + be[k]);
  }
  const Device d = w_.device();
  w_ = Tensor::from_vector(wv, {K_, C_, R_, R_}, d);
  b_ = Tensor::from_vector(bias, {K_}, d);
  bn_w_ = bn_b_ = bn_mean_ = bn_var_ = Tensor();
}

void Conv2d::to(Device d) {
  if (w_.defined() && w_.device() != d) w_ = w_.to(d);
  if (b_.defined() && b_.device() != d) b_ = b_.to(d);
}

// ---- ReLU, pools, flatten ---------------------------------------------------------------------

Tensor ReLU::forward(const Tensor& x, Tape* tape) {
  Tensor y = like(x.shape(), x);
  relu_forward(y, x);
  if (tape) tape->push(relu_mask_pack(y));
  return y;
}

Tensor ReLU::backward(Tape& tape, const Tensor& dy) { return through_relu(true, tape, dy); }

std::string MaxPool2d::kind() const { return fmt::format("maxpool{}x{}/{}", k_, k_, stride_); }

PoolParams MaxPool2d::shape_for(const std::vector<int64_t>& x) const {
  return PoolParams{static_cast<int>(x[0]), static_cast<int>(x[1]), static_cast<int>(x[2]),
                    static_cast<int>(x[3]), k_, k_, stride_, stride_, pad_, pad_};
}

Tensor MaxPool2d::forward(const Tensor& x, Tape* tape) {
  if (x.ndim() != 4) throw InputError(fmt::format("max-pool: input {} is not NCHW", x.shape_str()));
  PoolParams p = shape_for(x.shape());
  if (p.P() <= 0 || p.Q() <= 0)
    throw InputError(fmt::format("max-pool: input {} is too small for a {}x{} window", x.shape_str(), k_, k_));
  Tensor y = like({p.N, p.C, p.P(), p.Q()}, x);
  Tensor argmax = tape ? maxpool2d_argmax_for(y) : Tensor();
  maxpool2d_forward(y, argmax, x, p);
  if (tape) {
    tape->push_shape(x.shape());
    tape->push(argmax);
  }
  return y;
}

Tensor MaxPool2d::backward(Tape& tape, const Tensor& dy) {
  Tensor argmax = tape.pop();
  std::vector<int64_t> xs = tape.pop_shape();
  Tensor dx = like(xs, dy);
  maxpool2d_backward(dx, dy, argmax, shape_for(xs));
  return dx;
}

std::string AdaptiveAvgPool2d::kind() const { return fmt::format("avgpool->{}x{}", P_, Q_); }

Tensor AdaptiveAvgPool2d::forward(const Tensor& x, Tape* tape) {
  if (x.ndim() != 4) throw InputError(fmt::format("avg-pool: input {} is not NCHW", x.shape_str()));
  Tensor y = like({x.dim(0), x.dim(1), P_, Q_}, x);
  adaptive_avgpool2d_forward(y, x);
  if (tape) tape->push_shape(x.shape());
  return y;
}

Tensor AdaptiveAvgPool2d::backward(Tape& tape, const Tensor& dy) {
  Tensor dx = like(tape.pop_shape(), dy);
  adaptive_avgpool2d_backward(dx, dy);
  return dx;
}

Tensor Flatten::forward(const Tensor& x, Tape* tape) {
  if (tape) tape->push_shape(x.shape());
  return x.reshape({x.dim(0), x.numel() / std::max<int64_t>(x.dim(0), 1)});
}

Tensor Flatten::backward(Tape& tape, const Tensor& dy) { return dy.reshape(tape.pop_shape()); }

Tensor Dropout::forward(const Tensor& x, Tape* tape) {
  if (!training_) return x;
  Tensor y = like(x.shape(), x), mask = like(x.shape(), x);
  dropout_forward(y, mask, x, p_, seed_);
  if (tape) tape->push(mask);
  return y;
}

Tensor Dropout::backward(Tape& tape, const Tensor& dy) {
  if (!training_) return dy;
  Tensor mask = tape.pop();
  Tensor dx = like(dy.shape(), dy);
  mul_forward(dx, dy, mask);
  return dx;
}

// ---- Linear ---------------------------------------------------------------------------------

Linear::Linear(std::string name, int F, int O, bool relu) : name_(std::move(name)), F_(F), O_(O), relu_(relu) {}

std::string Linear::kind() const { return relu_ ? "linear+relu" : "linear"; }

Tensor Linear::forward(const Tensor& x, Tape* tape) {
  if (x.ndim() != 2 || x.dim(1) != F_)
    throw InputError(fmt::format("{}: input {} does not have {} features", name_, x.shape_str(), F_));
  Tensor y = like({x.dim(0), O_}, x);
  linear_forward(y, x, w_, b_, relu_);
  if (tape && relu_) tape->push(relu_mask_pack(y));
  return y;
}

Tensor Linear::backward(Tape& tape, const Tensor& dy) {
  const Tensor g = through_relu(relu_, tape, dy);
  Tensor dx = like({dy.dim(0), F_}, dy);
  linear_backward_data(dx, g, w_);
  return dx;
}

void Linear::params(std::vector<Param>& out) {
  out.push_back({name_ + ".weight", {O_, F_}, &w_});
  out.push_back({name_ + ".bias", {O_}, &b_});
}

void Linear::to(Device d) {
  if (w_.defined() && w_.device() != d) w_ = w_.to(d);
  if (b_.defined() && b_.device() != d) b_ = b_.to(d);
}

// ---- Bottleneck -----------------------------------------------------------------------------

Bottleneck::Bottleneck(const std::string& name, int inplanes, int planes, int stride) {
  const int out = planes * 4;
  conv1_ = std::make_unique<Conv2d>(name + ".conv1", inplanes, planes, 1, 1, 0, false, name + ".bn1", true);
  conv2_ = std::make_unique<Conv2d>(name + ".conv2", planes, planes, 3, stride, 1, false, name + ".bn2", true);
  conv3_ = std::make_unique<Conv2d>(name + ".conv3", planes, out, 1, 1, 0, false, name + ".bn3", false);
  if (stride != 1 || inplanes != out)
    down_ = std::make_unique<Conv2d>(name + ".downsample.0", inplanes, out, 1, stride, 0, false,
                                     name + ".downsample.1", false);
}

// relu(conv3(conv2(conv1(x))) + shortcut(x)): the shortcut first, so that conv3, its bias, the
// residual add and the ReLU are one op.
Tensor Bottleneck::forward(const Tensor& x, Tape* tape) {
  Tensor h = conv1_->forward(x, tape);
  h = conv2_->forward(h, tape);
  const Tensor id = down_ ? down_->forward(x, tape) : x;
  return conv3_->forward_add(h, id, /*relu=*/true, tape);
}

Tensor Bottleneck::backward(Tape& tape, const Tensor& dy) {
  const Tensor g = through_relu(true, tape, dy);  // the ReLU after the residual add
  Tensor d = conv3_->backward(tape, g);
  Tensor did = down_ ? down_->backward(tape, g) : g;
  d = conv2_->backward(tape, d);
  d = conv1_->backward(tape, d);
  add_inplace(d, did);
  return d;
}

void Bottleneck::params(std::vector<Param>& out) {
  conv1_->params(out);
  conv2_->params(out);
  conv3_->params(out);
  if (down_) down_->params(out);
}

void Bottleneck::finalize() {
  conv1_->finalize(), conv2_->finalize(), conv3_->finalize();
  if (down_) down_->finalize();
}

void Bottleneck::to(Device d) {
  conv1_->to(d), conv2_->to(d), conv3_->to(d);
  if (down_) down_->to(d);
}

}  // namespace lcam
