// ops.h — the engine's op set. One declaration per op, dispatched on the tensors' device to the
// CPU backend (engine/cpu_ops.cpp: im2col + OpenBLAS, OpenMP loops) or the CUDA backend
// (engine/cuda/: cuDNN, cuBLAS, own kernels). All tensors of one call live on one device.
// Letters: N = batch, C = input channels, H,W = input height/width, K = output channels,
// R,S = kernel height/width, P,Q = output height/width, F = input features, O = output features.
// Every op writes its outputs with `=` (overwrite) unless its comment says `+=`. Outputs must
// be allocated by the caller with the shape the comment gives; shapes are checked.
#pragma once
#include <cstdint>  // int64_t, uint8_t

#include "engine/tensor.h"  // Tensor

namespace lcam {

struct ConvParams {
  int N, C, H, W;  // input
  int K, R, S;     // weight [K,C,R,S]
  int stride_h, stride_w, pad_h, pad_w;
  constexpr int P() const { return (H + 2 * pad_h - R) / stride_h + 1; }
  constexpr int Q() const { return (W + 2 * pad_w - S) / stride_w + 1; }
};

struct PoolParams {
  int N, C, H, W;
  int R, S, stride_h, stride_w, pad_h, pad_w;  // max-pool window (floor mode, PyTorch padding)
  constexpr int P() const { return (H + 2 * pad_h - R) / stride_h + 1; }
  constexpr int Q() const { return (W + 2 * pad_w - S) / stride_w + 1; }
};

// ---- convolution -----------------------------------------------------------------------------
// y[N,K,P,Q] = conv(x[N,C,H,W], w[K,C,R,S]) + b[K] (b may be undefined); relu fuses max(0,.).
void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                    const ConvParams& p, bool relu = false);
// y = act(conv(x, w) + b + z) with z a residual of y's shape (a ResNet bottleneck's shortcut):
// the convolution, its bias, the residual add and the ReLU in one op (on the GPU one pass over
// y, or one cuDNN call).
void conv2d_forward_add(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& z,
                        const ConvParams& p, bool relu);
// Inference: relu(conv(x, w) + b), then a 2x2/2 max-pool (floor mode, no indices): y is
// [N, K, P/2, Q/2]. Equal to conv2d_forward (relu) then maxpool2d_forward; on the CPU, where the
// direct kernel runs the convolution, in one pass that never writes the convolution's output.
void conv2d_relu_maxpool2_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& p);
// dx[N,C,H,W] = conv_transpose(dy[N,K,P,Q], w).
void conv2d_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w, const ConvParams& p);
// The same through the convolution's fused ReLU: dy masked by that ReLU's packed bits
// (relu_mask_pack of the forward's output) first. Equal to relu_mask_backward then
// conv2d_backward_data; on the CPU, where the direct kernel runs the layer, in one pass.
void conv2d_backward_data_relu(Tensor& dx, const Tensor& dy, const Tensor& bits, const Tensor& w, const ConvParams& p);
// dw[K,C,R,S] and db[K] (db may be undefined) from dy and the forward input x.
void conv2d_backward_weight(Tensor& dw, Tensor& db, const Tensor& dy, const Tensor& x,
                            const ConvParams& p);

// ---- linear ----------------------------------------------------------------------------------
// y[N,O] = x[N,F] w[O,F]^T + b[O] (b may be undefined); relu fuses max(0,.).
void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor& b,
                    bool relu = false);
// dx[N,F] = dy[N,O] w[O,F]
void linear_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w);
// dw[O,F] = dy^T x, db[O] = sum_n dy (db may be undefined)
void linear_backward_weight(Tensor& dw, Tensor& db, const Tensor& dy, const Tensor& x);

