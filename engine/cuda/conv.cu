// conv.cu — conv2d_forward / conv2d_backward_data / conv2d_backward_weight of lcam::gpu with
// cuDNN's convolution API (NCHW, float32, cross-correlation as PyTorch).
// Per key (the ConvParams tuple, the TF32 flag, and whether the call's pointers are 16-byte
// aligned: some algorithms need it, and slices of a batch may not be) a Plan caches the tensor,
// filter and convolution descriptors and, per direction, the algorithm chosen the first time
// that direction runs: cudnnGet*Algorithm_v7 lists the candidates and their workspace needs, the
// shared workspace grows to the largest candidate within ctx::workspace_limit(), and
// cudnnFind*AlgorithmEx times them on the call's own buffers (it writes only the output, which
// the call overwrites anyway); of the successful ones within 5% of the fastest, the one with
// the smallest workspace is kept (engine/algo_choice.h). If timing fails, the heuristic's first
// candidate that fits and runs on the call's buffers is used. Deterministic plans
// (cuda::set_deterministic) take that untimed rule among the algorithms cuDNN reports
// deterministic, so that every run makes the same choices.
// Bias and ReLU: either cuDNN's fused cudnnConvolutionBiasActivationForward (one kernel) or the
// chosen convolution followed by a bias/ReLU kernel (kern::bias_act_at). cuDNN supports the
// fused call with only some algorithms and activations, and it is not always faster, so the
// first call of each (plan, activation, residual or not) times both ways on the call's buffers
// — the separate pair, and the fused call with the heuristic's first algorithms that succeed
// within the shape's own workspace (without a ReLU only implicit precomputed GEMM, the one
// algorithm cuDNN documents for the identity activation) — and keeps the faster
// (cuda::set_conv_fusion can force either way, for tests). A residual z (a bottleneck's shortcut) goes into the same epilogue
// kernel, or into the fused call's z. db is a deterministic per-channel reduction kernel.
// TF32 on: CUDNN_TENSOR_OP_MATH (cuDNN may then use TF32 tensor cores, as PyTorch by default);
// off: CUDNN_FMA_MATH (plain fp32 FMA).
// bfloat16 (cuda::set_conv_bf16): the forward and data-gradient convolutions whose channel
// counts are multiples of 8 run on bfloat16 operands in NHWC with float32 accumulation (cuDNN's
// pseudo-bf16 configuration, tensor cores). Inputs and weights are rounded and transposed into
// scratch buffers by a tiled kernel, and the bf16 NHWC output comes back to float32 NCHW in one
// kernel with the bias, residual and ReLU. Weights are converted on every call: no cache that a
// freed and reallocated tensor could alias. A direction of a shape that cuDNN refuses in bf16
// (an error status or no algorithm, on its first call) falls back to the float32 path, counted
// (conv_bf16_counts); other failures propagate. Weight gradients stay float32.
// A batch whose input or output has 2^31 elements or more (cuDNN's int sizes) runs its forward
// and data-gradient convolutions in groups of images (images_per_call).
// Deliberately omits: grouped and dilated convolutions, NHWC outside the bf16 calls, and a
// cache limit (a model has a few dozen shapes).
// Letters: N,C,H,W input; K,R,S weight; P,Q output.
#include <algorithm>         // std::min_element (timings), std::min, std::max
#include <cstdint>           // std::uintptr_t, INT32_MAX
#include <initializer_list>  // aligned16's argument
#include <map>               // std::map plan cache
#include <set>               // std::set (shapes refused in bf16)
#include <memory>            // std::unique_ptr
#include <string>            // std::string (error messages)
#include <tuple>             // std::tuple cache key
#include <utility>           // std::exchange
#include <vector>            // perf result lists

#include <cuda_runtime_api.h>  // cudaEvent* (timing the fused call)
#include <cudnn.h>             // convolution API

#include "engine/algo_choice.h"     // choose_algo
#include "engine/backend.h"         // lcam::gpu declarations (LCAM_BACKEND_OPS)
#include "engine/common.h"          // InternalError
#include "engine/cuda/check.cuh"    // CUDNN_CHECK
#include "engine/cuda/context.cuh"  // ctx::cudnn, ctx::workspace, detail::bias_act/channel_sum
#include "engine/cuda_runtime.h"    // cuda::fill_zero, device_alloc, device_free

