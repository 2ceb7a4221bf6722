// ops.cpp — shape and device checks for every op of ops.h, then dispatch to the CPU backend
// (lcam::cpu) or the CUDA backend (lcam::gpu). A failed check is a caller's bug and throws
// InternalError naming the op and the shapes; user input is validated before it gets here.
#include "engine/ops.h"

#include <vector>  // std::vector

#include <fmt/format.h>  // fmt::format

#include "engine/backend.h"  // cpu::*, gpu::*
#include "engine/common.h"   // LCAM_REQUIRE, InputError
#include "engine/cuda_runtime.h"  // cuda::TraceRange (a profiler range per op)

namespace lcam {
namespace {

using Shape = std::vector<int64_t>;

void expect_shape(const char* op, const char* name, const Tensor& t, const Shape& s) {
  LCAM_REQUIRE(t.defined(), fmt::format("{}: {} is undefined", op, name));
  LCAM_REQUIRE(t.shape() == s, fmt::format("{}: {} has shape {}, expected {}", op, name,
                                           t.shape_str(), shape_str(s)));
}

// All defined tensors on one device; returns it.
Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) first = t;
    LCAM_REQUIRE(t->device() == first->device(), fmt::format("{}: tensors on different devices", op));
  }
  LCAM_REQUIRE(first, fmt::format("{}: no tensors", op));
#ifndef LCAM_HAVE_CUDA
  LCAM_REQUIRE(first->device() == Device::CPU, fmt::format("{}: CUDA tensor in a CPU build", op));
#endif
  return first->device();
}

float* opt(const Tensor& t) { return t.defined() ? t.data() : nullptr; }

// A ReLU's packed mask (relu_mask_pack) of `elements` values.
void expect_relu_bits(const char* op, const Tensor& bits, int64_t elements) {
  LCAM_REQUIRE(bits.dtype() == DType::I32 && bits.ndim() == 1 && bits.dim(0) == (elements + 31) / 32,
               fmt::format("{}: bits {} do not pack {} elements", op, bits.shape_str(), elements));
}

// The operands of a convolution's data gradient.
void expect_conv_data(const char* op, const Tensor& dx, const Tensor& dy, const Tensor& w, const ConvParams& p) {
  expect_shape(op, "dy", dy, {p.N, p.K, p.P(), p.Q()});
  expect_shape(op, "w", w, {p.K, p.C, p.R, p.S});
  expect_shape(op, "dx", dx, {p.N, p.C, p.H, p.W});
}

}  // namespace

// Calls lcam::cpu::NAME or lcam::gpu::NAME with the same arguments, inside a profiler range
// named after the backend function ("conv2d_forward", "gather_rows"...): nsys and `bench
// --profile` show each op inside the layer that called it.
#ifdef LCAM_HAVE_CUDA
#define LCAM_DISPATCH(dev, NAME, ...)                                               \
  [&]() -> decltype(auto) {                                                         \
    const cuda::TraceRange lcam_op_range(#NAME);                                    \
    return (dev) == Device::CUDA ? gpu::NAME(__VA_ARGS__) : cpu::NAME(__VA_ARGS__); \
  }()
#else
#define LCAM_DISPATCH(dev, NAME, ...)            \
  [&]() -> decltype(auto) {                      \
    const cuda::TraceRange lcam_op_range(#NAME); \
    (void)(dev);                                 \
    return cpu::NAME(__VA_ARGS__);               \
  }()
#endif

void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvParams& p, bool relu) {
  conv2d_forward_add(y, x, w, b, Tensor(), p, relu);
}

void conv2d_forward_add(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& z,
                        const ConvParams& p, bool relu) {
  const char* op = "conv2d_forward";
  expect_shape(op, "x", x, {p.N, p.C, p.H, p.W});
  expect_shape(op, "w", w, {p.K, p.C, p.R, p.S});
  if (b.defined()) expect_shape(op, "b", b, {p.K});
  LCAM_REQUIRE(p.P() > 0 && p.Q() > 0, fmt::format("{}: empty output for input {}", op, x.shape_str()));
  expect_shape(op, "y", y, {p.N, p.K, p.P(), p.Q()});
  if (z.defined()) {
    expect_shape(op, "z", z, y.shape());
    LCAM_REQUIRE(z.raw() != y.raw(), "conv2d_forward_add: z must not be y");
  }
  Device d = common_device(op, {&y, &x, &w, &b, &z});
  LCAM_DISPATCH(d, conv2d_forward, y.data(), x.data(), w.data(), opt(b), opt(z), p, relu);
}

void conv2d_relu_maxpool2_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& p) {
  const char* op = "conv2d_forward";
  expect_shape(op, "x", x, {p.N, p.C, p.H, p.W});
  expect_shape(op, "w", w, {p.K, p.C, p.R, p.S});
  if (b.defined()) expect_shape(op, "b", b, {p.K});
  LCAM_REQUIRE(p.P() >= 2 && p.Q() >= 2, fmt::format("{}: no 2x2 window in the output of {}", op, x.shape_str()));
  expect_shape(op, "y", y, {p.N, p.K, p.P() / 2, p.Q() / 2});
  const Device d = common_device(op, {&y, &x, &w, &b});
  if (d == Device::CPU && cpu::fuses_conv_pool(p)) {
    const cuda::TraceRange range(op);
    cpu::conv2d_relu_maxpool2_forward(y.data(), x.data(), w.data(), opt(b), p);
    return;
  }
  Tensor c = Tensor::empty({p.N, p.K, p.P(), p.Q()}, d), none;
  conv2d_forward(c, x, w, b, p, /*relu=*/true);
  maxpool2d_forward(y, none, c, PoolParams{p.N, p.K, p.P(), p.Q(), 2, 2, 2, 2, 0, 0});
}