// ---- elementwise -----------------------------------------------------------------------------
void relu_forward(Tensor& y, const Tensor& x);                       // y may alias x
void relu_backward(Tensor& dx, const Tensor& dy, const Tensor& y);   // dx = dy * (y > 0)
// The ReLU mask y > 0 packed 32 to a word into an I32 tensor of ceil(numel/32) elements (bit
// i % 32 of word i / 32): 1/32 of the output's memory, all that the ReLU's backward needs.
Tensor relu_mask_pack(const Tensor& y);
// dx = dy where the packed mask's bit is set, else 0 (relu_backward from the packed mask);
// dx may alias dy.
void relu_mask_backward(Tensor& dx, const Tensor& dy, const Tensor& bits);
void add_forward(Tensor& y, const Tensor& a, const Tensor& b, bool relu = false);  // y = a + b
void add_inplace(Tensor& y, const Tensor& a);                        // y += a
// y[n,c,:,:] = x[n,c,:,:] * scale[c] + shift[c]   (frozen batch-norm: scale = g/sqrt(v+eps))
void channel_affine_forward(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift);
// dx[n,c,:,:] = dy[n,c,:,:] * scale[c]
void channel_affine_backward(Tensor& dx, const Tensor& dy, const Tensor& scale);

// ---- pooling ---------------------------------------------------------------------------------
// y[N,C,P,Q] = max over the window; argmax (may be undefined at inference) records the first
// maximum in row-major window order as its offset r*S + s in the window, one byte per output
// packed four to an int32 element (maxpool2d_argmax_for(y) allocates it; windows up to 15x15).
void maxpool2d_forward(Tensor& y, Tensor& argmax, const Tensor& x, const PoolParams& p);
Tensor maxpool2d_argmax_for(const Tensor& y);  // I32 [ceil(numel(y) / 4)] on y's device
// Byte j of a packed argmax (host tensors; for tests and tools).
inline uint8_t maxpool2d_argmax_at(const Tensor& argmax, int64_t j) {
  return reinterpret_cast<const uint8_t*>(argmax.data_i32())[j];
}
// dx[N,C,H,W] = scatter-add of dy at argmax.
void maxpool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const PoolParams& p);
// PyTorch adaptive average pooling to [P,Q]: bin i covers [floor(i*H/P), ceil((i+1)*H/P)).
void adaptive_avgpool2d_forward(Tensor& y, const Tensor& x);       // y[N,C,P,Q]
void adaptive_avgpool2d_backward(Tensor& dx, const Tensor& dy);    // dx[N,C,H,W]

// ---- classification --------------------------------------------------------------------------
void softmax_forward(Tensor& y, const Tensor& x);       // rows of x[N,O]
void log_softmax_forward(Tensor& y, const Tensor& x);   // rows of x[N,O]
// Mean cross-entropy of logits[N,O] against labels (int32 [N]); returns the loss and writes
// dlogits = grad_scale * (softmax - onehot) / N when dlogits is defined.
float cross_entropy(Tensor& dlogits, const Tensor& logits, const Tensor& labels, float grad_scale = 1.f);
// The same without reading anything back: loss_rows[N] = -log_softmax(logits)[label] per row,
// left on the device (cross_entropy's value is their mean).
void cross_entropy_rows(Tensor& loss_rows, Tensor& dlogits, const Tensor& logits, const Tensor& labels,
                        float grad_scale = 1.f);
// Mean of host values, accumulated in double (0 for none).
float mean_of(const std::vector<float>& v);
// idx[N] = the first maximum of each row of x[N,O], as a float (exact below 2^24).
void argmax_rows(Tensor& idx, const Tensor& x);

// ---- image preparation -----------------------------------------------------------------------
// The ImageNet normalization torchvision's models expect.
inline constexpr float kImagenetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImagenetStd[3] = {0.229f, 0.224f, 0.225f};
// y[N,3,H,W] = (x - mean[c]) / std[c]
void normalize_forward(Tensor& y, const Tensor& x, const float mean[3], const float stdv[3]);

// ---- L-CAM ----------------------------------------------------------------------------------
// Index tensors (rows, labels) are range-checked here when they are on the host. Device ones
// are not (that would copy them back and stall the stream): whoever uploads user data checks it
// first (models/lcam.cpp does), and the kernels gather zeros for, and skip, a row out of range
// rather than touch memory outside the table.
//
// The attention mechanism's class-selected 1x1 convolution ("gathered GEMM"): for each image n
// and map j, c[n,j,:] = w[rows[n,j],:] F[n,:,:] + b[rows[n,j]], with w[K,C], b[K], F[N,C,L],
// rows int32 [N,J], c[N,J,L]. Only the selected rows are ever multiplied.
void attention_forward(Tensor& c, const Tensor& F, const Tensor& w, const Tensor& b, const Tensor& rows);
// dw[K,C] and db[K] `+=` the gradients from dc[N,J,L] (rows may repeat: they accumulate).
void attention_backward(Tensor& dw, Tensor& db, const Tensor& dc, const Tensor& F, const Tensor& rows);

