// ops.h — the engine's op set. One declaration per op, dispatched on the tensors' device to the
// CPU backend (engine/cpu_ops.cpp: im2col + OpenBLAS, OpenMP loops) or the CUDA backend
// (engine/cuda/: cuDNN, cuBLAS, own kernels). All tensors of one call live on one device.
// Letters: N = batch, C = input channels, H,W = input height/width, K = output channels,
// R,S = kernel height/width, P,Q = output height/width, F = input features, O = output features.
// Every op writes its outputs with `=` (overwrite) unless its comment says `+=`. Outputs must
// be allocated by the caller with the shape the comment gives; shapes are checked.
#pragma once
#include <cstdint>  // int64_t

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
// dx[N,C,H,W] = conv_transpose(dy[N,K,P,Q], w).
void conv2d_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w, const ConvParams& p);
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
void add_forward(Tensor& y, const Tensor& a, const Tensor& b, bool relu = false);  // y = a + b
void add_inplace(Tensor& y, const Tensor& a);                        // y += a
// y[n,c,:,:] = x[n,c,:,:] * scale[c] + shift[c]   (frozen batch-norm: scale = g/sqrt(v+eps))
void channel_affine_forward(Tensor& y, const Tensor& x, const Tensor& scale, const Tensor& shift);
// dx[n,c,:,:] = dy[n,c,:,:] * scale[c]
void channel_affine_backward(Tensor& dx, const Tensor& dy, const Tensor& scale);

// ---- pooling ---------------------------------------------------------------------------------
// y[N,C,P,Q] = max over the window; argmax (int32, same shape as y, index into H*W of the
// plane; may be undefined at inference) records the first maximum in row-major window order.
void maxpool2d_forward(Tensor& y, Tensor& argmax, const Tensor& x, const PoolParams& p);
// dx[N,C,H,W] = scatter-add of dy at argmax.
void maxpool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const PoolParams& p);
// PyTorch adaptive average pooling to [P,Q]: bin i covers [floor(i*H/P), ceil((i+1)*H/P)).
void adaptive_avgpool2d_forward(Tensor& y, const Tensor& x);       // y[N,C,P,Q]
void adaptive_avgpool2d_backward(Tensor& dx, const Tensor& dy);    // dx[N,C,H,W]

// ---- classification --------------------------------------------------------------------------
void softmax_forward(Tensor& y, const Tensor& x);       // rows of x[N,O]
void log_softmax_forward(Tensor& y, const Tensor& x);   // rows of x[N,O]
// Mean cross-entropy of logits[N,O] against labels (int32 [N]); returns the loss and writes
// dlogits = (softmax - onehot) / N when dlogits is defined.
float cross_entropy(Tensor& dlogits, const Tensor& logits, const Tensor& labels);

// ---- image preparation -----------------------------------------------------------------------
// y[N,3,H,W] = (x - mean[c]) / std[c]
void normalize_forward(Tensor& y, const Tensor& x, const float mean[3], const float stdv[3]);

}  // namespace lcam