namespace lcam::gpu {
namespace {

int g_fusion_mode = 0;  // 0 auto, 1 on, 2 off (set_conv_fusion_mode)
bool g_bf16 = false;    // set_conv_bf16
bool g_deterministic = false;  // set_conv_deterministic
int64_t g_elements_per_call = INT32_MAX;  // set_conv_elements_per_call

using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int, bool, bool, bool, bool>;

Key key_of(const ConvParams& p, bool tf32, bool aligned, bool bf16) {
  return {p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.stride_h, p.stride_w, p.pad_h, p.pad_w, tf32,
          aligned, bf16, g_deterministic};
}

// Pixels of an input plane and of an output plane.
int64_t in_plane(const ConvParams& p) { return static_cast<int64_t>(p.H) * p.W; }
int64_t out_plane(const ConvParams& p) { return static_cast<int64_t>(p.P()) * p.Q(); }

// Images per cuDNN call: its 4-d descriptors take int sizes and it refuses a tensor of 2^31
// elements or more (VGG-16's first layer at 224x224 from 666 images), so larger batches go
// through in groups of images that fit.
int64_t images_per_call(const ConvParams& p) {
  const int64_t per_image = std::max(static_cast<int64_t>(p.C) * in_plane(p), static_cast<int64_t>(p.K) * out_plane(p));
  return std::max<int64_t>(1, g_elements_per_call / std::max<int64_t>(1, per_image));
}

// When p's batch is larger than one cuDNN call takes: call(q, x_offset, y_offset) for each group
// of images (q: the group's parameters, offsets in elements of input and output), and true.
template <class Call>
bool in_groups(const ConvParams& p, Call call) {
  const int64_t n = images_per_call(p);
  if (n >= p.N) return false;
  const int64_t xs = static_cast<int64_t>(p.C) * in_plane(p), ys = static_cast<int64_t>(p.K) * out_plane(p);
  for (int64_t i = 0; i < p.N; i += n) {
    ConvParams q = p;
    q.N = static_cast<int>(std::min<int64_t>(n, p.N - i));
    call(q, i * xs, i * ys);
  }
  return true;
}

bool aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* q : ptrs)
    if (reinterpret_cast<std::uintptr_t>(q) % 16 != 0) return false;
  return true;
}

std::string shape_of(const ConvParams& p) {
  return "x[" + std::to_string(p.N) + "," + std::to_string(p.C) + "," + std::to_string(p.H) +
         "," + std::to_string(p.W) + "] w[" + std::to_string(p.K) + "," + std::to_string(p.C) +
         "," + std::to_string(p.R) + "," + std::to_string(p.S) + "] stride " +
         std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) + " pad " +
         std::to_string(p.pad_h) + "x" + std::to_string(p.pad_w);
}

// One direction's choice: the algorithm (as int: the three enums differ), its workspace and
// the math type to set on the descriptor before running it.
struct Choice {
  bool chosen = false;
  int algo = 0;
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  bool deterministic = true;  // cuDNN reports the same bits on every run for this algorithm
};

struct Plan {
  ConvParams p{};
  bool tf32 = false;  // tensor-core math allowed (TF32 for float32 plans; always for bf16 ones)
  bool bf16 = false;  // bfloat16 NHWC operands, float32 accumulation
  // Reproducible choices only (cuda::set_deterministic): algorithms cuDNN reports deterministic,
  // picked from its heuristic's order instead of by timing, and no timed fusion decision.
  bool deterministic = false;
  // A bf16 plan whose forward / data-gradient direction cuDNN would not run: that direction
  // of the shape takes the float32 path.
  bool refused_fwd = false, refused_bwd_data = false;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Choice fwd, bwd_data, bwd_filter;
  // The fused bias+activation forward: decided per fusion mode (auto, on) and variant (ReLU or
  // not, residual or not: relu + 2 * residual); `fused` false means the separate convolution
  // and epilogue kernel.
  struct Fusion {
    bool decided = false, fused = false;
    Choice how;
  } fusion[2][4];
  cudnnTensorDescriptor_t bias = nullptr;          // [1,K,1,1], made on first use
  cudnnActivationDescriptor_t act[2] = {nullptr, nullptr};  // identity, ReLU

  Plan(const ConvParams& params, bool allow_tf32, bool bfloat16)
      : p(params), tf32(allow_tf32 || bfloat16), bf16(bfloat16), deterministic(g_deterministic) {
    const cudnnTensorFormat_t layout = bf16 ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    const cudnnDataType_t type = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    try {
      CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
      CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
      CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
      CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
      CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, layout, type, p.N, p.C, p.H, p.W));
      CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, type, layout, p.K, p.C, p.R, p.S));
      CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, p.pad_h, p.pad_w, p.stride_h, p.stride_w,
                                                  1, 1, CUDNN_CROSS_CORRELATION,
                                                  CUDNN_DATA_FLOAT));
      CUDNN_CHECK(cudnnSetConvolutionMathType(conv, requested_math()));
      int n = 0, k = 0, pp = 0, q = 0;
      CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(conv, x, w, &n, &k, &pp, &q));
      if (n != p.N || k != p.K || pp != p.P() || q != p.Q())
        throw InternalError("cuDNN output shape [" + std::to_string(n) + "," +
                            std::to_string(k) + "," + std::to_string(pp) + "," +
                            std::to_string(q) + "] differs from the engine's for " +
                            shape_of(p));
      CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, layout, type, p.N, p.K, p.P(), p.Q()));
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~Plan() { destroy(); }
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;

  cudnnMathType_t requested_math() const { return tf32 ? CUDNN_TENSOR_OP_MATH : CUDNN_FMA_MATH; }

  // The bias and activation descriptors, made together: a failure leaves none of them.
  void make_fusion_descriptors() {
    if (bias) return;
    cudnnTensorDescriptor_t b = nullptr;
    cudnnActivationDescriptor_t a[2] = {nullptr, nullptr};
    try {
      CUDNN_CHECK(cudnnCreateTensorDescriptor(&b));
      CUDNN_CHECK(cudnnSetTensor4dDescriptor(b, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, p.K, 1, 1));
      for (int r = 0; r < 2; ++r) {
        CUDNN_CHECK(cudnnCreateActivationDescriptor(&a[r]));
        // NaN passes the ReLU, as kern::relu and torch.relu let it.
        CUDNN_CHECK(cudnnSetActivationDescriptor(a[r], r ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                                 CUDNN_PROPAGATE_NAN, 0.0));
      }
    } catch (...) {
      for (auto d : a)
        if (d) CUDNN_CHECK_PRINT(cudnnDestroyActivationDescriptor(d));
      if (b) CUDNN_CHECK_PRINT(cudnnDestroyTensorDescriptor(b));
      throw;
    }
    bias = b;
    act[0] = a[0];
    act[1] = a[1];
  }

  void destroy() noexcept {
    for (auto& a : act)
      if (a) CUDNN_CHECK_PRINT(cudnnDestroyActivationDescriptor(a));
    if (bias) CUDNN_CHECK_PRINT(cudnnDestroyTensorDescriptor(bias));
    act[0] = act[1] = nullptr;
    bias = nullptr;
    if (conv) CUDNN_CHECK_PRINT(cudnnDestroyConvolutionDescriptor(conv));
    if (w) CUDNN_CHECK_PRINT(cudnnDestroyFilterDescriptor(w));
    if (y) CUDNN_CHECK_PRINT(cudnnDestroyTensorDescriptor(y));
    if (x) CUDNN_CHECK_PRINT(cudnnDestroyTensorDescriptor(x));
    conv = nullptr;
    w = nullptr;
    x = y = nullptr;
  }
};

