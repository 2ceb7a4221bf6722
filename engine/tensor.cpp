// tensor.cpp — Tensor and Storage (see tensor.h). Host storage is 64-byte aligned and counted
// for the memory statistics; device storage comes from the CUDA caching allocator.
#include "engine/tensor.h"

#include <algorithm> // std::max
#include <atomic>    // host byte counters
#include <cstdlib>   // std::aligned_alloc, std::free
#include <cstring>   // std::memcpy, std::memset
#include <new>       // std::bad_alloc

#include <fmt/format.h>  // fmt::format

#include "engine/common.h"        // InternalError, LCAM_REQUIRE
#include "engine/cuda_runtime.h"  // cuda::device_alloc, cuda::copy

namespace lcam {
namespace {
std::atomic<size_t> g_host_current{0}, g_host_peak{0};

void host_count(ptrdiff_t delta) {
  size_t now = g_host_current.fetch_add(static_cast<size_t>(delta)) + static_cast<size_t>(delta);
  size_t peak = g_host_peak.load();
  while (now > peak && !g_host_peak.compare_exchange_weak(peak, now)) {
  }
}

size_t dtype_size(DType) { return 4; }  // float32 and int32

int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    LCAM_REQUIRE(d >= 0, "negative size in " + lcam::shape_str(shape));
    n *= d;
  }
  return n;
}
}  // namespace

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

Storage::Storage(size_t bytes, Device dev, bool pinned) : bytes_(bytes), dev_(dev) {
  if (bytes == 0) return;
  if (dev == Device::CPU && pinned) {
    ptr_ = cuda::host_alloc_pinned(bytes);
    pinned_ = ptr_ != nullptr;
  }
  if (ptr_) {
    host_count(static_cast<ptrdiff_t>(bytes));
  } else if (dev == Device::CPU) {
    ptr_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!ptr_) throw OutOfMemory(fmt::format("out of host memory: {} for one tensor could not be allocated", gib(bytes)));
    host_count(static_cast<ptrdiff_t>(bytes));
  } else {
    ptr_ = cuda::device_alloc(bytes);
  }
}

Storage::~Storage() {
  if (!ptr_) return;
  if (dev_ == Device::CPU) {
    if (pinned_)
      cuda::host_free_pinned(ptr_);
    else
      std::free(ptr_);
    host_count(-static_cast<ptrdiff_t>(bytes_));
  } else {
    cuda::device_free(ptr_, bytes_);
  }
}

Tensor Tensor::empty(std::vector<int64_t> shape, Device dev, DType dt) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(checked_numel(shape)) * dtype_size(dt), dev);
  t.shape_ = std::move(shape);
  t.dtype_ = dt;
  return t;
}

Tensor Tensor::empty_pinned(std::vector<int64_t> shape, DType dt) {
  Tensor t;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(checked_numel(shape)) * dtype_size(dt), Device::CPU, true);
  t.shape_ = std::move(shape);
  t.dtype_ = dt;
  return t;
}

Tensor Tensor::zeros(std::vector<int64_t> shape, Device dev, DType dt) {
  Tensor t = empty(std::move(shape), dev, dt);
  t.fill_zero();
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& v, std::vector<int64_t> shape, Device dev) {
  Tensor host = empty(std::move(shape), Device::CPU);
  LCAM_REQUIRE(static_cast<int64_t>(v.size()) == host.numel(),
               fmt::format("{} values for shape {}", v.size(), host.shape_str()));
  if (!v.empty()) std::memcpy(host.data(), v.data(), v.size() * sizeof(float));
  return dev == Device::CPU ? host : host.to(dev);
}