void conv2d_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w, const ConvParams& p) {
  const char* op = "conv2d_backward_data";
  expect_conv_data(op, dx, dy, w, p);
  Device d = common_device(op, {&dx, &dy, &w});
  LCAM_DISPATCH(d, conv2d_backward_data, dx.data(), dy.data(), w.data(), p);
}

void conv2d_backward_data_relu(Tensor& dx, const Tensor& dy, const Tensor& bits, const Tensor& w, const ConvParams& p) {
  const char* op = "conv2d_backward_data";
  expect_conv_data(op, dx, dy, w, p);
  expect_relu_bits(op, bits, dy.numel());
  const Device d = common_device(op, {&dx, &dy, &w, &bits});
  if (d == Device::CPU && cpu::fuses_relu_data(p)) {
    const cuda::TraceRange range(op);
    cpu::conv2d_backward_data_relu(dx.data(), dy.data(), reinterpret_cast<const uint32_t*>(bits.data_i32()), w.data(), p);
    return;
  }
  Tensor g = Tensor::empty(dy.shape(), d);
  relu_mask_backward(g, dy, bits);
  conv2d_backward_data(dx, g, w, p);
}

void conv2d_backward_weight(Tensor& dw, Tensor& db, const Tensor& dy, const Tensor& x,
                            const ConvParams& p) {
  const char* op = "conv2d_backward_weight";
  expect_shape(op, "dy", dy, {p.N, p.K, p.P(), p.Q()});
  expect_shape(op, "x", x, {p.N, p.C, p.H, p.W});
  expect_shape(op, "dw", dw, {p.K, p.C, p.R, p.S});
  if (db.defined()) expect_shape(op, "db", db, {p.K});
  Device d = common_device(op, {&dw, &db, &dy, &x});
  LCAM_DISPATCH(d, conv2d_backward_weight, dw.data(), opt(db), dy.data(), x.data(), p);
}

void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, bool relu) {
  const char* op = "linear_forward";
  LCAM_REQUIRE(x.ndim() == 2 && w.ndim() == 2, fmt::format("{}: x {} w {}", op, x.shape_str(), w.shape_str()));
  const int N = static_cast<int>(x.dim(0)), F = static_cast<int>(x.dim(1)), O = static_cast<int>(w.dim(0));
  expect_shape(op, "w", w, {O, F});
  if (b.defined()) expect_shape(op, "b", b, {O});
  expect_shape(op, "y", y, {N, O});
  Device d = common_device(op, {&y, &x, &w, &b});
  LCAM_DISPATCH(d, linear_forward, y.data(), x.data(), w.data(), opt(b), N, F, O, relu);
}

void linear_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w) {
  const char* op = "linear_backward_data";
  LCAM_REQUIRE(dy.ndim() == 2 && w.ndim() == 2, fmt::format("{}: dy {} w {}", op, dy.shape_str(), w.shape_str()));
  const int N = static_cast<int>(dy.dim(0)), O = static_cast<int>(w.dim(0)), F = static_cast<int>(w.dim(1));
  expect_shape(op, "dy", dy, {N, O});
  expect_shape(op, "dx", dx, {N, F});
  Device d = common_device(op, {&dx, &dy, &w});
  LCAM_DISPATCH(d, linear_backward_data, dx.data(), dy.data(), w.data(), N, F, O);
}