// Plans are never evicted; the map lives for the process (see runtime.cu on teardown).
std::map<Key, std::unique_ptr<Plan>>& plans() {
  static auto* cache = new std::map<Key, std::unique_ptr<Plan>>;
  return *cache;
}

Plan& plan_for(const ConvParams& p, bool aligned, bool bf16 = false) {
  const bool tf32 = bf16 || cuda::ctx::allow_tf32();  // bf16 plans always use tensor cores
  const Key key = key_of(p, tf32, aligned, bf16);
  auto it = plans().find(key);
  if (it != plans().end()) return *it->second;
  auto plan = std::make_unique<Plan>(p, tf32, bf16);  // may throw: then nothing is cached
  Plan& made = *plan;
  plans().emplace(key, std::move(plan));
  return made;
}

// Shapes whose bf16 descriptors cuDNN rejected (the plan could not even be made).
std::set<Key>& refused_bf16() {
  static auto* keys = new std::set<Key>;
  return *keys;
}

// The bf16 plan for this shape when bf16 convolutions are on and the shape suits them (channel
// counts multiples of 8, as the tensor-core NHWC kernels want; a first layer's 3 inputs do
// not), else nullptr: the float32 path.
Plan* bf16_plan_for(const ConvParams& p) {
  if (!g_bf16 || p.C <= 0 || p.C % 8 != 0 || p.K % 8 != 0) return nullptr;
  const Key key = key_of(p, true, true, true);
  if (refused_bf16().count(key)) return nullptr;
  try {
    return &plan_for(p, true, true);
  } catch (const CudnnError&) {
    refused_bf16().insert(key);
    return nullptr;
  }
}

// Algorithm searches time kernels and wait for them, which a capture cannot hold; a failed
// search would also cache an untimed choice for good. First calls must run before a capture.
void require_not_capturing(const char* what, const ConvParams& p) {
  // The query's own error first: after a sticky error (an illegal address in an earlier
  // kernel) the real cause, not "inside a capture".
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CUDA_CHECK(cudaStreamIsCapturing(cuda::ctx::stream(), &capture));
  if (capture != cudaStreamCaptureStatusNone)
    throw InternalError(std::string("cuDNN ") + what + " algorithm search for " + shape_of(p) +
                        " inside a CUDA graph capture: run the work once before capturing it");
}

