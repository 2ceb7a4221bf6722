// context.cuh — internal to engine/cuda/: the engine's one stream, its cuBLAS and cuDNN handles
// (created on first use, bound to that stream), the shared cuDNN workspace and the TF32 switch,
// plus the launchers that engine/cuda/kernels.cu provides to conv.cu and gemm.cu. Everything
// runs on the one stream, so memory returned to the caching allocator can be reused by the next
// op without synchronization. Deliberately omits multi-device and multi-stream support.
#pragma once
#include <cstddef>  // size_t
#include <cstdint>  // int64_t

#include <cublas_v2.h>         // cublasHandle_t
#include <cuda_runtime_api.h>  // cudaStream_t
#include <cudnn.h>             // cudnnHandle_t

namespace lcam::cuda::ctx {

// The engine's stream; the first call selects device 0 (throws InputError when no device).
cudaStream_t stream();
// Handles bound to stream(); the cuBLAS math mode follows allow_tf32().
cublasHandle_t cublas();
cudnnHandle_t cudnn();
// Current TF32 setting (set_allow_tf32 in engine/cuda_runtime.h; default true).
bool allow_tf32();
// Whether stream() is capturing a CUDA graph (true also when that cannot be told).
bool capturing();

// The shared cuDNN workspace, grown (never shrunk) to at least `bytes`. The pointer is valid
// until the next call; returns nullptr for 0 bytes when nothing has been allocated yet.
void* workspace(size_t bytes);
// Largest workspace a convolution algorithm may ask for: min(2 GiB, a quarter of the device
// memory that was free when first asked), at least 64 MiB.
size_t workspace_limit();

// Threads per block for the flat-index kernels.
constexpr int kBlock = 256;

}  // namespace lcam::cuda::ctx

namespace lcam::gpu::detail {

// y[N,C,HW] = act(y + b[c] + z) in place; b and z (a residual of y's shape) may be null; relu
// selects act = max(0,.). (kernels.cu)
void bias_act(float* y, const float* b, const float* z, int N, int C, int64_t HW, bool relu);
// The bfloat16 convolutions' layout changes (kernels.cu), through shared-memory tiles:
// out[N,HW,C] = bf16(in[N,C,HW]) (rounded to nearest even; also weights [K,C,RS] -> [K,RS,C]),
// and out[N,C,HW] = act(float(in[N,HW,C]) + b[c] + z) in float32 (b, z may be null).
void to_nhwc_bf16(uint16_t* out, const float* in, int N, int C, int64_t HW);
void from_nhwc_bf16(float* out, const uint16_t* in, const float* b, const float* z, int N, int C, int64_t HW,
                    bool relu);
// out[c] = sum over n and hw of x[N,C,HW] (overwrite), one block per channel, accumulated in
// double; written as float or, for sum(), as double. (kernels.cu)
void channel_sum(float* out, const float* x, int N, int C, int64_t HW);
void channel_sum(double* out, const float* x, int N, int C, int64_t HW);
// How conv2d_forward applies a bias: 0 the faster of fused and separate (timed per shape), 1
// fused whenever cuDNN accepts it, 2 never fused. (conv.cu; cuda::set_conv_fusion)
void set_conv_fusion_mode(int mode);
// How many (shape, variant) forward convolutions have been decided so far, and how many of them
// run cuDNN's fused call. (conv.cu; cuda::conv_fusion_counts)
void conv_fusion_counts(int& fused, int& decided);
// bfloat16 convolutions on or off, and how many shapes run them / fell back to float32 because
// cuDNN refused them. (conv.cu; cuda::set_conv_bf16, cuda::conv_bf16_counts)
void set_conv_bf16(bool on);
void conv_bf16_counts(int& used, int& refused);
// Reproducible algorithm choices for the plans made from now on, and how many directions (and
// fused calls) have an algorithm chosen / one cuDNN reports nondeterministic. (conv.cu;
// cuda::set_deterministic, cuda::conv_algo_counts)
void set_conv_deterministic(bool on);
void conv_algo_counts(int& chosen, int& nondeterministic);
// The most elements a tensor of one cuDNN call may have; larger batches go in groups of images.
// (conv.cu; cuda::set_conv_elements_per_call)
int64_t set_conv_elements_per_call(int64_t limit);

}  // namespace lcam::gpu::detail