void linear_backward_weight(Tensor& dw, Tensor& db, const Tensor& dy, const Tensor& x) {
  const char* op = "linear_backward_weight";
  LCAM_REQUIRE(dy.ndim() == 2 && x.ndim() == 2, fmt::format("{}: dy {} x {}", op, dy.shape_str(), x.shape_str()));
  const int N = static_cast<int>(x.dim(0)), F = static_cast<int>(x.dim(1)), O = static_cast<int>(dy.dim(1));
  expect_shape(op, "dy", dy, {N, O});
  expect_shape(op, "dw", dw, {O, F});
  if (db.defined()) expect_shape(op, "db", db, {O});
  Device d = common_device(op, {&dw, &db, &dy, &x});
  LCAM_DISPATCH(d, linear_backward_weight, dw.data(), opt(db), dy.data(), x.data(), N, F, O);
}

void relu_forward(Tensor& y, const Tensor& x) {
  expect_shape("relu_forward", "y", y, x.shape());
  Device d = common_device("relu_forward", {&y, &x});
  LCAM_DISPATCH(d, relu_forward, y.data(), x.data(), x.numel());
}

void relu_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
  expect_shape("relu_backward", "dy", dy, y.shape());
  expect_shape("relu_backward", "dx", dx, y.shape());
  Device d = common_device("relu_backward", {&dx, &dy, &y});
  LCAM_DISPATCH(d, relu_backward, dx.data(), dy.data(), y.data(), y.numel());
}

Tensor relu_mask_pack(const Tensor& y) {
  LCAM_REQUIRE(y.dtype() == DType::F32, "relu_mask_pack: y must be float32");
  Tensor bits = Tensor::empty({(y.numel() + 31) / 32}, y.device(), DType::I32);
  LCAM_DISPATCH(y.device(), relu_mask_pack, reinterpret_cast<uint32_t*>(bits.data_i32()), y.data(), y.numel());
  return bits;
}

void relu_mask_backward(Tensor& dx, const Tensor& dy, const Tensor& bits) {
  const char* op = "relu_mask_backward";
  expect_shape(op, "dx", dx, dy.shape());
  expect_relu_bits(op, bits, dy.numel());
  Device d = common_device(op, {&dx, &dy, &bits});
  LCAM_DISPATCH(d, relu_mask_backward, dx.data(), dy.data(), reinterpret_cast<const uint32_t*>(bits.data_i32()), dy.numel());
}

void add_forward(Tensor& y, const Tensor& a, const Tensor& b, bool relu) {
  expect_shape("add_forward", "b", b, a.shape());
  expect_shape("add_forward", "y", y, a.shape());
  Device d = common_device("add_forward", {&y, &a, &b});
  LCAM_DISPATCH(d, add_forward, y.data(), a.data(), b.data(), a.numel(), relu);
}

void add_inplace(Tensor& y, const Tensor& a) {
  expect_shape("add_inplace", "a", a, y.shape());
  Device d = common_device("add_inplace", {&y, &a});
  LCAM_DISPATCH(d, add_inplace, y.data(), a.data(), y.numel());
}

namespace {
void check_nchw(const char* op, const Tensor& x) {
  LCAM_REQUIRE(x.ndim() == 4, fmt::format("{}: expected NCHW, got {}", op, x.shape_str()));
}
}  // namespace

void channel_affine_forward(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift) {
  const char* op = "channel_affine_forward";
  check_nchw(op, x);
  const int N = static_cast<int>(x.dim(0)), C = static_cast<int>(x.dim(1));
  expect_shape(op, "scale", scale, {C});
  expect_shape(op, "shift", shift, {C});
  expect_shape(op, "y", y, x.shape());
  Device d = common_device(op, {&y, &x, &scale, &shift});
  LCAM_DISPATCH(d, channel_affine_forward, y.data(), x.data(), scale.data(), shift.data(), N, C,
                x.dim(2) * x.dim(3));
}

void channel_affine_backward(Tensor& dx, const Tensor& dy, const Tensor& scale) {
  const char* op = "channel_affine_backward";
  check_nchw(op, dy);
  const int N = static_cast<int>(dy.dim(0)), C = static_cast<int>(dy.dim(1));
  expect_shape(op, "scale", scale, {C});
  expect_shape(op, "dx", dx, dy.shape());
  Device d = common_device(op, {&dx, &dy, &scale});
  LCAM_DISPATCH(d, channel_affine_backward, dx.data(), dy.data(), scale.data(), N, C,
                dy.dim(2) * dy.dim(3));
}

namespace {
void expect_packed_argmax(const char* op, const Tensor& argmax, int64_t outputs) {
  LCAM_REQUIRE(argmax.dtype() == DType::I32 && argmax.ndim() == 1 && argmax.dim(0) == (outputs + 3) / 4,
               fmt::format("{}: argmax {} does not pack {} outputs (maxpool2d_argmax_for)", op, argmax.shape_str(), outputs));
}
}  // namespace

