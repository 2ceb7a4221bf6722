// runtime.cu — engine/cuda_runtime.h and engine/cuda/context.cuh for CUDA builds: the device
// probe, the one stream, lazily created cuBLAS/cuDNN handles, the caching allocators (device
// and page-locked host memory), copies and events, graphs, the shared cuDNN workspace, the TF32
// and fusion switches and the NVTX ranges.
// Allocator: requests are rounded up (512 B granularity up to 1 MiB, 2 MiB above), freed blocks
// go to a free list keyed by size and are reused for requests at most 25% smaller; memory goes
// back to the driver only when a cudaMalloc fails (then the cache is released and the malloc
// retried once). Statistics count reserved bytes (cached + in use, like PyTorch's
// memory_reserved) and bytes in use (like memory_allocated), each with its peak.
// The bookkeeping is engine/block_cache.h's (tested without a GPU), including the pools that
// serve a graph being captured (cuda::Graph): the graph keeps its blocks' addresses, so they
// stay reserved for it until it is destroyed.
// Deliberately omits: multiple devices and streams, block splitting, and teardown — the state
// is never destroyed, so tensors freed during static destruction stay valid calls, and the
// driver reclaims everything at exit.
// Threading: the allocator is locked; ops, handles and the workspace assume one host thread.
#include <algorithm>      // std::min, std::max
#include <atomic>         // std::atomic<bool> for the TF32 switch
#include <cstdio>         // std::fprintf, std::snprintf
#include <cstring>        // std::memcpy
#include <functional>     // std::function (Graph::capture)
#include <iterator>       // std::next
#include <mutex>          // std::mutex (parked page-locked blocks)
#include <string>         // std::string
#include <utility>        // std::pair (retired workspaces)
#include <vector>         // std::vector (retired workspaces, parked page-locked blocks)

#include <cublas_v2.h>         // cublasCreate, cublasSetMathMode, cublasSetWorkspace
#include <cuda_runtime_api.h>  // cudaMalloc, cudaMemcpyAsync, streams, device queries
#include <cudnn.h>             // cudnnCreate, cudnnSetStream, cudnnGetVersion
#include <nvtx3/nvToolsExt.h>  // nvtxRangePushA, nvtxRangePop (header-only NVTX 3)

#include "engine/block_cache.h"    // BlockCache (device and page-locked blocks)
#include "engine/common.h"         // InputError, InternalError
#include "engine/cuda/check.cuh"   // CUDA_CHECK, CUBLAS_CHECK, CUDNN_CHECK
#include "engine/cuda/context.cuh" // the internal interface implemented here
#include "engine/cuda_runtime.h"   // the public interface implemented here

namespace lcam::cuda {
namespace {

constexpr size_t kKiB = 1024, kMiB = 1024 * kKiB, kGiB = 1024 * kMiB;
constexpr size_t kCublasWorkspace = 32 * kMiB;  // cuBLAS's recommendation for Hopper

std::atomic<bool> g_allow_tf32{true};

// Captured graphs alive, and the cuDNN workspace blocks outgrown while any was: a graph replays
// the workspace address it captured, so an outgrown block must outlive every graph alive then.
int g_live_graphs = 0;
std::vector<std::pair<void*, size_t>>& retired_workspaces() {
  static auto* blocks = new std::vector<std::pair<void*, size_t>>;
  return *blocks;
}

// An empty kernel: if its attributes cannot be read, this binary has no code for the GPU.
__global__ void probe_kernel() {}

struct Probe {
  bool ok = false;
  std::string reason;
};

Probe run_probe() noexcept {
  Probe p;
  try {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      p.reason = "no CUDA device: " + check::str(e);
      return p;
    }
    if (count == 0) {
      p.reason = "no CUDA device: the driver reports none";
      return p;
    }
    cudaDeviceProp prop{};
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      p.reason = "no CUDA device: " + check::str(e);
      return p;
    }
    cudaFuncAttributes attr{};
    e = cudaFuncGetAttributes(&attr, probe_kernel);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      p.reason = "no usable CUDA device: this build has no code for " + std::string(prop.name) +
                 " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) +
                 "): " + check::str(e);
      return p;
    }
    p.ok = true;
  } catch (...) {
    p.ok = false;
    p.reason = "no CUDA device: probe failed";
  }
  return p;
}

