// cuda_runtime.h — what the host side of the engine needs from CUDA: device presence, the
// caching allocator, copies, streams and math-mode settings. Implemented in engine/cuda/ when
// built with LCAM_CUDA, and by engine/cuda_absent.cpp otherwise (available() is then false and
// everything else throws an InputError saying the build has no CUDA).
#pragma once
#include <cstddef>  // size_t
#include <cstdint>  // uint64_t
#include <functional>  // std::function (Graph::capture)
#include <string>   // std::string

#include "engine/profile.h"  // prof::timing, push, pop (TraceRange)
#include "engine/tensor.h"  // Device, MemoryStats

namespace lcam::cuda {

// True when this build has CUDA and a usable device is present. Never throws: any error from
// the runtime (no driver, no device) means "not available".
bool available();
// Why available() is false, in a few words ("built without CUDA", "no CUDA device: ...").
std::string unavailable_reason();
// Throws InputError with unavailable_reason() when no device can be used (for --device cuda).
void require_available();

// Caching allocator: sizes are rounded up, freed blocks are kept for reuse, never returned to
// the driver during a run. Alloc throws OutOfMemory when the device is out of memory.
void* device_alloc(size_t bytes);
void device_free(void* p, size_t bytes);
MemoryStats memory_stats();
void reset_peak();

// Page-locked host memory for batches that are copied to the device (faster, asynchronous
// copies). Returns nullptr when no device is available: callers fall back to plain memory.
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* p);

// Copies between host and device memory on the engine's stream (synchronous for the caller).
void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void fill_zero(void* p, size_t bytes);
// The same copy queued on the engine's stream without waiting for it. Host memory on either side
// must stay untouched until the stream has passed the copy when it is page-locked (pageable
// memory is staged by the runtime: a pageable source may be reused at once, a pageable
// destination makes the call wait). Tensor::to_async and PendingRead use it.
void copy_async(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
// An event recorded on the engine's stream now (nullptr without a device); wait_event blocks the
// host until the stream has passed it (a host synchronization, counted by host_syncs), not
// until everything queued after it has run.
void* record_event();
void wait_event(void* event);
void destroy_event(void* event);
// An event on the engine's stream that can be timed (the range profiler, engine/profile.h), and
// the device time in ms from `start` to `end` (waits for `end`; 0 without a device).
void* record_timed_event();
float elapsed_ms(void* start, void* end);
// Whether the engine's stream is capturing a CUDA graph (false without a device).
bool capturing();
void synchronize();
// Host synchronizations made so far (copies to or from host memory, synchronize()): tests use
// it to check that a training step queues its work without waiting for the device.
uint64_t host_syncs();

// A CUDA graph of a fixed-shape piece of work: capture() records what `work` queues on the
// engine's stream (nothing runs then), replay() queues all of it again in one launch, without
// the per-kernel host overhead. The graph keeps the addresses it was captured with, so:
//  - inputs are tensors allocated before the capture that the caller keeps and refills
//    (Tensor::copy_from) between replays; outputs are tensors the work keeps (in a closure's
//    state), valid after each replay;
//  - memory allocated or freed while capturing belongs to the graph until it is destroyed;
//  - the work must queue everything on the engine's stream: no copy to or from the host, no
//    synchronization, no first-time cuDNN algorithm search (run the work once before).
// A capture that breaks these rules throws InternalError. Builds without CUDA throw InputError.
class Graph {
 public:
  Graph() = default;
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  void capture(const std::function<void()>& work);
  void replay();
  bool captured() const { return exec_ != nullptr; }

 private:
  void* graph_ = nullptr;  // cudaGraph_t
  void* exec_ = nullptr;   // cudaGraphExec_t
  int pool_ = 0;           // the allocator's pool for this graph (0: none)
};

// TF32 tensor-core math for cuDNN convolutions and cuBLAS GEMMs (default on; PyTorch's default
// is on for cuDNN only, its matrix products stay float32: --precision fp32 for both off).
void set_allow_tf32(bool allow);
// How a convolution's bias (and ReLU) is applied: Auto times cuDNN's fused call against the
// convolution plus a separate kernel on the first call of each shape and keeps the faster; On
// and Off force one way (tests, benchmarks). Default Auto.
enum class ConvFusion { Auto, On, Off };
void set_conv_fusion(ConvFusion mode);
// Of the convolution shapes (and bias/ReLU/residual variants) decided so far, how many run the
// fused call: {fused, decided} (benchmarks report it; {0, 0} without CUDA).
struct FusionCounts {
  int fused = 0, decided = 0;
};
FusionCounts conv_fusion_counts();

// bfloat16 convolutions (default off): forward and data-gradient convolutions whose channel
// counts are multiples of 8 round their inputs and weights to bfloat16 and run in NHWC on
// tensor cores with float32 accumulation (outputs stay float32 NCHW); the rest as before.
// Shapes cuDNN refuses in bf16 fall back to float32 and are counted.
void set_conv_bf16(bool on);
// The most elements a tensor of one cuDNN convolution call may have: cuDNN's 4-d descriptors
// take int sizes (2^31 - 1, the default). A forward or data-gradient convolution over a batch
// whose input or output is larger runs in groups of images that fit. Returns the previous
// limit; tests lower it to check the grouping.
int64_t set_conv_elements_per_call(int64_t limit);
struct Bf16Counts {
  int used = 0, refused = 0;
};
Bf16Counts conv_bf16_counts();

// Reproducible convolutions (default off, as PyTorch's cudnn.deterministic): the shapes first
// run from now on take only algorithms cuDNN reports deterministic, in the order of its
// heuristic rather than by timing (timings differ from run to run), and the fused bias/ReLU
// call only with ConvFusion::On (Auto would decide by timing). With the same GPU, libraries and
// inputs, every run then gives the same bits (cuBLAS and lcam's own kernels always do: one
// stream, no atomics). Counts: directions (and fused calls) with an algorithm chosen so far,
// and how many of those cuDNN reports nondeterministic.
void set_deterministic(bool on);
struct AlgoCounts {
  int chosen = 0, nondeterministic = 0;
};
AlgoCounts conv_algo_counts();

// Device name and memory for logs ("NVIDIA H200, 139.8 GiB").
std::string device_summary();

// Named ranges for profilers (NVTX): under nsys or Nsight Compute each layer's kernels appear
// inside a range named after it ("features.28 conv3x3+relu", "backward layer4.2 bottleneck").
// Nearly free when no profiler is attached; no-ops in builds without CUDA. Use TraceRange,
// which also feeds lcam's own range profiler while it runs (engine/profile.h).
void range_push(const char* name);
void range_pop();
struct TraceRange {
  explicit TraceRange(const char* name) { open(name); }
  explicit TraceRange(const std::string& name) { open(name.c_str()); }
  ~TraceRange() {
    if (timed_) prof::pop();
    range_pop();
  }
  TraceRange(const TraceRange&) = delete;
  TraceRange& operator=(const TraceRange&) = delete;

 private:
  void open(const char* name) {
    range_push(name);
    timed_ = prof::timing();
    if (timed_) prof::push(name);
  }
  bool timed_ = false;
};

}  // namespace lcam::cuda