// A device buffer from the caching allocator for the length of a call, returned at scope exit
// (everything runs on the one stream: whatever reuses it is queued after this call's work).
struct Scratch {
  size_t bytes;
  void* p;
  explicit Scratch(size_t n) : bytes(n), p(cuda::device_alloc(n)) {}
  ~Scratch() { cuda::device_free(p, bytes); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  uint16_t* bf16() const { return static_cast<uint16_t*>(p); }
};

// Bytes of n bfloat16 values.
size_t bf16_bytes(int64_t n) { return sizeof(uint16_t) * static_cast<size_t>(n); }

// One trial run of a candidate algorithm (untimed choices): its cuDNN status. A workspace the
// device cannot give counts as a refusal (the next candidate may need less); a refusal's
// non-sticky CUDA error is cleared so that it is not blamed on what runs next; a sticky one (the
// context is lost) is thrown as itself.
// `oom`, when given, is set when the workspace could not be had.
template <class Run>
cudnnStatus_t trial(Run run, bool* oom = nullptr) {
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  try {
    st = run();
  } catch (const OutOfMemory&) {
    st = CUDNN_STATUS_ALLOC_FAILED;
    if (oom) *oom = true;
  }
  if (st == CUDNN_STATUS_SUCCESS) {
    CUDA_CHECK(cudaPeekAtLastError());  // a refusal is a status; a failed launch is not
  } else {
    (void)cudaGetLastError();
    CUDA_CHECK(cudaPeekAtLastError());  // still set: sticky
  }
  return st;
}

// The Choice of one perf result (any of the three perf struct types).
template <class Perf>
Choice choice_of(const Perf& r, bool tf32) {
  Choice c;
  c.chosen = true;
  c.algo = static_cast<int>(r.algo);
  c.workspace = r.memory;
  // With TF32 forbidden, never let a result's DEFAULT/TENSOR_OP math re-enable it.
  c.math = tf32 ? r.mathType : CUDNN_FMA_MATH;
  c.deterministic = r.determinism == CUDNN_DETERMINISTIC;
  return c;
}

template <class Perf>
std::vector<AlgoCandidate> candidates(const std::vector<Perf>& perfs, int count, bool timed) {
  std::vector<AlgoCandidate> c(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i)
    c[i] = {perfs[i].status == CUDNN_STATUS_SUCCESS && (!timed || perfs[i].time >= 0.f), timed ? perfs[i].time : 0.f,
            perfs[i].memory, perfs[i].determinism == CUDNN_DETERMINISTIC};
  return c;
}

// Timed results (Find): the smallest workspace among the successful ones within kTimeSlack of
// the fastest that fit `limit` (choose_algo).
constexpr double kTimeSlack = 0.05;

// Shared selection logic: heuristics list (get), grow the workspace, time (find), pick.
// `find` returns the cudnnStatus_t of the timing call so that its failure can fall back;
// `run(choice, workspace)` runs the call once with that choice and returns its status. Untimed choices —
// a deterministic plan's, or when timing failed — take the heuristic's candidates in its order
// (expected speed) and keep the first that fits, is deterministic where asked, and runs: the
// heuristic looks at the descriptors only, and an algorithm may still refuse the call's
// pointers (slices of a batch need not be 16-byte aligned).
template <class Perf, class Get, class Find, class Run>
Choice choose(const char* what, const Plan& plan, int max_count, Get get, Find find, Run run) {
  require_not_capturing(what, plan.p);
  // Each run sets the math of the algorithm it runs: searches start from the requested one
  // (tensor-op math lists the TF32 / bf16 tensor-core algorithms as well as the FMA ones).
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.requested_math()));
  const size_t limit = cuda::ctx::workspace_limit();
  std::vector<Perf> heur(static_cast<size_t>(max_count));
  int heur_n = 0;
  CUDNN_CHECK(get(max_count, &heur_n, heur.data()));
  const std::vector<AlgoCandidate> listed = candidates(heur, heur_n, false);
  cudnnStatus_t refusal = CUDNN_STATUS_NOT_SUPPORTED;  // the last candidate's, for the message
  bool out_of_memory = false;                          // a candidate's workspace could not be had
  auto first_that_runs = [&](Choice& out) {
    CUDA_CHECK(cudaPeekAtLastError());  // an earlier error is reported as itself, not as a refusal
    for (int i = 0; i < heur_n; ++i) {
      if (!usable(listed[i], limit, plan.deterministic)) continue;
      const Choice k = choice_of(heur[i], plan.tf32);
      // In a buffer of its own, returned right after: only the chosen algorithm's workspace
      // stays (the shared one, grown at the call), not the largest candidate tried.
      const cudnnStatus_t st = trial(
          [&] {
            const Scratch ws(k.workspace);
            return run(k, ws.p);
          },
          &out_of_memory);
      if (st != CUDNN_STATUS_SUCCESS) {
        refusal = st;
        continue;
      }
      out = k;
      return true;
    }
    return false;
  };
  Choice c;
  // Deterministic plans take the heuristic's order, the same on every run: timings are not.
  if (plan.deterministic) {
    if (first_that_runs(c)) return c;
    throw CudnnError(std::string("cuDNN has no deterministic ") + what + " algorithm for " + shape_of(plan.p) +
                     " within a " + std::to_string(limit >> 20) + " MiB workspace (last refusal: " +
                     cudnnGetErrorString(refusal) + "; run without --deterministic)");
  }
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  {
    // The timing runs get a buffer of their own, returned to the allocator's cache right after:
    // only the chosen algorithm's workspace stays in use (the shared one, grown at the call).
    // Without the memory for that buffer, the untimed fallback below (which needs only its
    // own algorithm's workspace) still gives an algorithm.
    size_t ws_bytes = 0;
    for (const AlgoCandidate& k : listed)
      if (usable(k, limit, false)) ws_bytes = std::max(ws_bytes, k.memory);
    try {
      const Scratch scratch(ws_bytes);
      std::vector<Perf> timed(static_cast<size_t>(max_count));
      int timed_n = 0;
      st = find(max_count, &timed_n, timed.data(), scratch.p, ws_bytes);
      if (st == CUDNN_STATUS_SUCCESS) {
        const int i = choose_algo(candidates(timed, timed_n, true), ws_bytes, kTimeSlack);
        if (i >= 0) {
          c = choice_of(timed[i], plan.tf32);
          // The workspace reported is the result's own math's; with TF32 off the choice runs
          // under FMA math, whose workspace may differ: run it once first, as the untimed ones.
          if (c.math == timed[i].mathType) return c;
          const cudnnStatus_t tried = trial(
              [&] {
                const Scratch ws(c.workspace);
                return run(c, ws.p);
              },
              &out_of_memory);
          if (tried == CUDNN_STATUS_SUCCESS) return c;
          refusal = tried;
        }
      }
    } catch (const OutOfMemory&) {
      st = CUDNN_STATUS_ALLOC_FAILED;
      out_of_memory = true;
    }
  }
  if (first_that_runs(c)) return c;
  // Not a refusal by cuDNN when memory was what failed: the bf16 path must not take it for one
  // (cudnn_accepts) and run this shape in float32 for the rest of the process.
  if (out_of_memory)
    throw OutOfMemory(std::string("out of device memory for every ") + what + " algorithm's workspace for " +
                      shape_of(plan.p) + " (last cuDNN status: " + cudnnGetErrorString(refusal) + ")");
  throw CudnnError(std::string("cuDNN has no usable ") + what + " algorithm for " +
                      shape_of(plan.p) + " within a " + std::to_string(limit >> 20) +
                      " MiB workspace (timing: " + cudnnGetErrorString(st) + "; last refusal: " +
                      cudnnGetErrorString(refusal) + ")");
}