const Probe& probe() {
  static const Probe p = run_probe();
  return p;
}

// ---- caching allocators -----------------------------------------------------------------------
std::atomic<uint64_t> g_host_syncs{0};
thread_local cudaError_t g_last_malloc_error = cudaSuccess;  // why the last raw device alloc failed

BlockCache& device_cache() {
  static BlockCache* c = new BlockCache(  // never destroyed: see the file comment
      [](size_t bytes, bool for_pool) -> void* {
        void* p = nullptr;
        if (for_pool) {
          // cudaMalloc is not a stream operation and the graph does not need it replayed (the
          // pool keeps the block): allow it in this thread's capture, then restore the mode.
          cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
          CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
          g_last_malloc_error = cudaMalloc(&p, bytes);
          CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
        } else {
          g_last_malloc_error = cudaMalloc(&p, bytes);
        }
        if (g_last_malloc_error != cudaSuccess) {
          (void)cudaGetLastError();
          return nullptr;
        }
        return p;
      },
      [](void* p) { CUDA_CHECK_PRINT(cudaFree(p)); });
  return *c;
}

// Page-locked blocks are cached like device blocks (cudaHostAlloc and cudaFreeHost are slow
// and may synchronize the device).
BlockCache& pinned_cache() {
  static BlockCache* c = new BlockCache(
      [](size_t bytes, bool) -> void* {
        void* p = nullptr;
        // cudaHostAlloc is one of the calls a thread-local capture forbids in its thread (and
        // it would invalidate the capture): allowed here, as cudaMalloc above; it is not a
        // stream operation.
        cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
        CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
        const cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
        CUDA_CHECK(cudaThreadExchangeStreamCaptureMode(&mode));
        if (e != cudaSuccess) {
          (void)cudaGetLastError();  // the caller falls back to pageable memory
          return nullptr;
        }
        return p;
      },
      [](void* p) { CUDA_CHECK_PRINT(cudaFreeHost(p)); });
  return *c;
}

}  // namespace

// ---- device presence --------------------------------------------------------------------------
bool available() { return probe().ok; }

std::string unavailable_reason() { return probe().ok ? std::string() : probe().reason; }

void require_available() {
  if (!available()) throw InputError("--device cuda: " + unavailable_reason());
}

// ---- allocator --------------------------------------------------------------------------------
void* device_alloc(size_t bytes) {
  if (bytes == 0) return nullptr;
  (void)ctx::stream();  // selects the device, or throws InputError when there is none
  BlockCache& c = device_cache();
  void* p = c.alloc(bytes);
  if (!p && !c.pool_open() && c.has_cached()) {
    // Out of memory with blocks cached: give them back (once the stream no longer uses them)
    // and try once more.
    CUDA_CHECK(cudaStreamSynchronize(ctx::stream()));
    c.release_cached();
    p = c.alloc(bytes);
  }
  if (!p) {
    // Only a lack of memory is reported as such: any other failure (a sticky error left by an
    // earlier kernel) is that error.
    if (g_last_malloc_error != cudaErrorMemoryAllocation && g_last_malloc_error != cudaSuccess)
      CUDA_CHECK(g_last_malloc_error);
    const BlockCache::Stats st = c.stats();
    size_t free_b = 0, total_b = 0;
    (void)cudaMemGetInfo(&free_b, &total_b);
    (void)cudaGetLastError();
    throw OutOfMemory("out of device memory: cudaMalloc of " + gib(BlockCache::rounded(bytes)) + " failed (" +
                        check::str(g_last_malloc_error) + "); reserved " + gib(st.reserved) + ", in use " +
                        gib(st.in_use) + ", device free " + gib(free_b) + " of " + gib(total_b));
  }
  return p;
}