void maxpool2d_forward(Tensor& y, Tensor& argmax, const Tensor& x, const PoolParams& p) {
  const char* op = "maxpool2d_forward";
  expect_shape(op, "x", x, {p.N, p.C, p.H, p.W});
  LCAM_REQUIRE(p.P() > 0 && p.Q() > 0 && p.pad_h * 2 <= p.R && p.pad_w * 2 <= p.S,
               fmt::format("{}: bad window for input {}", op, x.shape_str()));
  expect_shape(op, "y", y, {p.N, p.C, p.P(), p.Q()});
  LCAM_REQUIRE(p.R * p.S <= 225, fmt::format("{}: window {}x{} is larger than 15x15", op, p.R, p.S));
  if (argmax.defined()) expect_packed_argmax(op, argmax, y.numel());
  Device d = common_device(op, {&y, &x, &argmax});
  LCAM_DISPATCH(d, maxpool2d_forward, y.data(),
                argmax.defined() ? reinterpret_cast<uint8_t*>(argmax.data_i32()) : nullptr, x.data(), p);
}

Tensor maxpool2d_argmax_for(const Tensor& y) {
  return Tensor::empty({(y.numel() + 3) / 4}, y.device(), DType::I32);
}

void maxpool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const PoolParams& p) {
  const char* op = "maxpool2d_backward";
  expect_shape(op, "dy", dy, {p.N, p.C, p.P(), p.Q()});
  expect_packed_argmax(op, argmax, dy.numel());
  expect_shape(op, "dx", dx, {p.N, p.C, p.H, p.W});
  Device d = common_device(op, {&dx, &dy, &argmax});
  LCAM_DISPATCH(d, maxpool2d_backward, dx.data(), dy.data(), reinterpret_cast<const uint8_t*>(argmax.data_i32()), p);
}

void adaptive_avgpool2d_forward(Tensor& y, const Tensor& x) {
  const char* op = "adaptive_avgpool2d_forward";
  check_nchw(op, x);
  check_nchw(op, y);
  LCAM_REQUIRE(y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1) && x.dim(2) > 0 && x.dim(3) > 0,
               fmt::format("{}: x {} y {}", op, x.shape_str(), y.shape_str()));
  Device d = common_device(op, {&y, &x});
  LCAM_DISPATCH(d, adaptive_avgpool2d_forward, y.data(), x.data(),
                static_cast<int>(x.dim(0) * x.dim(1)), static_cast<int>(x.dim(2)),
                static_cast<int>(x.dim(3)), static_cast<int>(y.dim(2)), static_cast<int>(y.dim(3)));
}

void adaptive_avgpool2d_backward(Tensor& dx, const Tensor& dy) {
  const char* op = "adaptive_avgpool2d_backward";
  check_nchw(op, dx);
  check_nchw(op, dy);
  LCAM_REQUIRE(dy.dim(0) == dx.dim(0) && dy.dim(1) == dx.dim(1),
               fmt::format("{}: dx {} dy {}", op, dx.shape_str(), dy.shape_str()));
  Device d = common_device(op, {&dx, &dy});
  LCAM_DISPATCH(d, adaptive_avgpool2d_backward, dx.data(), dy.data(),
                static_cast<int>(dx.dim(0) * dx.dim(1)), static_cast<int>(dx.dim(2)),
                static_cast<int>(dx.dim(3)), static_cast<int>(dy.dim(2)), static_cast<int>(dy.dim(3)));
}

namespace {
void softmax_common(const char* op, Tensor& y, const Tensor& x, bool log) {
  LCAM_REQUIRE(x.ndim() == 2 && x.dim(1) > 0, fmt::format("{}: x {}", op, x.shape_str()));
  expect_shape(op, "y", y, x.shape());
  Device d = common_device(op, {&y, &x});
  LCAM_DISPATCH(d, softmax_forward, y.data(), x.data(), static_cast<int>(x.dim(0)),
                static_cast<int>(x.dim(1)), log);
}
}  // namespace

void softmax_forward(Tensor& y, const Tensor& x) { softmax_common("softmax_forward", y, x, false); }
void log_softmax_forward(Tensor& y, const Tensor& x) { softmax_common("log_softmax_forward", y, x, true); }

void cross_entropy_rows(Tensor& loss_rows, Tensor& dlogits, const Tensor& logits, const Tensor& labels, float grad_scale) {
  const char* op = "cross_entropy";
  LCAM_REQUIRE(logits.ndim() == 2 && logits.dim(0) > 0, fmt::format("{}: logits {}", op, logits.shape_str()));
  const int N = static_cast<int>(logits.dim(0)), O = static_cast<int>(logits.dim(1));
  expect_shape(op, "labels", labels, {N});
  expect_shape(op, "loss_rows", loss_rows, {N});
  LCAM_REQUIRE(labels.dtype() == DType::I32, "cross_entropy: labels must be int32");
  if (dlogits.defined()) expect_shape(op, "dlogits", dlogits, logits.shape());
  // Labels are user data (a list file): host labels are checked here; device labels were
  // checked by whoever uploaded them (ops.h).
  if (labels.device() == Device::CPU)
    check_classes(labels.data_i32(), N, O, "label", fmt::format(" for a model with {} classes", O));
  Device d = common_device(op, {&loss_rows, &dlogits, &logits, &labels});
  LCAM_DISPATCH(d, cross_entropy, loss_rows.data(), opt(dlogits), logits.data(), labels.data_i32(),
                N, O, grad_scale / static_cast<float>(N));
}

