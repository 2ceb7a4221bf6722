// cuda_absent.cpp — cuda_runtime.h for builds without LCAM_CUDA: no device is ever available,
// and anything that would need one throws an InputError saying so. Excluded from CUDA builds.
#include <cstdint>  // INT32_MAX
#include <string>   // std::string

#include "engine/common.h"        // InputError
#include "engine/cuda_runtime.h"  // the interface implemented here

namespace lcam::cuda {
namespace {
[[noreturn]] void no_cuda() { throw InputError("this lcam was built without CUDA (LCAM_CUDA=OFF)"); }
}  // namespace

bool available() { return false; }
std::string unavailable_reason() { return "built without CUDA"; }
void require_available() { throw InputError("--device cuda: this lcam was built without CUDA (LCAM_CUDA=OFF)"); }
void* device_alloc(size_t) { no_cuda(); }
void device_free(void*, size_t) {}
MemoryStats memory_stats() { return {}; }
void reset_peak() {}
void* host_alloc_pinned(size_t) { return nullptr; }
void host_free_pinned(void*) {}
void copy(void*, Device, const void*, Device, size_t) { no_cuda(); }
void fill_zero(void*, size_t) { no_cuda(); }
void copy_async(void*, Device, const void*, Device, size_t) { no_cuda(); }
void* record_event() { return nullptr; }
void wait_event(void*) {}
void destroy_event(void*) {}
void* record_timed_event() { return nullptr; }
float elapsed_ms(void*, void*) { return 0.f; }
bool capturing() { return false; }
void synchronize() {}
uint64_t host_syncs() { return 0; }
Graph::~Graph() = default;
void Graph::capture(const std::function<void()>&) { no_cuda(); }
void Graph::replay() { no_cuda(); }
void set_allow_tf32(bool) {}
void set_conv_fusion(ConvFusion) {}
FusionCounts conv_fusion_counts() { return {}; }
void set_conv_bf16(bool) {}
Bf16Counts conv_bf16_counts() { return {}; }
void set_deterministic(bool) {}
int64_t set_conv_elements_per_call(int64_t) { return INT32_MAX; }
AlgoCounts conv_algo_counts() { return {}; }
std::string device_summary() { return "none (built without CUDA)"; }
void range_push(const char*) {}
void range_pop() {}

}  // namespace lcam::cuda
