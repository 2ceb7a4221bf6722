// hdf5.h — reading and writing float32 tensors and attributes in HDF5 files (the weights,
// checkpoint and fixture formats of DESIGN.md). Every HDF5 call is checked; any failure becomes
// an InputError "FILE: what went wrong" (HDF5's own error stack printing is switched off).
// Omits chunking/compression and any dtype but float32/float64 datasets and int/string attrs.
#pragma once
#include <cstdint>   // int64_t
#include <optional>  // std::optional
#include <string>    // std::string
#include <vector>    // std::vector

#include "engine/tensor.h"  // Tensor

namespace lcam::h5 {

struct DatasetInfo {
  std::string name;            // path from the root, e.g. "features.0.weight" or "grp/x"
  std::vector<int64_t> shape;  // dataspace dimensions
  std::string type;            // "float32", "float64", "int32", "int64", ... or "other"
};

// A file opened for reading. Move-only; closes on destruction.
class Reader {
 public:
  explicit Reader(const std::string& path);  // throws InputError (missing, not HDF5, unreadable)
  ~Reader();
  Reader(Reader&& o) noexcept;
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  const std::string& path() const { return path_; }
  // Every dataset in the file (recursing into groups), sorted by name.
  std::vector<DatasetInfo> datasets() const;
  bool has(const std::string& name) const;
  // Reads a float32 dataset (float64 too when allow_f64) into a CPU tensor of its shape.
  Tensor read(const std::string& name, bool allow_f64 = false) const;
  // Reads an integer dataset (any integer type) converted to int32.
  Tensor read_i32(const std::string& name) const;
  // Root (or object at `obj`) attributes; nullopt when absent, InputError when of another type.
  std::optional<std::string> attr_string(const std::string& name, const std::string& obj = "/") const;
  std::optional<int64_t> attr_int(const std::string& name, const std::string& obj = "/") const;
  std::optional<double> attr_double(const std::string& name, const std::string& obj = "/") const;
  std::optional<std::vector<int64_t>> attr_ints(const std::string& name, const std::string& obj = "/") const;

  class InLibrary;  // the scope of libhdf5 calls (hdf5.cpp: a crash there names the file)

 private:
  std::string path_;
  std::string crash_message_;  // what a crash inside libhdf5 prints
  int64_t file_ = -1;          // hid_t
};

// A file being written: it goes to temp_path_for(PATH) and is renamed to PATH by commit(), so a crash
// never leaves a half-written file under the final name. Destroying an uncommitted writer
// removes the temporary file.
class Writer {
 public:
  explicit Writer(const std::string& path);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Writes a float32 (or int32) tensor; intermediate groups in `name` ("a/b/c") are created.
  void write(const std::string& name, const Tensor& t);
  void attr_string(const std::string& name, const std::string& value, const std::string& obj = "/");
  void attr_int(const std::string& name, int64_t value, const std::string& obj = "/");
  void attr_double(const std::string& name, double value, const std::string& obj = "/");
  void attr_ints(const std::string& name, const std::vector<int64_t>& v, const std::string& obj = "/");
  void commit();

 private:
  void ensure_groups(const std::string& name);
  std::string path_, tmp_;
  int64_t file_ = -1;
  bool committed_ = false;
};

namespace detail {
// For the test of the crash guard: a SIGSEGV raised inside a libhdf5 scope of `r`, which must
// end the process with "lcam: error: FILE: damaged HDF5 file ..." and exit status 2.
void fault_inside_library(const Reader& r);
}  // namespace detail

}  // namespace lcam::h5