// The fused call with one algorithm: y = act(conv(x) + z + b); without a residual z is y with
// weight 0.
cudnnStatus_t run_fused(Plan& plan, const Choice& c, bool relu, float* y, const float* x, const float* w,
                        const float* b, const float* z) {
  const float one = 1.f, zero = 0.f;
  void* ws = cuda::ctx::workspace(c.workspace);
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, c.math));
  return cudnnConvolutionBiasActivationForward(cuda::ctx::cudnn(), &one, plan.x, x, plan.w, w, plan.conv,
                                               static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws, c.workspace,
                                               z ? &one : &zero, plan.y, z ? z : y, plan.bias, b, plan.act[relu ? 1 : 0],
                                               plan.y, y);
}

// Least time in ms of `reps` calls of run() after one untimed call; negative when that first
// call does not succeed (the fused call rejects some algorithms).
template <class Run>
float time_calls(Run run, int reps) {
  if (run() != CUDNN_STATUS_SUCCESS) return -1.f;
  cudaStream_t s = cuda::ctx::stream();
  std::vector<float> ms;
  struct Events {  // destroyed on every path, a throwing run() included
    cudaEvent_t e[2] = {nullptr, nullptr};
    ~Events() {
      for (auto x : e)
        if (x) CUDA_CHECK_PRINT(cudaEventDestroy(x));
    }
  } ev;
  CUDA_CHECK(cudaEventCreate(&ev.e[0]));
  CUDA_CHECK(cudaEventCreate(&ev.e[1]));
  cudaEvent_t e0 = ev.e[0], e1 = ev.e[1];
  for (int i = 0; i < reps; ++i) {
    CUDA_CHECK(cudaEventRecord(e0, s));
    const cudnnStatus_t st = run();
    CUDA_CHECK(cudaEventRecord(e1, s));
    CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0.f;
    CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (st == CUDNN_STATUS_SUCCESS) ms.push_back(t);
  }
  if (ms.empty()) return -1.f;
  return *std::min_element(ms.begin(), ms.end());  // noise only adds time: the fastest rep
}

void run_separate(Plan& plan, float* y, const float* x, const float* w, const float* b, const float* z, bool relu);