float cross_entropy(Tensor& dlogits, const Tensor& logits, const Tensor& labels, float grad_scale) {
  LCAM_REQUIRE(logits.ndim() == 2, fmt::format("cross_entropy: logits {}", logits.shape_str()));
  Tensor per_row = Tensor::empty({logits.dim(0)}, logits.device());
  cross_entropy_rows(per_row, dlogits, logits, labels, grad_scale);
  return mean_of(per_row.to_vector());
}

float mean_of(const std::vector<float>& v) {
  double sum = 0.0;
  for (float x : v) sum += x;
  return v.empty() ? 0.f : static_cast<float>(sum / static_cast<double>(v.size()));
}

void argmax_rows(Tensor& idx, const Tensor& x) {
  LCAM_REQUIRE(x.ndim() == 2 && x.dim(1) > 0, fmt::format("argmax_rows: x {}", x.shape_str()));
  expect_shape("argmax_rows", "idx", idx, {x.dim(0)});
  Device d = common_device("argmax_rows", {&idx, &x});
  LCAM_DISPATCH(d, argmax_rows, idx.data(), x.data(), static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)));
}

void normalize_forward(Tensor& y, const Tensor& x, const float mean[3], const float stdv[3]) {
  const char* op = "normalize_forward";
  check_nchw(op, x);
  LCAM_REQUIRE(x.dim(1) == 3, fmt::format("{}: expected 3 channels, got {}", op, x.shape_str()));
  expect_shape(op, "y", y, x.shape());
  Device d = common_device(op, {&y, &x});
  LCAM_DISPATCH(d, normalize_forward, y.data(), x.data(), static_cast<int>(x.dim(0)),
                x.dim(2) * x.dim(3), mean[0], mean[1], mean[2], stdv[0], stdv[1], stdv[2]);
}

// ---- L-CAM ----------------------------------------------------------------------------------

namespace {
// rows [N,J] int32 with every entry in [0,K).
void check_rows(const char* op, const Tensor& rows, int64_t N, int64_t K) {
  LCAM_REQUIRE(rows.ndim() == 2 && rows.dim(0) == N && rows.dtype() == DType::I32,
               fmt::format("{}: rows {} must be int32 [N,J] with N={}", op, rows.shape_str(), N));
  if (rows.device() != Device::CPU) return;  // device rows: see ops.h (never read back here)
  check_classes(rows.data_i32(), rows.numel(), K, "label", " for the attention mechanism");
}
}  // namespace

void attention_forward(Tensor& c, const Tensor& F, const Tensor& w, const Tensor& b, const Tensor& rows) {
  const char* op = "attention_forward";
  LCAM_REQUIRE(F.ndim() >= 3 && w.ndim() == 2, fmt::format("{}: F {} w {}", op, F.shape_str(), w.shape_str()));
  const int64_t N = F.dim(0), C = F.dim(1), L = F.numel() / std::max<int64_t>(N * C, 1), K = w.dim(0);
  expect_shape(op, "w", w, {K, C});
  expect_shape(op, "b", b, {K});
  check_rows(op, rows, N, K);
  const int64_t J = rows.dim(1);
  LCAM_REQUIRE(c.numel() == N * J * L && c.dim(0) == N, fmt::format("{}: c {} for N={} J={} L={}", op, c.shape_str(), N, J, L));
  Device d = common_device(op, {&c, &F, &w, &b, &rows});
  Tensor wsel = Tensor::empty({N * J, C}, d), bsel = Tensor::empty({N * J}, d);
  LCAM_DISPATCH(d, gather_rows, wsel.data(), w.data(), rows.data_i32(), static_cast<int>(N * J), static_cast<int>(C),
                static_cast<int>(K));
  LCAM_DISPATCH(d, gather_rows, bsel.data(), b.data(), rows.data_i32(), static_cast<int>(N * J), 1, static_cast<int>(K));
  // c[n] [J,L] = wsel[n] [J,C] x F[n] [C,L], then the per-map bias.
  LCAM_DISPATCH(d, gemm_batched, c.data(), wsel.data(), F.data(), static_cast<int>(N), static_cast<int>(J),
                static_cast<int>(L), static_cast<int>(C), false, false, J * C, C * L, J * L, 0.f);
  LCAM_DISPATCH(d, bias_act, c.data(), bsel.data(), 1, static_cast<int>(N * J), L, false);
}

