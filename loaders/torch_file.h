// torch_file.h — reading the tensors of a torch.save file (a `.pth` state_dict or checkpoint)
// without Python: the zip format (PyTorch >= 1.6, any pickle protocol) and the legacy format
// (_use_new_zipfile_serialization=False, as torchvision's older ImageNet weights are saved).
// The pickle is interpreted, never executed: only the opcodes that build data are understood,
// the tensor-rebuilding functions of torch._utils are recognised by name, and every other
// global (argparse.Namespace, numpy scalars...) becomes an opaque value that is skipped.
// Nested dicts, lists and tuples are flattened into dotted names ("state_dict.fc.weight",
// "optimizer.param_groups.0.lr"). Tensors are read lazily, one at a time, from the file.
// Omits: big-endian files, compressed zip entries, storage views of pre-1.0 files, sparse,
// quantized and complex tensors (skipped as opaque values).
#pragma once
#include <cstdint>   // int64_t
#include <memory>    // std::unique_ptr
#include <optional>  // std::optional
#include <string>    // std::string
#include <vector>    // std::vector

#include "engine/tensor.h"  // Tensor

namespace lcam::pth {

// True when the file starts as a torch.save file does (a zip archive or a binary pickle);
// false for HDF5 and anything else (and for a missing file: the caller's reader says why).
bool looks_like(const std::string& path);

struct TensorInfo {
  std::string name;            // flattened key path
  std::vector<int64_t> shape;  // sizes
  std::string dtype;           // float32 float64 float16 bfloat16 int64 int32 int16 int8 uint8 bool
};

class Reader {
 public:
  explicit Reader(const std::string& path);  // throws InputError "PATH: what is wrong"
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const std::string& path() const { return path_; }
  // Every tensor, in the order the file lists them.
  const std::vector<TensorInfo>& tensors() const;
  const TensorInfo* find(const std::string& name) const;
  // A tensor as float32 on the CPU, contiguous, converted as torch's .float() converts
  // (float64 rounded to nearest, float16/bfloat16 exactly, integers and bools by value).
  Tensor read(const std::string& name) const;
  // An integer or bool tensor's values, exactly, in row-major order.
  std::vector<int64_t> read_i64(const std::string& name) const;
  // Scalar entries (Python int/bool, float, str at that key path); nullopt when absent or of
  // another kind.
  std::optional<int64_t> int_value(const std::string& name) const;
  std::optional<double> float_value(const std::string& name) const;
  std::optional<std::string> string_value(const std::string& name) const;

  struct Impl;

 private:
  std::string path_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lcam::pth