Tensor Tensor::from_i32(const std::vector<int32_t>& v, std::vector<int64_t> shape, Device dev) {
  // Bound for the GPU: staged in page-locked memory, so that the upload never waits for the
  // stream (a pageable source may make it wait: a training step's indices would then wait for
  // the step before).
  Tensor host = dev == Device::CPU ? empty(std::move(shape), Device::CPU, DType::I32)
                                   : empty_pinned(std::move(shape), DType::I32);
  LCAM_REQUIRE(static_cast<int64_t>(v.size()) == host.numel(),
               fmt::format("{} values for shape {}", v.size(), host.shape_str()));
  if (!v.empty()) std::memcpy(host.data_i32(), v.data(), v.size() * sizeof(int32_t));
  return dev == Device::CPU ? host : host.to_async(dev);
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

float* Tensor::data() const {
  LCAM_REQUIRE(dtype_ == DType::F32, "float32 tensor expected");
  return static_cast<float*>(raw());
}

int32_t* Tensor::data_i32() const {
  LCAM_REQUIRE(dtype_ == DType::I32, "int32 tensor expected");
  return static_cast<int32_t*>(raw());
}

Tensor Tensor::reshape(std::vector<int64_t> shape) const {
  Tensor t = *this;
  t.shape_ = std::move(shape);
  LCAM_REQUIRE(t.numel() == numel(),
               fmt::format("reshape {} to {}", shape_str(), t.shape_str()));
  return t;
}

Tensor Tensor::slice0(int64_t begin, int64_t end) const {
  LCAM_REQUIRE(ndim() >= 1 && 0 <= begin && begin <= end && end <= dim(0),
               fmt::format("slice [{},{}) of {}", begin, end, shape_str()));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.offset_bytes_ += static_cast<size_t>(begin * (numel() / std::max<int64_t>(dim(0), 1))) *
                     dtype_size(dtype_);
  return t;
}

Tensor Tensor::to(Device dev) const {
  Tensor t = empty(shape_, dev, dtype_);
  t.copy_from(*this);
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  LCAM_REQUIRE(src.numel() == numel() && src.dtype_ == dtype_,
               fmt::format("copy {} into {}", src.shape_str(), shape_str()));
  const size_t bytes = static_cast<size_t>(numel()) * dtype_size(dtype_);
  if (bytes == 0) return;
  if (device() == Device::CPU && src.device() == Device::CPU)
    std::memcpy(raw(), src.raw(), bytes);
  else
    cuda::copy(raw(), device(), src.raw(), src.device(), bytes);
}

Tensor Tensor::to_async(Device dev) const {
  if (device() != Device::CPU || dev != Device::CUDA) return to(dev);
  Tensor t = empty(shape_, dev, dtype_);
  cuda::copy_async(t.raw(), dev, raw(), Device::CPU, static_cast<size_t>(numel()) * dtype_size(dtype_));
  return t;
}

PendingRead::PendingRead(const Tensor& t) {
  if (t.device() == Device::CPU) {
    host_ = t.clone();
    return;
  }
  host_ = Tensor::empty_pinned(t.shape());
  cuda::copy_async(host_.data(), Device::CPU, t.data(), t.device(), static_cast<size_t>(t.numel()) * sizeof(float));
  event_ = cuda::record_event();
}

// Dropped unread (an exception between queueing and reading, or a move-assignment over it):
// the copy may still be writing host_, whose page-locked block goes back to the cache for the
// next batch or read, so wait for it first.
PendingRead::~PendingRead() {
  if (!event_) return;
  try {
    cuda::wait_event(event_);
  } catch (...) {  // a lost device: nothing more will write the block
  }
  cuda::destroy_event(event_);
}

std::vector<float> PendingRead::wait() {
  LCAM_REQUIRE(host_.defined(), "PendingRead::wait: nothing was read");
  cuda::wait_event(event_);
  cuda::destroy_event(event_);
  event_ = nullptr;
  const float* p = host_.data();
  return std::vector<float>(p, p + host_.numel());
}

void Tensor::fill_zero() {
  const size_t bytes = static_cast<size_t>(numel()) * dtype_size(dtype_);
  if (bytes == 0) return;
  if (device() == Device::CPU)
    std::memset(raw(), 0, bytes);
  else
    cuda::fill_zero(raw(), bytes);
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = device() == Device::CPU ? *this : to(Device::CPU);
  const float* p = host.data();
  return std::vector<float>(p, p + numel());
}

MemoryStats memory_stats(Device d) {
  if (d == Device::CUDA) return cuda::memory_stats();
  const size_t current = g_host_current.load(), peak = g_host_peak.load();
  return {current, peak, current, peak};
}

void reset_peak_memory(Device d) {
  if (d == Device::CUDA) return cuda::reset_peak();
  g_host_peak.store(g_host_current.load());
}

}  // namespace lcam