void attention_backward(Tensor& dw, Tensor& db, const Tensor& dc, const Tensor& F, const Tensor& rows) {
  const char* op = "attention_backward";
  const int64_t N = F.dim(0), C = F.dim(1), L = F.numel() / std::max<int64_t>(N * C, 1), K = dw.dim(0);
  expect_shape(op, "dw", dw, {K, C});
  expect_shape(op, "db", db, {K});
  check_rows(op, rows, N, K);
  const int64_t J = rows.dim(1);
  LCAM_REQUIRE(dc.numel() == N * J * L, fmt::format("{}: dc {} for N={} J={} L={}", op, dc.shape_str(), N, J, L));
  Device d = common_device(op, {&dw, &db, &dc, &F, &rows});
  // dwsel[n] [J,C] = dc[n] [J,L] x F[n]^T [L,C]; then scattered (added) into the selected rows.
  Tensor dwsel = Tensor::empty({N * J, C}, d), dbsel = Tensor::empty({N * J}, d);
  LCAM_DISPATCH(d, gemm_batched, dwsel.data(), dc.data(), F.data(), static_cast<int>(N), static_cast<int>(J),
                static_cast<int>(C), static_cast<int>(L), false, true, J * L, C * L, J * C, 0.f);
  LCAM_DISPATCH(d, row_sum, dbsel.data(), dc.data(), static_cast<int>(N * J), L);
  LCAM_DISPATCH(d, scatter_add_rows, dw.data(), dwsel.data(), rows.data_i32(), static_cast<int>(N * J),
                static_cast<int>(C), static_cast<int>(K));
  LCAM_DISPATCH(d, scatter_add_rows, db.data(), dbsel.data(), rows.data_i32(), static_cast<int>(N * J), 1,
                static_cast<int>(K));
}

namespace {
int table_rows(const Tensor& table, int64_t C) { return static_cast<int>(C ? table.numel() / C : 0); }

// [R, C] view facts for the row ops: rows int32 [R] with entries in [0, T).
void check_row_op(const char* op, const Tensor& table, const Tensor& rows_t, int64_t R, int64_t C) {
  LCAM_REQUIRE(rows_t.ndim() == 1 && rows_t.dim(0) == R && rows_t.dtype() == DType::I32,
               fmt::format("{}: rows {} must be int32 [{}]", op, rows_t.shape_str(), R));
  LCAM_REQUIRE(table.ndim() >= 1 && table.numel() % std::max<int64_t>(C, 1) == 0,
               fmt::format("{}: table {} has no rows of {}", op, table.shape_str(), C));
  if (rows_t.device() != Device::CPU) return;  // device rows: see ops.h (never read back here)
  const int64_t T = table_rows(table, C);
  for (int64_t i = 0; i < R; ++i)
    LCAM_REQUIRE(rows_t.data_i32()[i] >= 0 && rows_t.data_i32()[i] < T, fmt::format("{}: row {} out of [0,{})", op, rows_t.data_i32()[i], T));
}
}  // namespace

void take_rows(Tensor& out, const Tensor& table, const Tensor& rows) {
  const int64_t R = out.dim(0), C = out.numel() / std::max<int64_t>(R, 1);
  check_row_op("take_rows", table, rows, R, C);
  Device d = common_device("take_rows", {&out, &table, &rows});
  LCAM_DISPATCH(d, gather_rows, out.data(), table.data(), rows.data_i32(), static_cast<int>(R), static_cast<int>(C),
                table_rows(table, C));
}

void scatter_add_rows(Tensor& table, const Tensor& in, const Tensor& rows) {
  const int64_t R = in.dim(0), C = in.numel() / std::max<int64_t>(R, 1);
  check_row_op("scatter_add_rows", table, rows, R, C);
  Device d = common_device("scatter_add_rows", {&table, &in, &rows});
  LCAM_DISPATCH(d, scatter_add_rows, table.data(), in.data(), rows.data_i32(), static_cast<int>(R), static_cast<int>(C),
                table_rows(table, C));
}

void sigmoid_forward(Tensor& y, const Tensor& x) {
  expect_shape("sigmoid_forward", "y", y, x.shape());
  Device d = common_device("sigmoid_forward", {&y, &x});
  LCAM_DISPATCH(d, sigmoid_forward, y.data(), x.data(), x.numel());
}