void device_free(void* p, size_t /*bytes: the block's own size is recorded*/) {
  if (!p) return;
  // Called from destructors: report, never throw.
  if (!device_cache().free(p)) std::fprintf(stderr, "lcam: device_free of unknown pointer %p ignored\n", p);
}

MemoryStats memory_stats() {
  const BlockCache::Stats st = device_cache().stats();
  return {st.reserved, st.peak_reserved, st.in_use, st.peak_in_use};
}

void reset_peak() { device_cache().reset_peaks(); }

// ---- copies -----------------------------------------------------------------------------------
// A freed page-locked block may still be read or written by a copy queued on the stream (an
// upload whose source tensor went away, a read dropped early), so it is parked with an event
// recorded at the free (or, freed during a graph capture, at the first allocation after it)
// and goes back to the cache only once the stream has passed that event: whatever reuses it
// cannot overwrite data in flight. Reclaimed at the next allocation.
namespace {
struct Parked {
  void* p;
  cudaEvent_t done;  // nullptr: freed during a capture (or its event could not tell), none recorded yet
};
// Never destroyed, as the caches: a page-locked block freed during static destruction still
// finds them.
std::mutex& parked_mu() {
  static auto* m = new std::mutex;
  return *m;
}
std::vector<Parked>& parked() {
  static auto* v = new std::vector<Parked>;
  return *v;
}

void release_pinned(void* p) {
  if (!pinned_cache().free(p)) std::fprintf(stderr, "lcam: host_free_pinned of unknown pointer %p ignored\n", p);
}

void reclaim_parked() {
  // An event query in a capturing thread would invalidate the capture: the parked blocks wait
  // for the next allocation after it.
  if (ctx::capturing()) return;
  std::vector<void*> ready;
  {
    std::lock_guard<std::mutex> lock(parked_mu());
    std::vector<Parked>& v = parked();
    for (size_t i = 0; i < v.size();) {
      if (!v[i].done) {
        // Freed during a capture: an event recorded now lies after every copy queued before
        // the capture began, which is what the block waits for.
        cudaEvent_t e = nullptr;
        if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) == cudaSuccess &&
            cudaEventRecord(e, ctx::stream()) == cudaSuccess) {
          v[i++].done = e;
          continue;
        }
        if (e) CUDA_CHECK_PRINT(cudaEventDestroy(e));
        (void)cudaGetLastError();
        CUDA_CHECK_PRINT(cudaStreamSynchronize(ctx::stream()));  // without an event: drained
      } else {
        const cudaError_t q = cudaEventQuery(v[i].done);
        if (q != cudaSuccess) {
          (void)cudaGetLastError();  // not-ready is no error, but the next check must not see it
          // Still set: sticky, the device is lost and nothing writes the block any more.
          const bool lost = q != cudaErrorNotReady && cudaPeekAtLastError() != cudaSuccess;
          if (!lost) {
            if (q != cudaErrorNotReady) {
              // An event that cannot tell (recorded into a capture another thread began between
              // the check above and the record): the block waits for a new one.
              CUDA_CHECK_PRINT(cudaEventDestroy(v[i].done));
              v[i].done = nullptr;
            }
            ++i;
            continue;
          }
        }
        CUDA_CHECK_PRINT(cudaEventDestroy(v[i].done));
      }
      ready.push_back(v[i].p);
      v[i] = v.back();
      v.pop_back();
    }
  }
  for (void* p : ready) release_pinned(p);
}
}  // namespace

void* host_alloc_pinned(size_t bytes) {
  if (!available() || bytes == 0) return nullptr;
  reclaim_parked();
  return pinned_cache().alloc(bytes);
}