// Chooses between the separate convolution + kernel and the fused call for this plan and
// activation (mode 0 auto: the faster; mode 1 on: the fastest fused algorithm whenever one works).
// A deterministic plan decides without timing: auto never fuses, on takes the heuristic's first
// deterministic candidate that runs.
void decide_fusion(Plan& plan, Plan::Fusion& f, int mode, bool relu, float* y, const float* x, const float* w,
                   const float* b, const float* z) {
  f = Plan::Fusion{};  // a decision that threw half-way is taken again from nothing
  if (plan.deterministic && mode == 0) {  // nothing to time or try
    f.decided = true;
    f.fused = false;
    return;
  }
  require_not_capturing("fused forward", plan.p);
  plan.make_fusion_descriptors();
  cudnnHandle_t h = cuda::ctx::cudnn();
  // A few timed calls of a few candidates: this runs once per shape, inside the first call.
  constexpr int kReps = 3, kCandidates = 4;
  float best = -1.f;
  if (mode == 0) {
    best = time_calls(
        [&] {
          run_separate(plan, y, x, w, b, z, relu);
          return CUDNN_STATUS_SUCCESS;
        },
        kReps);
  }
  int max_count = 0;
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
  std::vector<cudnnConvolutionFwdAlgoPerf_t> heur(static_cast<size_t>(max_count));
  int n = 0;
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.requested_math()));  // as choose()
  CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, plan.x, plan.w, plan.conv, plan.y, max_count, &n, heur.data()));
  // No candidate may grow the shared workspace past what this shape already uses (or 16 MiB):
  // the fusion must not cost the memory the algorithm choice saved.
  const size_t limit = std::min(cuda::ctx::workspace_limit(), std::max<size_t>(plan.fwd.workspace, size_t{16} << 20));
  // The heuristic's first candidates, and implicit precomputed GEMM (the algorithm cuDNN's
  // documentation names for the fused ReLU) wherever it stands in the list. With the identity
  // activation (no ReLU) cuDNN documents that algorithm alone: others may return success and
  // still apply the wrong activation, so they are not tried.
  const std::vector<AlgoCandidate> listed = candidates(heur, n, false);
  int tried = 0;
  for (int i = 0; i < n; ++i) {
    if (!usable(listed[i], limit, plan.deterministic)) continue;
    if (!relu && heur[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) continue;
    if (tried >= kCandidates && heur[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM) continue;
    ++tried;
    const Choice c = choice_of(heur[i], plan.tf32);
    if (plan.deterministic) {  // the first that runs, whatever its time
      if (trial([&] { return run_fused(plan, c, relu, y, x, w, b, z); }) != CUDNN_STATUS_SUCCESS) continue;
      f.fused = true;
      f.how = c;
      break;
    }
    // trial(): a candidate whose workspace cannot be had, or whose refusal left a non-sticky
    // CUDA error, is skipped as any refusal rather than failing the forward pass.
    const float t = time_calls([&] { return trial([&] { return run_fused(plan, c, relu, y, x, w, b, z); }); }, kReps);
    if (t >= 0.f && (best < 0.f || t < best)) {
      best = t;
      f.fused = true;
      f.how = c;
    }
  }
  f.decided = true;
}

}  // namespace

namespace {

// y = conv(x, w) with one choice (the chosen one, or a candidate while choosing) and its
// workspace (nullptr: the shared one, grown to the choice's size).
cudnnStatus_t forward_with(Plan& plan, const Choice& c, void* y, const void* x, const void* w, void* ws = nullptr) {
  const float one = 1.f, zero = 0.f;
  if (!ws) ws = cuda::ctx::workspace(c.workspace);
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, c.math));
  return cudnnConvolutionForward(cuda::ctx::cudnn(), &one, plan.x, x, plan.w, w, plan.conv,
                                 static_cast<cudnnConvolutionFwdAlgo_t>(c.algo), ws, c.workspace, &zero, plan.y, y);
}

void choose_forward(Plan& plan, void* y, const void* x, const void* w) {
  cudnnHandle_t h = cuda::ctx::cudnn();
  if (!plan.fwd.chosen) {
    int max_count = 0;
    CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithmMaxCount(h, &max_count));
    plan.fwd = choose<cudnnConvolutionFwdAlgoPerf_t>(
        "forward", plan, max_count,
        [&](int n, int* got, cudnnConvolutionFwdAlgoPerf_t* r) {
          return cudnnGetConvolutionForwardAlgorithm_v7(h, plan.x, plan.w, plan.conv, plan.y, n,
                                                        got, r);
        },
        [&](int n, int* got, cudnnConvolutionFwdAlgoPerf_t* r, void* ws, size_t ws_bytes) {
          return cudnnFindConvolutionForwardAlgorithmEx(h, plan.x, x, plan.w, w, plan.conv,
                                                        plan.y, y, n, got, r, ws, ws_bytes);
        },
        [&](const Choice& c, void* ws) { return forward_with(plan, c, y, x, w, ws); });
  }
}

// The chosen forward algorithm alone: y = conv(x, w), in the plan's types and layout.
void run_forward(Plan& plan, void* y, const void* x, const void* w) { CUDNN_CHECK(forward_with(plan, plan.fwd, y, x, w)); }

void run_separate(Plan& plan, float* y, const float* x, const float* w, const float* b, const float* z, bool relu) {
  run_forward(plan, y, x, w);
  detail::bias_act(y, b, z, plan.p.N, plan.p.K, out_plane(plan.p), relu);
}

// Runs a bf16 plan's cuDNN work for one direction. The first time (no algorithm chosen yet), a
// refusal by cuDNN — an error status, or no algorithm it would run — marks that direction
// refused and returns false: the caller takes the float32 path from then on. Anything else
// propagates: other errors (memory, a pending CUDA error), refusals once the direction has
// run, and any failure while a graph is being captured (first calls must run before it).
template <class Work>
bool cudnn_accepts(const Choice& choice, bool& refused, Work work) {
  if (choice.chosen) {
    work();
    return true;
  }
  try {
    work();
    return true;
  } catch (const CudnnError&) {
    if (cuda::ctx::capturing()) throw;
    (void)cudaGetLastError();                         // a refusal's non-sticky error, as trial()
    if (cudaPeekAtLastError() != cudaSuccess) throw;  // still set: sticky, the context is lost
    refused = true;
    return false;
  }
}