void sigmoid_backward(Tensor& dx, const Tensor& dy, const Tensor& y) {
  expect_shape("sigmoid_backward", "dy", dy, y.shape());
  expect_shape("sigmoid_backward", "dx", dx, y.shape());
  Device d = common_device("sigmoid_backward", {&dx, &dy, &y});
  LCAM_DISPATCH(d, sigmoid_backward, dx.data(), dy.data(), y.data(), y.numel());
}

void upsample_bilinear_forward(Tensor& y, const Tensor& x) {
  const char* op = "upsample_bilinear_forward";
  check_nchw(op, x);
  check_nchw(op, y);
  LCAM_REQUIRE(y.dim(0) == x.dim(0) && y.dim(1) == x.dim(1) && x.dim(2) > 0 && x.dim(3) > 0,
               fmt::format("{}: x {} y {}", op, x.shape_str(), y.shape_str()));
  Device d = common_device(op, {&y, &x});
  LCAM_DISPATCH(d, upsample_bilinear_forward, y.data(), x.data(), static_cast<int>(x.dim(0) * x.dim(1)),
                static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)), static_cast<int>(y.dim(2)),
                static_cast<int>(y.dim(3)));
}

void upsample_bilinear_backward(Tensor& dx, const Tensor& dy) {
  const char* op = "upsample_bilinear_backward";
  check_nchw(op, dx);
  check_nchw(op, dy);
  LCAM_REQUIRE(dy.dim(0) == dx.dim(0) && dy.dim(1) == dx.dim(1), fmt::format("{}: dx {} dy {}", op, dx.shape_str(), dy.shape_str()));
  Device d = common_device(op, {&dx, &dy});
  LCAM_DISPATCH(d, upsample_bilinear_backward, dx.data(), dy.data(), static_cast<int>(dx.dim(0) * dx.dim(1)),
                static_cast<int>(dx.dim(2)), static_cast<int>(dx.dim(3)), static_cast<int>(dy.dim(2)),
                static_cast<int>(dy.dim(3)));
}

void mask_mul_forward(Tensor& y, const Tensor& x, const Tensor& m) {
  const char* op = "mask_mul_forward";
  check_nchw(op, x);
  LCAM_REQUIRE(m.ndim() == 4, fmt::format("{}: m {} must be [N,1,H,W]", op, m.shape_str()));
  // One image masked by each of N masks, or each image by its own mask.
  const int64_t N = m.dim(0);
  const bool shared = x.dim(0) == 1 && N != 1;
  expect_shape(op, "m", m, {shared ? N : x.dim(0), 1, x.dim(2), x.dim(3)});
  expect_shape(op, "y", y, {N, x.dim(1), x.dim(2), x.dim(3)});
  Device d = common_device(op, {&y, &x, &m});
  LCAM_DISPATCH(d, mask_mul_forward, y.data(), x.data(), m.data(), static_cast<int>(N), static_cast<int>(x.dim(1)),
                x.dim(2) * x.dim(3), shared);
}

void mask_mul_backward_mask(Tensor& dm, const Tensor& dy, const Tensor& x) {
  const char* op = "mask_mul_backward_mask";
  check_nchw(op, x);
  expect_shape(op, "dy", dy, x.shape());
  expect_shape(op, "dm", dm, {x.dim(0), 1, x.dim(2), x.dim(3)});
  Device d = common_device(op, {&dm, &dy, &x});
  LCAM_DISPATCH(d, mask_mul_backward_mask, dm.data(), dy.data(), x.data(), static_cast<int>(x.dim(0)),
                static_cast<int>(x.dim(1)), x.dim(2) * x.dim(3));
}

namespace {
// The per-element terms of the area regularizer (value), its gradient added to dm.
Tensor area_terms(Tensor& dm, const Tensor& m, float weight, float eps, float power) {
  const char* op = "area_loss";
  if (dm.defined()) expect_shape(op, "dm", dm, m.shape());
  Device d = common_device(op, {&dm, &m});
  const int64_t L = m.numel();
  LCAM_REQUIRE(L > 0, "area_loss: empty maps");
  Tensor value = Tensor::empty(m.shape(), d);
  LCAM_DISPATCH(d, area_terms, value.data(), opt(dm), m.data(), L, eps, power, weight / static_cast<float>(L));
  return value;
}

// The per-element terms of the total variation (value), its gradient added to dm.
Tensor tv_terms(Tensor& dm, const Tensor& m, float weight, float border, float denom) {
  const char* op = "tv_loss";
  LCAM_REQUIRE(m.ndim() >= 2 && m.numel() > 0, fmt::format("{}: maps {}", op, m.shape_str()));
  if (dm.defined()) expect_shape(op, "dm", dm, m.shape());
  Device d = common_device(op, {&dm, &m});
  const int h = static_cast<int>(m.dim(-2)), w = static_cast<int>(m.dim(-1));
  const int maps = static_cast<int>(m.numel() / (static_cast<int64_t>(h) * w));
  Tensor value = Tensor::empty(m.shape(), d);
  LCAM_DISPATCH(d, tv_terms, value.data(), opt(dm), m.data(), maps, h, w, border, weight / denom);
  return value;
}

// total[1] = the sum of every element of `value`, on its device.
void sum_into(Tensor& total, const Tensor& value) {
  LCAM_REQUIRE(total.numel() == 1, fmt::format("loss sum: total {} must hold one value", total.shape_str()));
  Device d = common_device("loss sum", {&total, &value});
  LCAM_DISPATCH(d, row_sum, total.data(), value.data(), 1, value.numel());
}
}  // namespace