void host_free_pinned(void* p) {
  if (!p) return;
  // An event recorded during a capture would become one of its nodes, and a capture does not
  // wait for the copies queued before it: a block freed then is parked without an event, and
  // reclaim_parked records one after the capture. Called from ~Storage: nothing may throw.
  try {
    if (ctx::capturing()) {
      std::lock_guard<std::mutex> lock(parked_mu());
      parked().push_back({p, nullptr});
      return;
    }
    cudaEvent_t done = nullptr;
    if (cudaEventCreateWithFlags(&done, cudaEventDisableTiming) == cudaSuccess) {
      if (cudaEventRecord(done, ctx::stream()) == cudaSuccess) {
        std::lock_guard<std::mutex> lock(parked_mu());
        parked().push_back({p, done});
        return;
      }
      CUDA_CHECK_PRINT(cudaEventDestroy(done));
    }
    (void)cudaGetLastError();
    // Without an event to wait for: once the stream has drained.
    CUDA_CHECK_PRINT(cudaStreamSynchronize(ctx::stream()));
  } catch (...) {
  }
  release_pinned(p);
}

void copy_async(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  if (bytes == 0) return;
  if (dst_dev == Device::CPU && src_dev == Device::CPU) {
    std::memcpy(dst, src, bytes);
    return;
  }
  // A graph would keep the host address of a captured copy for every replay, while the host
  // block goes back to its cache: work to be captured stages its uploads before the capture.
  if (dst_dev != src_dev) {
    // The query's own failure (a kernel's fault left sticky, say) is reported as itself, not
    // taken for a capture.
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(ctx::stream(), &capture));
    if (capture != cudaStreamCaptureStatusNone)
      throw InternalError("cuda::copy_async: a copy between host and device inside a CUDA graph capture");
  }
  // Unified addressing lets the runtime infer the direction from the pointers.
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, ctx::stream()));
}

void copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
  copy_async(dst, dst_dev, src, src_dev, bytes);
  // Device-to-device copies are ordered on the stream like every op; a copy between host and
  // device completes before returning, so the caller may read or free the host memory.
  if (bytes != 0 && dst_dev != src_dev) synchronize();
}

namespace {
// An event created with `flags` and recorded on the engine's stream (nullptr without a device).
void* record_with(unsigned flags) {
  if (!available()) return nullptr;
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, flags));
  const cudaError_t r = cudaEventRecord(e, ctx::stream());
  if (r != cudaSuccess) {
    CUDA_CHECK_PRINT(cudaEventDestroy(e));
    CUDA_CHECK(r);
  }
  return e;
}
}  // namespace

void* record_event() { return record_with(cudaEventDisableTiming); }

void wait_event(void* event) {
  if (!event) return;
  ++g_host_syncs;
  CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(event)));
}

void destroy_event(void* event) {
  if (event) CUDA_CHECK_PRINT(cudaEventDestroy(static_cast<cudaEvent_t>(event)));
}

void* record_timed_event() { return record_with(cudaEventDefault); }

float elapsed_ms(void* start, void* end) {
  if (!start || !end) return 0.f;
  ++g_host_syncs;
  CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(end)));
  float ms = 0.f;
  CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)));
  return ms;
}

bool capturing() { return available() && ctx::capturing(); }

void fill_zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx::stream()));
}

void synchronize() {
  if (!available()) return;
  ++g_host_syncs;
  CUDA_CHECK(cudaStreamSynchronize(ctx::stream()));
}

uint64_t host_syncs() { return g_host_syncs.load(); }

// ---- graphs -----------------------------------------------------------------------------------
Graph::~Graph() {
  if (exec_) CUDA_CHECK_PRINT(cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_)));
  if (graph_) CUDA_CHECK_PRINT(cudaGraphDestroy(static_cast<cudaGraph_t>(graph_)));
  // The last graph alive releases the workspace blocks kept for the graphs (see workspace()).
  const bool release_retired = exec_ && --g_live_graphs == 0 && !retired_workspaces().empty();
  if (!pool_ && !release_retired) return;
  // A replay may still be running: its blocks are free only once the stream has drained.
  CUDA_CHECK_PRINT(cudaStreamSynchronize(ctx::stream()));
  if (release_retired) {
    for (const auto& [p, n] : retired_workspaces()) device_free(p, n);
    retired_workspaces().clear();
  }
  if (pool_) device_cache().drop_pool(pool_);
}