// One direction of a bf16 plan (see the top of this file): `in` [N, Cin, HWin] and the weights
// go to bf16 NHWC, run(out, in, w) runs cuDNN on those, and its bf16 NHWC result comes back as
// out [N, Cout, HWout] = act(result + b + z) in float32. False, with nothing written, when
// cuDNN refuses this direction (cudnn_accepts).
template <class Run>
bool run_bf16(const ConvParams& p, const Choice& choice, bool& refused, float* out, int cout, int64_t hw_out,
              const float* in, int cin, int64_t hw_in, const float* w, const float* b, const float* z, bool relu,
              Run run) {
  if (refused) return false;
  const int64_t N = p.N, RS = static_cast<int64_t>(p.R) * p.S;
  const Scratch inb(bf16_bytes(N * cin * hw_in)), wb(bf16_bytes(RS * p.K * p.C)), outb(bf16_bytes(N * cout * hw_out));
  detail::to_nhwc_bf16(inb.bf16(), in, p.N, cin, hw_in);
  detail::to_nhwc_bf16(wb.bf16(), w, p.K, p.C, RS);
  if (!cudnn_accepts(choice, refused, [&] { run(outb.p, inb.p, wb.p); })) return false;
  detail::from_nhwc_bf16(out, outb.bf16(), b, z, p.N, cout, hw_out, relu);
  return true;
}

// y = act(conv(x, w) + b + z) with bfloat16 operands.
bool forward_bf16(Plan& plan, float* y, const float* x, const float* w, const float* b, const float* z, bool relu) {
  const ConvParams& p = plan.p;
  return run_bf16(p, plan.fwd, plan.refused_fwd, y, p.K, out_plane(p), x, p.C, in_plane(p), w, b, z, relu,
                  [&](void* yb, const void* xb, const void* wb) {
                    choose_forward(plan, yb, xb, wb);
                    run_forward(plan, yb, xb, wb);
                  });
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const float* z, const ConvParams& p,
                    bool relu) {
  if (p.N <= 0 || p.K <= 0) return;
  if (in_groups(p, [&](const ConvParams& q, int64_t xo, int64_t yo) {
        conv2d_forward(y + yo, x + xo, w, b, z ? z + yo : nullptr, q, relu);
      }))
    return;
  if (Plan* bp = bf16_plan_for(p); bp && forward_bf16(*bp, y, x, w, b, z, relu)) return;
  Plan& plan = plan_for(p, aligned16({y, x, w, b, z}));
  choose_forward(plan, y, x, w);
  const int mode = g_fusion_mode;
  if (b && mode != 2) {  // a bias to fuse, and fusion not switched off
    Plan::Fusion& f = plan.fusion[mode][(relu ? 1 : 0) + (z ? 2 : 0)];
    if (!f.decided) decide_fusion(plan, f, mode, relu, y, x, w, b, z);
    if (f.fused) {
      CUDNN_CHECK(run_fused(plan, f.how, relu, y, x, w, b, z));
      return;
    }
  }
  run_separate(plan, y, x, w, b, z, relu);
}

namespace {

// dx = the data gradient of conv(., w) at dy with one choice (workspace as forward_with's).
cudnnStatus_t backward_data_with(Plan& plan, const Choice& c, void* dx, const void* dy, const void* w,
                                 void* ws = nullptr) {
  const float one = 1.f, zero = 0.f;
  if (!ws) ws = cuda::ctx::workspace(c.workspace);
  CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, c.math));
  return cudnnConvolutionBackwardData(cuda::ctx::cudnn(), &one, plan.w, w, plan.y, dy, plan.conv,
                                      static_cast<cudnnConvolutionBwdDataAlgo_t>(c.algo), ws, c.workspace, &zero,
                                      plan.x, dx);
}

// dx = the data gradient of conv(., w) at dy, in the plan's types and layout.
void backward_data(Plan& plan, void* dx, const void* dy, const void* w) {
  cudnnHandle_t h = cuda::ctx::cudnn();
  if (!plan.bwd_data.chosen) {
    int max_count = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &max_count));
    plan.bwd_data = choose<cudnnConvolutionBwdDataAlgoPerf_t>(
        "backward-data", plan, max_count,
        [&](int n, int* got, cudnnConvolutionBwdDataAlgoPerf_t* r) {
          return cudnnGetConvolutionBackwardDataAlgorithm_v7(h, plan.w, plan.y, plan.conv,
                                                             plan.x, n, got, r);
        },
        [&](int n, int* got, cudnnConvolutionBwdDataAlgoPerf_t* r, void* ws, size_t ws_bytes) {
          return cudnnFindConvolutionBackwardDataAlgorithmEx(h, plan.w, w, plan.y, dy, plan.conv,
                                                             plan.x, dx, n, got, r, ws,
                                                             ws_bytes);
        },
        [&](const Choice& c, void* ws) { return backward_data_with(plan, c, dx, dy, w, ws); });
  }
  CUDNN_CHECK(backward_data_with(plan, plan.bwd_data, dx, dy, w));
}

// dx = the data gradient of conv(., w) at dy, with bfloat16 operands.
bool backward_data_bf16(Plan& plan, float* dx, const float* dy, const float* w) {
  const ConvParams& p = plan.p;
  return run_bf16(p, plan.bwd_data, plan.refused_bwd_data, dx, p.C, in_plane(p), dy, p.K, out_plane(p), w, nullptr,
                  nullptr, false, [&](void* dxb, const void* dyb, const void* wb) { backward_data(plan, dxb, dyb, wb); });
}

}  // namespace

