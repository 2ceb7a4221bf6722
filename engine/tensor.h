// tensor.h — the engine's tensor: a shape, a dtype (float32, or int32 for indices) and a
// reference to storage on the CPU or on a CUDA device. Contiguous row-major (NCHW) only: no
// strides, no broadcasting, no autograd. Copying a Tensor copies the handle, not the data;
// Storage itself is move-only and returns its memory to the allocator it came from.
#pragma once
#include <cstdint>   // int64_t
#include <memory>    // std::shared_ptr
#include <string>    // std::string
#include <utility>   // std::swap
#include <vector>    // std::vector

namespace lcam {

enum class Device { CPU, CUDA };
enum class DType { F32, I32 };

const char* device_name(Device d);
std::string shape_str(const std::vector<int64_t>& shape);  // "[64,3,3,3]"

class Storage {
 public:
  // pinned: page-locked host memory when a CUDA device is available (plain memory otherwise).
  Storage(size_t bytes, Device dev, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* ptr() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return dev_; }
  bool pinned() const { return pinned_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device dev_ = Device::CPU;
  bool pinned_ = false;
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialized storage. Sizes must be >= 0.
  static Tensor empty(std::vector<int64_t> shape, Device dev = Device::CPU, DType dt = DType::F32);
  // Host tensor in page-locked memory when a GPU is present (for batches bound for it). Its
  // block goes back to the cache only once the stream has passed the point where it was freed.
  static Tensor empty_pinned(std::vector<int64_t> shape, DType dt = DType::F32);
  static Tensor zeros(std::vector<int64_t> shape, Device dev = Device::CPU, DType dt = DType::F32);
  static Tensor from_vector(const std::vector<float>& v, std::vector<int64_t> shape,
                            Device dev = Device::CPU);
  // An int32 tensor (indices) from host values; bound for the GPU, it is queued without waiting
  // (to_async from pageable memory: v may change at once).
  static Tensor from_i32(const std::vector<int32_t>& v, std::vector<int64_t> shape, Device dev = Device::CPU);

  bool defined() const { return storage_ != nullptr; }
  // True when no other Tensor shares this storage (a pooled buffer the consumer released).
  bool sole_owner() const { return storage_.use_count() == 1; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(i < 0 ? i + ndim() : i); }
  int64_t numel() const;
  Device device() const { return storage_ ? storage_->device() : Device::CPU; }
  DType dtype() const { return dtype_; }
  std::string shape_str() const { return lcam::shape_str(shape_); }

  float* data() const;        // float32 tensors only
  int32_t* data_i32() const;  // int32 tensors only
  void* raw() const { return storage_ ? static_cast<char*>(storage_->ptr()) + offset_bytes_ : nullptr; }

  // Same storage, new shape of the same element count.
  Tensor reshape(std::vector<int64_t> shape) const;
  // Rows [begin, end) of the first dimension, sharing storage.
  Tensor slice0(int64_t begin, int64_t end) const;
  // A copy on `dev` (a copy even when dev == device()).
  Tensor to(Device dev) const;
  // The same for a host tensor bound for the GPU, queued without waiting (cuda::copy_async): a
  // page-locked source (empty_pinned) must stay untouched until the device has used the copy
  // (it may be dropped: its block is not reused before then); a pageable one may be reused at
  // once, but the copy may wait for the stream (the runtime stages it). Other directions are `to`.
  Tensor to_async(Device dev) const;
  Tensor clone() const { return to(device()); }
  // Host copy of the values (float32 only).
  std::vector<float> to_vector() const;
  // Copies src's values into this tensor (same numel and dtype; any devices).
  void copy_from(const Tensor& src);
  void fill_zero();

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_bytes_ = 0;
  std::vector<int64_t> shape_;
  DType dtype_ = DType::F32;
};

// A float32 tensor's values on their way to the host: the copy is queued when the PendingRead is
// made and wait() blocks only until that copy is done, not for what was queued after it (the
// next training step, say). Host tensors are read at once.
class PendingRead {
 public:
  PendingRead() = default;
  explicit PendingRead(const Tensor& t);
  ~PendingRead();
  PendingRead(PendingRead&& o) noexcept { swap(o); }
  PendingRead& operator=(PendingRead&& o) noexcept {
    PendingRead tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  PendingRead(const PendingRead&) = delete;
  PendingRead& operator=(const PendingRead&) = delete;
  bool valid() const { return host_.defined(); }
  std::vector<float> wait();

 private:
  void swap(PendingRead& o) noexcept {
    std::swap(host_, o.host_);
    std::swap(event_, o.event_);
  }
  Tensor host_;
  void* event_ = nullptr;  // cudaEvent_t recorded after the copy (nullptr: already on the host)
};

// Bytes currently held and the high-water mark, per device (CPU: tensor storage only; CUDA: the
// caching allocator's reserved bytes). reset_peak sets the mark to the current value.
// Device memory: current/peak count what the caching allocator reserved (cached + in use, as
// PyTorch's memory_reserved), in_use/peak_in_use what tensors hold (as memory_allocated). Host
// tensors are not cached: both pairs are the same.
struct MemoryStats {
  size_t current = 0, peak = 0, in_use = 0, peak_in_use = 0;
};
MemoryStats memory_stats(Device d);
void reset_peak_memory(Device d);

}  // namespace lcam