void Graph::capture(const std::function<void()>& work) {
  if (exec_) throw InternalError("cuda::Graph::capture: this graph was already captured");
  cudaStream_t s = ctx::stream();  // throws InputError without a device
  (void)ctx::cublas();             // handles made now: their creation cannot be captured
  (void)ctx::cudnn();
  BlockCache& cache = device_cache();
  // What a failed capture leaves: nothing will replay its blocks, so its pool goes back to the
  // shared cache at once (stream order covers any eager work still using them).
  auto abandon = [&] {
    if (pool_) cache.drop_pool(pool_);  // closes it too if it is open (only this graph's)
    pool_ = 0;
    if (graph_) CUDA_CHECK_PRINT(cudaGraphDestroy(static_cast<cudaGraph_t>(graph_)));
    graph_ = nullptr;
  };
  abandon();  // a retry after a failed capture or instantiation
  pool_ = cache.open_pool();  // throws while another capture is in progress
  auto stop = [&]() -> cudaError_t {
    cudaGraph_t g = nullptr;
    const cudaError_t e = cudaStreamEndCapture(s, &g);
    cache.close_pool(pool_);
    graph_ = g;
    return e;
  };
  try {
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  } catch (...) {
    abandon();
    throw;
  }
  try {
    work();
  } catch (...) {
    (void)stop();
    (void)cudaGetLastError();
    abandon();
    throw;
  }
  const cudaError_t e = stop();
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    abandon();
    throw InternalError("cuda::Graph::capture: the capture failed (" + check::str(e) +
                        "): the work made a call that cannot be captured (a host copy or "
                        "synchronization, or a first-time cuDNN algorithm search: run it once first)");
  }
  cudaGraphExec_t x = nullptr;
  CUDA_CHECK(cudaGraphInstantiate(&x, static_cast<cudaGraph_t>(graph_), 0));
  exec_ = x;
  ++g_live_graphs;
}

void Graph::replay() {
  if (!exec_) throw InternalError("cuda::Graph::replay: nothing captured");
  CUDA_CHECK(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_), ctx::stream()));
}

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }

FusionCounts conv_fusion_counts() {
  FusionCounts c;
  gpu::detail::conv_fusion_counts(c.fused, c.decided);
  return c;
}

void set_conv_bf16(bool on) { gpu::detail::set_conv_bf16(on); }

Bf16Counts conv_bf16_counts() {
  Bf16Counts c;
  gpu::detail::conv_bf16_counts(c.used, c.refused);
  return c;
}

void set_deterministic(bool on) { gpu::detail::set_conv_deterministic(on); }

int64_t set_conv_elements_per_call(int64_t limit) { return gpu::detail::set_conv_elements_per_call(limit); }

AlgoCounts conv_algo_counts() {
  AlgoCounts c;
  gpu::detail::conv_algo_counts(c.chosen, c.nondeterministic);
  return c;
}

void set_conv_fusion(ConvFusion mode) {
  gpu::detail::set_conv_fusion_mode(mode == ConvFusion::Auto ? 0 : mode == ConvFusion::On ? 1 : 2);
}

void range_push(const char* name) { nvtxRangePushA(name); }
void range_pop() { nvtxRangePop(); }

std::string device_summary() {
  if (!available()) return "none (" + unavailable_reason() + ")";
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  int driver = 0, runtime = 0;
  CUDA_CHECK(cudaDriverGetVersion(&driver));
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  int blas_major = 0, blas_minor = 0, blas_patch = 0;
  CUBLAS_CHECK(cublasGetProperty(MAJOR_VERSION, &blas_major));
  CUBLAS_CHECK(cublasGetProperty(MINOR_VERSION, &blas_minor));
  CUBLAS_CHECK(cublasGetProperty(PATCH_LEVEL, &blas_patch));
  const size_t dnn = cudnnGetVersion();
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "%s, %.1f GiB, sm_%d%d, driver %d.%d, runtime %d.%d, cuDNN %zu.%zu.%zu, "
                "cuBLAS %d.%d.%d",
                prop.name, static_cast<double>(prop.totalGlobalMem) / static_cast<double>(kGiB),
                prop.major, prop.minor, driver / 1000, (driver % 1000) / 10, runtime / 1000,
                (runtime % 1000) / 10, dnn / 10000, (dnn % 10000) / 100, dnn % 100, blas_major,
                blas_minor, blas_patch);
  return buf;
}