void conv2d_backward_data(float* dx, const float* dy, const float* w, const ConvParams& p) {
  if (p.N <= 0 || p.C <= 0) return;
  if (p.K <= 0) {  // no output channels: nothing flows back (cuDNN rejects empty tensors)
    cuda::fill_zero(dx, sizeof(float) * static_cast<size_t>(p.N) * p.C * in_plane(p));
    return;
  }
  if (in_groups(p, [&](const ConvParams& q, int64_t xo, int64_t yo) { conv2d_backward_data(dx + xo, dy + yo, w, q); }))
    return;
  if (Plan* bp = bf16_plan_for(p); bp && backward_data_bf16(*bp, dx, dy, w)) return;
  backward_data(plan_for(p, aligned16({dx, dy, w})), dx, dy, w);
}

void conv2d_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const ConvParams& p) {
  if (p.K <= 0 || p.C <= 0) return;
  if (p.N <= 0) {  // no samples: zero gradients (cuDNN rejects empty tensors)
    cuda::fill_zero(dw, sizeof(float) * static_cast<size_t>(p.K) * p.C * p.R * p.S);
    if (db) cuda::fill_zero(db, sizeof(float) * static_cast<size_t>(p.K));
    return;
  }
  LCAM_REQUIRE(images_per_call(p) >= p.N, "a weight gradient over a batch whose tensors have 2^31 elements or more");
  Plan& plan = plan_for(p, aligned16({dw, dy, x}));
  cudnnHandle_t h = cuda::ctx::cudnn();
  // dw = the weight gradient with one choice.
  auto with = [&](const Choice& c, void* ws) {
    const float one = 1.f, zero = 0.f;
    if (!ws) ws = cuda::ctx::workspace(c.workspace);
    CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, c.math));
    return cudnnConvolutionBackwardFilter(h, &one, plan.x, x, plan.y, dy, plan.conv,
                                          static_cast<cudnnConvolutionBwdFilterAlgo_t>(c.algo), ws, c.workspace,
                                          &zero, plan.w, dw);
  };
  if (!plan.bwd_filter.chosen) {
    int max_count = 0;
    CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(h, &max_count));
    plan.bwd_filter = choose<cudnnConvolutionBwdFilterAlgoPerf_t>(
        "backward-filter", plan, max_count,
        [&](int n, int* got, cudnnConvolutionBwdFilterAlgoPerf_t* r) {
          return cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, plan.x, plan.y, plan.conv,
                                                               plan.w, n, got, r);
        },
        [&](int n, int* got, cudnnConvolutionBwdFilterAlgoPerf_t* r, void* ws, size_t ws_bytes) {
          return cudnnFindConvolutionBackwardFilterAlgorithmEx(h, plan.x, x, plan.y, dy,
                                                               plan.conv, plan.w, dw, n, got, r,
                                                               ws, ws_bytes);
        },
        with);
  }
  CUDNN_CHECK(with(plan.bwd_filter, nullptr));
  if (db) detail::channel_sum(db, dy, p.N, p.K, out_plane(p));
}

namespace detail {
void set_conv_fusion_mode(int mode) { g_fusion_mode = mode; }

void conv_fusion_counts(int& fused, int& decided) {
  fused = decided = 0;
  for (const auto& [key, plan] : plans())
    if (plan)
      for (const auto& by_mode : plan->fusion)
        for (const Plan::Fusion& f : by_mode) {
          decided += f.decided;
          fused += f.decided && f.fused;
        }
}

void set_conv_bf16(bool on) { g_bf16 = on; }

void set_conv_deterministic(bool on) { g_deterministic = on; }

int64_t set_conv_elements_per_call(int64_t limit) {
  LCAM_REQUIRE(limit >= 1 && limit <= INT32_MAX, "a cuDNN call takes 1 to 2^31 - 1 elements per tensor");
  return std::exchange(g_elements_per_call, limit);
}

void conv_algo_counts(int& chosen, int& nondeterministic) {
  chosen = nondeterministic = 0;
  auto add = [&](const Choice& c) {
    chosen += c.chosen;
    nondeterministic += c.chosen && !c.deterministic;
  };
  for (const auto& [key, plan] : plans())
    if (plan) {
      add(plan->fwd);
      add(plan->bwd_data);
      add(plan->bwd_filter);
      for (const auto& by_mode : plan->fusion)
        for (const Plan::Fusion& f : by_mode)
          if (f.decided && f.fused) add(f.how);
    }
}

void conv_bf16_counts(int& used, int& refused) {
  used = 0;
  refused = static_cast<int>(refused_bf16().size());
  for (const auto& [key, plan] : plans())
    if (plan && plan->bf16) {
      refused += plan->refused_fwd + plan->refused_bwd_data;
      used += (plan->fwd.chosen && !plan->refused_fwd) || (plan->bwd_data.chosen && !plan->refused_bwd_data);
    }
}
}  // namespace detail

}  // namespace lcam::gpu