// out[r,:] = table[rows[r],:] (out [R,C], table [T,C], rows int32 [R]).
void take_rows(Tensor& out, const Tensor& table, const Tensor& rows);
// table[rows[r],:] += in[r,:], rows in order (repeats accumulate).
void scatter_add_rows(Tensor& table, const Tensor& in, const Tensor& rows);

void sigmoid_forward(Tensor& y, const Tensor& x);                    // y may alias x
void sigmoid_backward(Tensor& dx, const Tensor& dy, const Tensor& y);  // dx = dy * y * (1 - y)
// Bilinear resize of x[N,C,H,W] to y[N,C,P,Q], PyTorch's align_corners=False.
void upsample_bilinear_forward(Tensor& y, const Tensor& x);
void upsample_bilinear_backward(Tensor& dx, const Tensor& dy);  // dx[N,C,H,W] from dy[N,C,P,Q]
// y[N,C,H,W] = x * m[N,1,H,W] (the mask broadcast over channels); x may also be one image
// [1,C,H,W], then masked by each of the N masks (RISE, Score-CAM).
void mask_mul_forward(Tensor& y, const Tensor& x, const Tensor& m);
// dm[N,1,H,W] = sum_c dy * x (the gradient to the mask).
void mask_mul_backward_mask(Tensor& dm, const Tensor& dy, const Tensor& x);
// Area regularizer weight * mean((m + eps)^power) over all elements of m; dm (+=, may be
// undefined) receives its gradient. Returns the weighted value.
float area_loss(Tensor& dm, const Tensor& m, float weight, float eps, float power);
// Total variation of maps m[..., h, w]: squared differences between vertical and horizontal
// neighbours plus border * the squares of the four border rows/columns, times weight / denom;
// dm (+=, may be undefined) receives its gradient. Returns the weighted value.
float tv_loss(Tensor& dm, const Tensor& m, float weight, float border, float denom);
// The unweighted sums behind them, written to total[1] on m's device (no copy back):
// area_loss = weight * total / numel(m), tv_loss = weight * total / denom. dm as above.
void area_loss_sum(Tensor& total, Tensor& dm, const Tensor& m, float weight, float eps, float power);
void tv_loss_sum(Tensor& total, Tensor& dm, const Tensor& m, float weight, float border, float denom);
// PyTorch's SGD step on p with momentum buffer buf (dampening 0); first: the buffer starts as
// the gradient.
void sgd_step(Tensor& p, Tensor& buf, const Tensor& grad, float lr, float momentum, float wd,
              bool nesterov, bool first);
// Training-mode dropout: y = x * mask, mask = 0 or 1/(1-p) drawn from (seed, index).
void dropout_forward(Tensor& y, Tensor& mask, const Tensor& x, float p, uint64_t seed);
// y = a * b elementwise (the backward of dropout: dx = dy * mask).
void mul_forward(Tensor& y, const Tensor& a, const Tensor& b);
// Each map of x[..., h, w] scaled to [0,1]: (x - min) / (max - min); constant maps become 0.
void minmax_normalize(Tensor& y, const Tensor& x);
// Each map divided by its range (max - min; 1 where it is 0), without subtracting the minimum.
void range_scale(Tensor& y, const Tensor& x);
// Channel weights w[N,C] of the gradient CAMs from feature maps A[N,C,h,w] and the gradient g of
// the score (same shape): kind 0 Grad-CAM (spatial mean of g); 1 Grad-CAM++ as the comparison's
// reference ran it; 2 Grad-CAM++ with the paper's Eq. 19 (kernels/bodies.h has the formulas).
// expS[N] = exp(softmax score) per image for kinds 1 and 2 (undefined for kind 0).
void cam_weights(Tensor& w, const Tensor& A, const Tensor& g, const Tensor& expS, int kind);
// Sum of all elements (accumulated in double).
double sum(const Tensor& x);

}  // namespace lcam