// ---- internal context (context.cuh) -----------------------------------------------------------
namespace ctx {
namespace {

cudaStream_t make_stream() {
  require_available();
  CUDA_CHECK(cudaSetDevice(0));
  // A blocking stream: work on the legacy default stream (a caller's cudaEventRecord(e, 0),
  // say) stays ordered with the engine's work.
  cudaStream_t s = nullptr;
  CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamDefault));
  return s;
}

cublasHandle_t make_cublas() {
  cudaStream_t s = stream();
  cublasHandle_t h = nullptr;
  CUBLAS_CHECK(cublasCreate(&h));
  // cublasSetStream resets the workspace to cuBLAS's own pool: set the stream first, then
  // give cuBLAS a workspace from the caching allocator so it never mallocs during a run.
  CUBLAS_CHECK(cublasSetStream(h, s));
  void* ws = device_alloc(kCublasWorkspace);
  CUBLAS_CHECK(cublasSetWorkspace(h, ws, kCublasWorkspace));
  CUBLAS_CHECK(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST));
  return h;
}

cudnnHandle_t make_cudnn() {
  cudaStream_t s = stream();
  cudnnHandle_t h = nullptr;
  CUDNN_CHECK(cudnnCreate(&h));
  CUDNN_CHECK(cudnnSetStream(h, s));
  return h;
}

}  // namespace

cudaStream_t stream() {
  static cudaStream_t s = make_stream();  // retried on the next call if it threw
  return s;
}

cublasHandle_t cublas() {
  static cublasHandle_t h = make_cublas();
  static int applied = -1;  // math mode last set: -1 none, 0 fp32, 1 tf32
  const int want = g_allow_tf32.load() ? 1 : 0;
  if (applied != want) {
    // TF32 off: CUBLAS_DEFAULT_MATH keeps sgemm in full fp32 (as PyTorch with
    // allow_tf32=False); pedantic mode would also forbid faster fp32 kernels for no accuracy.
    CUBLAS_CHECK(cublasSetMathMode(h, want ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    applied = want;
  }
  return h;
}

cudnnHandle_t cudnn() {
  static cudnnHandle_t h = make_cudnn();
  return h;
}

bool allow_tf32() { return g_allow_tf32.load(); }

bool capturing() {
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  return cudaStreamIsCapturing(stream(), &capture) != cudaSuccess || capture != cudaStreamCaptureStatusNone;
}

void* workspace(size_t bytes) {
  static void* ws = nullptr;
  static size_t ws_bytes = 0;
  if (bytes <= ws_bytes) return ws;
  // The old block goes back to the cache; ops already queued on the stream that use it run
  // before anything queued later, so handing it out again is safe. Unless a captured graph is
  // alive: it replays the old address, which then stays reserved until the last graph goes.
  void* old = ws;
  const size_t old_bytes = ws_bytes;
  ws = nullptr;
  ws_bytes = 0;
  if (old && g_live_graphs > 0)
    retired_workspaces().emplace_back(old, old_bytes);
  else
    device_free(old, old_bytes);
  ws = device_alloc(bytes);
  ws_bytes = bytes;
  return ws;
}

size_t workspace_limit() {
  static const size_t limit = [] {
    (void)stream();
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return std::max<size_t>(64 * kMiB, std::min<size_t>(2 * kGiB, free_b / 4));
  }();
  return limit;
}

}  // namespace ctx
}  // namespace lcam::cuda