float area_loss(Tensor& dm, const Tensor& m, float weight, float eps, float power) {
  const Tensor value = area_terms(dm, m, weight, eps, power);
  return static_cast<float>(weight * sum(value) / static_cast<double>(m.numel()));
}

float tv_loss(Tensor& dm, const Tensor& m, float weight, float border, float denom) {
  const Tensor value = tv_terms(dm, m, weight, border, denom);
  return static_cast<float>(weight * sum(value) / denom);
}

void area_loss_sum(Tensor& total, Tensor& dm, const Tensor& m, float weight, float eps, float power) {
  sum_into(total, area_terms(dm, m, weight, eps, power));
}

void tv_loss_sum(Tensor& total, Tensor& dm, const Tensor& m, float weight, float border, float denom) {
  sum_into(total, tv_terms(dm, m, weight, border, denom));
}

void sgd_step(Tensor& p, Tensor& buf, const Tensor& grad, float lr, float momentum, float wd, bool nesterov,
              bool first) {
  expect_shape("sgd_step", "buf", buf, p.shape());
  expect_shape("sgd_step", "grad", grad, p.shape());
  Device d = common_device("sgd_step", {&p, &buf, &grad});
  LCAM_DISPATCH(d, sgd_step, p.data(), buf.data(), grad.data(), p.numel(), lr, momentum, wd, nesterov, first);
}

void dropout_forward(Tensor& y, Tensor& mask, const Tensor& x, float p, uint64_t seed) {
  LCAM_REQUIRE(p >= 0.f && p < 1.f, "dropout: p must be in [0, 1)");
  expect_shape("dropout_forward", "y", y, x.shape());
  expect_shape("dropout_forward", "mask", mask, x.shape());
  Device d = common_device("dropout_forward", {&y, &mask, &x});
  LCAM_DISPATCH(d, dropout_forward, y.data(), mask.data(), x.data(), x.numel(), p, seed);
}

void mul_forward(Tensor& y, const Tensor& a, const Tensor& b) {
  expect_shape("mul_forward", "b", b, a.shape());
  expect_shape("mul_forward", "y", y, a.shape());
  Device d = common_device("mul_forward", {&y, &a, &b});
  LCAM_DISPATCH(d, mul_forward, y.data(), a.data(), b.data(), a.numel());
}

namespace {
void per_map(const char* op, Tensor& y, const Tensor& x, bool subtract_min) {
  LCAM_REQUIRE(x.ndim() >= 2 && x.numel() > 0, fmt::format("{}: x {}", op, x.shape_str()));
  expect_shape(op, "y", y, x.shape());
  Device d = common_device(op, {&y, &x});
  const int64_t L = x.dim(-2) * x.dim(-1);
  LCAM_DISPATCH(d, minmax_normalize, y.data(), x.data(), static_cast<int>(x.numel() / L), L, subtract_min);
}
}  // namespace

void minmax_normalize(Tensor& y, const Tensor& x) { per_map("minmax_normalize", y, x, true); }
void range_scale(Tensor& y, const Tensor& x) { per_map("range_scale", y, x, false); }

void cam_weights(Tensor& w, const Tensor& A, const Tensor& g, const Tensor& expS, int kind) {
  const char* op = "cam_weights";
  check_nchw(op, A);
  LCAM_REQUIRE(kind >= 0 && kind <= 2, "cam_weights: kind 0, 1 or 2");
  const int64_t N = A.dim(0), C = A.dim(1), L = A.dim(2) * A.dim(3);
  expect_shape(op, "g", g, A.shape());
  expect_shape(op, "w", w, {N, C});
  if (kind) expect_shape(op, "expS", expS, {N});
  Device d = common_device(op, {&w, &A, &g, &expS});
  LCAM_DISPATCH(d, cam_weights, w.data(), A.data(), g.data(), opt(expS), static_cast<int>(N), static_cast<int>(C), L, kind);
}

double sum(const Tensor& x) {
  Device d = common_device("sum", {&x});
  return LCAM_DISPATCH(d, sum, x.data(), x.numel());
}

}  // namespace lcam
